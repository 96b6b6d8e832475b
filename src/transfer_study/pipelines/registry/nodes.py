"""The registry pipeline's node: which variant earned registration, and its record.

The node is pure. ``tracking.hooks.ChildRunHook`` does the MLflow part when the run is
tracked (catalog ``metadata.mlflow``): ``register`` registers the chosen variant's logged
model and moves the ``champion`` alias. The target itself (``registry_target``) is
resolved and checked by the training pipeline before anything trains
(``variant_nodes.resolve_registry_target``).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import pandas as pd

logger = logging.getLogger(__name__)


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
