"""The project's parameters as a ``kedro run`` hands them to nodes, for in-memory runs.

``project_parameters`` loads ``conf/base`` with the project's ``OmegaConfigLoader``
settings, merges a test's overrides as ``--params`` would, applies Kedro's parameter
validation for the pipelines under test (so nodes get whatever types they declare) and
returns the catalog entries Kedro would add: ``params:<key>`` for every key and every
nested key. Tests never build a node's parameter block by hand, so they keep working when
the blocks change shape.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from kedro.config import OmegaConfigLoader
from kedro.pipeline import Pipeline
from kedro.validation.parameter_validator import ParameterValidator
from kedro.validation.utils import get_typed_fields

from tests.helpers.tiny_models import TINY_BACKBONE, TINY_INPUT_SIZE
from transfer_study.pipelines.variant_template import VARIANTS
from transfer_study.settings import CONFIG_LOADER_ARGS

REPO_ROOT = Path(__file__).resolve().parents[2]
CONF_SOURCE = REPO_ROOT / "conf"
# Only conf/base: a developer's conf/local must not change what the tests run.
BASE_ENV = "base"
PARAMS_PREFIX = "params:"

# Keys are ``--params`` keys (dotted). The tiny backbone has no pretrained weights
# offline, so every variant starts from random ones.
TINY_MODEL: dict[str, Any] = {"model.backbone": TINY_BACKBONE, "model.image_size": TINY_INPUT_SIZE}
# What makes a training tiny, for every variant: the one place to adapt when the
# parameter blocks change shape.
_TINY_PER_VARIANT: dict[str, Any] = {
    "weights": "none",
    "lr": 0.01,  # no range test: tests that want one set lr: auto
    "max_images": 32,
    "min_steps": 4,
    "patience": 2,
    "batch_size": 8,
    "device": "cpu",
}
TINY_TRAINING: dict[str, Any] = {
    **TINY_MODEL,
    **{
        f"{variant}.{key}": value
        for variant in VARIANTS
        for key, value in _TINY_PER_VARIANT.items()
    },
    "finetune.head_warmup_steps": 2,
    # Fine-tune also validates its probed start (step 0), which is never kept: one more
    # validation to the cap.
    "finetune.patience": 3,
    "finetune_top.patience": 3,
    "training_defaults.seeds": 1,  # auto would train 3 on a GPU
    "scratch.num_workers": 0,
    "finetune.num_workers": 0,
    "evaluation.bootstrap_resamples": 100,
    "evaluation.batch_size": 16,
    "evaluation.device": "cpu",
}


def nested(dotted: Mapping[str, Any]) -> dict[str, Any]:
    """``{"a.b": 1}`` → ``{"a": {"b": 1}}``, as Kedro's CLI parses ``--params``."""
    tree: dict[str, Any] = {}
    for key, value in dotted.items():
        *parents, leaf = key.split(".")
        branch = tree
        for parent in parents:
            branch = branch.setdefault(parent, {})
        branch[leaf] = value
    return tree


def raw_parameters(overrides: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """``conf/base``'s parameters merged with ``overrides``, before validation.

    Args:
        overrides: ``--params``-style values, dotted keys allowed
            (``{"finetune.epochs": 1}``); they also feed the ``runtime_params:`` resolver.

    Returns:
        The resolved parameters, as ``config_loader["parameters"]`` gives them.
    """
    loader = OmegaConfigLoader(
        conf_source=str(CONF_SOURCE),
        env=BASE_ENV,
        runtime_params=nested(overrides or {}),
        **CONFIG_LOADER_ARGS,
    )
    return loader["parameters"]


def shipped_study_variants() -> tuple[str, ...]:
    """``study.variants`` of conf/base, in the study's order: what a plain ``kedro run``
    of a project copy trains."""
    wanted = raw_parameters()["study"]["variants"]
    return tuple(variant for variant in VARIANTS if variant in wanted)


def project_parameters(
    overrides: Mapping[str, Any] | None = None,
    pipelines: Pipeline | Mapping[str, Pipeline] | None = None,
) -> dict[str, Any]:
    """The ``params:`` catalog entries of a ``kedro run`` with ``--params=overrides``.

    Args:
        overrides: ``--params``-style values, dotted keys allowed.
        pipelines: The pipeline(s) under test: their nodes' type hints decide which
            blocks Kedro validates into typed objects. None: no validation.

    Returns:
        ``{"params:a": ..., "params:a.b": ..., ...}`` for every key and nested key
        (fields of typed parameter objects included), as Kedro adds them to the catalog.
    """
    params = raw_parameters(overrides)
    if pipelines is not None:
        if isinstance(pipelines, Pipeline):
            pipelines = {"under_test": pipelines}
        params = ParameterValidator(dict(pipelines)).validate_raw_params(params)
    entries: dict[str, Any] = {}
    for name, value in params.items():
        _add_entries(entries, name, value)
    return entries


def _add_entries(entries: dict[str, Any], name: str, value: Any) -> None:
    """Adds ``params:name`` and, recursively, one entry per field of ``value``."""
    entries[f"{PARAMS_PREFIX}{name}"] = value
    fields = value if isinstance(value, dict) else get_typed_fields(value)
    for field, field_value in (fields or {}).items():
        _add_entries(entries, f"{name}.{field}", field_value)
