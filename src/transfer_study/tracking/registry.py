"""The MLflow Model Registry: the study's chosen model as a version of a registered model,
and the ``champion`` alias that follows the best of them.

A registered model holds one kind of model: its tags ``backbone`` and ``class_names``
are set when it is created, and a study of another backbone or class list is refused
before it trains (``check_registration_target``), so ``models:/<name>@champion`` always
means the same inputs and outputs.

The champion moves to a new version only when the new version's validation metric beats
the champion's on the same split (its fingerprint: every photo's path, sample and
split). Validation metrics on different splits measure different things, so a new split
keeps the champion unless ``promote_across_splits`` says otherwise.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence
from typing import Any

from mlflow import MlflowClient
from mlflow.entities.model_registry import ModelVersion
from mlflow.exceptions import MlflowException
from mlflow.protos.databricks_pb2 import RESOURCE_DOES_NOT_EXIST, ErrorCode

from transfer_study.errors import UserError

logger = logging.getLogger(__name__)

CHAMPION = "champion"
DEFAULT_NAME_PREFIX = "transfer-study"
# Tags of the registered model: what every version of it takes and gives.
BACKBONE_TAG, CLASS_NAMES_TAG = "backbone", "class_names"
# Tags of each version that the champion rule reads.
VAL_METRIC_TAG, SPLIT_TAG = "val_metric", "split_fingerprint"


class RegistryConflictError(UserError, ValueError):
    """The registry name holds models of another backbone or class list."""


def registry_name(name: str | None, backbone: str) -> str:
    """``name``, or ``transfer-study-<backbone>`` when it is ``None``."""
    return name or f"{DEFAULT_NAME_PREFIX}-{backbone}"


def check_registration_target(
    client: MlflowClient, name: str, backbone: str, class_names: Sequence[str]
) -> None:
    """Refuses a registered model that holds another kind of model.

    Args:
        client: The registry's client.
        name: The registered model's name.
        backbone: The backbone the study trains.
        class_names: The classes, in the model's output order.

    Raises:
        RegistryConflictError: If ``name`` exists with another backbone or class list, or
            without those tags (not registered by transfer-study); the message says what
            to do.
    """
    try:
        tags = client.get_registered_model(name).tags
    except MlflowException as error:
        if _does_not_exist(error):
            return
        raise
    wanted = {BACKBONE_TAG: backbone, CLASS_NAMES_TAG: _encoded(class_names)}
    differences = [
        f"{key} {tags.get(key, '(not set)')} there, {value} here"
        for key, value in wanted.items()
        if tags.get(key) != value
    ]
    if differences:
        raise RegistryConflictError(
            f"The registered model '{name}' holds another kind of model ("
            f"{'; '.join(differences)}), so this study's model cannot be registered "
            "under it. Name another with `--params=registry.name=<new name>` (or in "
            "conf/local/parameters_registry.yml), or turn registration off with "
            "`--params=registry.enabled=false`."
        )


def register_version(
    client: MlflowClient,
    *,
    name: str,
    model_uri: str,
    run_id: str,
    candidate: Mapping[str, Any],
    promote_across_splits: bool,
) -> dict[str, Any]:
    """Registers a logged model as a new version and moves the champion if it earned it.

    Args:
        client: The registry's client.
        name: The registered model's name, created (with its backbone and class-list
            tags) if it does not exist.
        model_uri: The logged model (``models:/<model_id>`` or ``runs:/…``).
        run_id: The run that trained it.
        candidate: What the study says of it: ``backbone``, ``class_names``,
            ``val_metric``, ``split_fingerprint`` and the version's other ``tags``.
        promote_across_splits: Move the champion even when the splits differ.

    Returns:
        ``name``, ``version``, ``champion`` (the version the alias points at afterwards),
        ``previous_champion`` (or ``None``), ``champion_moved`` and ``reason``.
    """
    _ensure_registered_model(client, name, candidate)
    tags = {
        **{key: str(value) for key, value in candidate.get("tags", {}).items()},
        VAL_METRIC_TAG: repr(float(candidate["val_metric"])),
        SPLIT_TAG: str(candidate["split_fingerprint"]),
    }
    version = client.create_model_version(
        name, source=model_uri, run_id=run_id, tags=tags, model_id=_model_id(model_uri)
    )
    champion = _champion(client, name)
    moved, reason = _earns_champion(version, champion, promote_across_splits)
    if moved:
        client.set_registered_model_alias(name, CHAMPION, version.version)
    return {
        "name": name,
        "version": int(version.version),
        "champion": int(version.version if moved else champion.version),
        "previous_champion": int(champion.version) if champion else None,
        "champion_moved": moved,
        "reason": reason,
    }


def _earns_champion(
    new: ModelVersion, champion: ModelVersion | None, promote_across_splits: bool
) -> tuple[bool, str]:
    if champion is None:
        return True, "no champion yet"
    ours, theirs = float(new.tags[VAL_METRIC_TAG]), _metric(champion)
    versus = f"validation {ours:.4f} vs the champion's (v{champion.version}) {theirs:.4f}"
    if champion.tags.get(SPLIT_TAG) != new.tags[SPLIT_TAG]:
        if promote_across_splits:
            return True, f"another split, and promote_across_splits is true ({versus})"
        return False, (
            f"the champion (v{champion.version}) was chosen on another split, where "
            "validation metrics are not comparable; move the alias yourself if this one "
            "should serve, or set registry.promote_across_splits: true"
        )
    if ours > theirs:
        return True, f"beats it on the same split: {versus}"
    return False, f"does not beat it on the same split: {versus}"


def _ensure_registered_model(client: MlflowClient, name: str, candidate: Mapping[str, Any]) -> None:
    try:
        client.get_registered_model(name)
    except MlflowException as error:
        if not _does_not_exist(error):
            raise
        tags = {
            BACKBONE_TAG: str(candidate["backbone"]),
            CLASS_NAMES_TAG: _encoded(candidate["class_names"]),
        }
        client.create_registered_model(name, tags=tags)


def _champion(client: MlflowClient, name: str) -> ModelVersion | None:
    version = client.get_registered_model(name).aliases.get(CHAMPION)
    return client.get_model_version(name, version) if version else None


def _metric(version: ModelVersion) -> float:
    try:
        return float(version.tags[VAL_METRIC_TAG])
    except (KeyError, ValueError):  # a champion set by hand on a foreign version
        return float("-inf")


def _model_id(model_uri: str) -> str | None:
    """``models:/m-123`` (a logged model) → ``m-123``; other URIs have none."""
    rest = model_uri.removeprefix("models:/")
    return rest if rest != model_uri and "/" not in rest and "@" not in rest else None


def _encoded(class_names: Sequence[str]) -> str:
    return json.dumps(list(class_names))


def _does_not_exist(error: MlflowException) -> bool:
    return error.error_code == ErrorCode.Name(RESOURCE_DOES_NOT_EXIST)
