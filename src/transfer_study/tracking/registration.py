"""The hook's Model Registry handlers: the catalog's ``metadata.mlflow`` kinds
``registry_check`` and ``register`` (see ``tracking.hooks``).

The registry pipeline's nodes say what to register (``pipelines.registry``); these
handlers do it when the run is tracked, because only the hook knows the run each
variant's model was logged to. A run that MLflow does not track registers nothing.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from typing import Any

import mlflow
from mlflow.exceptions import MlflowException

from transfer_study.tracking.registry import check_registration_target, register_version

logger = logging.getLogger(__name__)

REGISTRATION_FILE = "model_registration.json"


class RegistrationHandlers:
    """Mixed into ``ChildRunHook``, which provides ``_client``, ``_base_tags`` and
    ``_logged_models`` (namespace → the URI and run of the model logged from its
    ``<namespace>.model``)."""

    _logged_models: dict[str, tuple[str, str]]
    _base_tags: dict[str, str]  # every run's tags: the pipeline and the git commit
    _client: mlflow.MlflowClient

    def _log_registry_check(self, run_id: str, data: Mapping, options: Mapping, name: str) -> None:
        """Refuses the registry target before any training (``RegistryConflictError``)."""
        if data.get("register"):
            check_registration_target(
                self._client, data["name"], data["backbone"], data["class_names"]
            )

    def _log_register(self, run_id: str, data: Mapping, options: Mapping, name: str) -> None:
        """Registers the chosen variant's logged model and records the outcome in ``run_id``.

        A registry that fails now is logged as an error, not raised: the study and its
        models are saved, and registering is one command away (docs/checkpoints.md).
        """
        if not data.get("register"):
            logger.info("No model registered: %s.", data.get("reason", "not asked"))
            return
        variant = data["variant"]
        logged = self._logged_models.get(variant)
        if logged is None:
            logger.warning(
                "Variant '%s' was chosen but its model was not logged in this run (was it "
                "trained by an earlier run?), so nothing was registered; re-run the study "
                "with `kedro run`.",
                variant,
            )
            return
        uri, model_run_id = logged
        commit = self._base_tags.get("git_commit")
        if commit:
            data = {**data, "tags": {**data.get("tags", {}), "git_commit": commit}}
        try:
            outcome = register_version(
                self._client,
                name=data["name"],
                model_uri=uri,
                run_id=model_run_id,
                candidate=data,
                promote_across_splits=bool(data.get("promote_across_splits")),
            )
        except MlflowException as error:
            logger.error("Registering '%s' in '%s' failed: %s", variant, data["name"], error)
            self._client.set_tag(run_id, "registration_error", str(error)[:5000])
            return
        self._record(run_id, {"variant": variant, **outcome})

    def _record(self, run_id: str, outcome: Mapping[str, Any]) -> None:
        self._client.set_tag(run_id, "registered_model", f"{outcome['name']}/{outcome['version']}")
        self._client.log_text(run_id, json.dumps(outcome, indent=2), REGISTRATION_FILE)
        logger.info(
            "Registered '%s' as %s version %d; champion: version %d (%s). Classify with "
            "--params=inference.model=models:/%s@champion",
            outcome["variant"],
            outcome["name"],
            outcome["version"],
            outcome["champion"],
            outcome["reason"],
            outcome["name"],
        )
