"""Nodes of the registry pipeline: what to register, decided from the study's outputs.

The nodes are pure: they say which registered model the study's model belongs to and
which variant earned registration. ``tracking.hooks.ChildRunHook`` does the MLflow part
when the run is tracked (catalog ``metadata.mlflow``: ``registry_check`` refuses a name
that holds another kind of model as soon as the target is known, ``register`` registers
the chosen variant's logged model and moves the ``champion`` alias).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import pandas as pd

from transfer_study.config import ModelSettings, RegistrySettings
from transfer_study.tracking.registry import registry_name
from transfer_study.training.setup import class_names_of

logger = logging.getLogger(__name__)


def resolve_registry_target(
    split: pd.DataFrame, registry: RegistrySettings, model: ModelSettings
) -> tuple[pd.DataFrame, dict[str, Any]]:
    """Names the registered model the study's model will join, before any training.

    Args:
        split: The split table (its labels give the class list).
        registry: The ``registry`` parameters.
        model: The ``model`` parameters (the backbone).

    Returns:
        The split, unchanged: the study trains on it, so no training starts before the
        target is checked; and the target: ``register``, ``name``, ``backbone`` and
        ``class_names`` (the model's output order).
    """
    target = {
        "register": registry.enabled,
        "name": registry_name(registry.name, model.backbone),
        "backbone": model.backbone,
        "class_names": class_names_of(split),
        "promote_across_splits": registry.promote_across_splits,
    }
    return split, target


def choose_model_to_register(
    comparison: pd.DataFrame,
    target: Mapping[str, Any],
    **summaries: Mapping[str, Any],
) -> dict[str, Any]:
    """The variant the comparison chose on validation, with what its version records.

    Args:
        comparison: The variant comparison (``variant``, ``selected``, ``val_metric``,
            ``metric``, ``accuracy`` and its interval, ``weights``).
        target: From ``resolve_registry_target``.
        **summaries: Each variant's training summary, by variant (the split fingerprint).

    Returns:
        ``register`` (false, with the ``reason``, when nothing is to be registered) and,
        when true, the target's fields plus ``variant``, ``val_metric``,
        ``split_fingerprint`` and the version's ``tags``.
    """
    if not target["register"]:
        return {"register": False, "reason": "registry.enabled is false"}
    chosen = comparison.loc[comparison["selected"].astype(bool)]
    if chosen.empty:
        reason = "the comparison chose no variant: none converged without diverging"
        logger.warning("Nothing registered: %s.", reason)
        return {"register": False, "reason": reason}
    row = chosen.iloc[0]
    variant = str(row["variant"])
    summary = summaries[variant]
    tags = {
        "variant": variant,
        "backbone": target["backbone"],
        "weights": row.get("weights", ""),
        "split_fingerprint": summary["split_fingerprint"],
        "val_metric_name": row.get("metric", "accuracy"),
        "test_accuracy": f"{row['accuracy']:.4f}",
        "test_accuracy_ci": f"[{row['accuracy_ci_low']:.4f}, {row['accuracy_ci_high']:.4f}]",
        "seed": summary.get("seed", ""),
    }
    return {
        **target,
        "variant": variant,
        "val_metric": float(row["val_metric"]),
        "split_fingerprint": summary["split_fingerprint"],
        "tags": {key: str(value) for key, value in tags.items()},
    }
