"""Pooling the folds of a grouped cross-validation into one result per variant.

Each sample is tested in exactly one fold, so the folds' test predictions concatenate
into one prediction per photo of the whole set, and every interval and test that works on
one split's predictions (cluster bootstrap over samples, the paired sign-flip test) works
on the pooled ones unchanged. Pooling predictions, rather than averaging fold accuracies,
weights every sample equally whatever its fold's size.
"""

from __future__ import annotations

import hashlib
import logging
import statistics
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from transfer_study.evaluation.metrics import classification_metrics

logger = logging.getLogger(__name__)

_PROBABILITY_PREFIX = "prob_"


def pool_predictions(predictions: Sequence[pd.DataFrame]) -> pd.DataFrame:
    """The folds' test predictions as one table, with the ``fold`` each photo was tested in.

    Raises:
        ValueError: If a photo is tested in two folds, or the folds disagree on classes.
    """
    columns = {tuple(p.columns) for p in predictions}
    if len(columns) != 1:
        raise ValueError(f"The folds' predictions have different columns: {sorted(columns)}.")
    pooled = pd.concat(
        [p.assign(fold=fold) for fold, p in enumerate(predictions)], ignore_index=True
    )
    repeated = pooled["path"][pooled["path"].duplicated()]
    if not repeated.empty:
        raise ValueError(
            f"Photo '{repeated.iloc[0]}' was tested in two folds: the folds overlap. "
            "Re-run the whole study."
        )
    return pooled


def pooled_metrics(
    pooled: pd.DataFrame,
    *,
    confidence: float,
    n_resamples: int,
    seed: int,
    top_k: Sequence[int],
) -> dict[str, float]:
    """``classification_metrics`` of the pooled predictions (interval over samples)."""
    prefix = _PROBABILITY_PREFIX
    class_names = [c.removeprefix(prefix) for c in pooled if c.startswith(prefix)]
    index = {name: i for i, name in enumerate(class_names)}
    probabilities = pooled[[f"{prefix}{c}" for c in class_names]].to_numpy(float, copy=True)
    # Each fold's softmax rows sum to 1 up to float32 rounding, as on one split.
    probabilities /= probabilities.sum(axis=1, keepdims=True)
    metrics = classification_metrics(
        pooled["label"].map(index).to_numpy(),
        pooled["predicted"].map(index).to_numpy(),
        probabilities,
        class_names,
        groups=pooled["sample_id"].to_numpy(),
        confidence=confidence,
        n_resamples=n_resamples,
        seed=seed,
        top_k=tuple(top_k),
    )
    return {key: float(value) for key, value in metrics.items()}


def _median(values: Sequence[float]) -> float:
    return float(statistics.median(values))


def pool_summaries(summaries: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """One training summary for a variant over its folds.

    The validation metric, which chooses the study's variant, is the mean over folds (each
    fold's best); the variant converged only if it converged in every fold, and diverged
    if it diverged in any (with the first such fold's step and reason). The learning
    rate, steps, epochs and best epoch are the folds' medians, and ``per_fold`` keeps each
    fold's own values.
    """
    first = summaries[0]
    metrics = {s["metric"] for s in summaries}
    if len(metrics) > 1:
        # The metric follows each fold's training classes (balanced accuracy when
        # imbalanced); folds near the imbalance threshold can differ.
        logger.warning(
            "%s: the folds chose different metrics %s; the pooled summary names the first fold's.",
            first["variant"],
            sorted(metrics),
        )
    not_converged = [fold for fold, s in enumerate(summaries) if not s["converged"]]
    per_fold = [
        {
            "fold": fold,
            "lr": s["lr"],
            "steps": s["steps"],
            "best_epoch": s["best_epoch"],
            "best_val_metric": s["best_val_metric"],
            "converged": s["converged"],
            "stop_reason": s["stop_reason"],
            "diverged": bool(s.get("diverged", False)),
        }
        for fold, s in enumerate(summaries)
    ]
    return {
        **{k: v for k, v in first.items() if k not in ("seeds", "split_fingerprint")},
        # The folds' splits together: what a registered model's champion rule compares.
        "split_fingerprint": _combined_fingerprint(summaries),
        "folds": len(summaries),
        "n_images": int(sum(s["n_images"] for s in summaries)),
        "lr": _median([s["lr"] for s in summaries]),
        "train_seconds": round(sum(s["train_seconds"] for s in summaries), 2),
        "steps": round(_median([s["steps"] for s in summaries])),
        "epochs_run": _median([s["epochs_run"] for s in summaries]),
        "best_epoch": _median([s["best_epoch"] for s in summaries]),
        "best_val_metric": float(np.mean([s["best_val_metric"] for s in summaries])),
        "best_val_accuracy": float(np.mean([s["best_val_accuracy"] for s in summaries])),
        "converged": not not_converged,
        "stop_reason": "patience"
        if not not_converged
        else f"cap in fold(s) {', '.join(map(str, not_converged))}",
        "per_fold": per_fold,
        **_divergence(summaries),
    }


def _divergence(summaries: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Diverged in one fold is diverged: the learning rate is unstable on these photos."""
    diverged = [(fold, s) for fold, s in enumerate(summaries) if s.get("diverged")]
    if not diverged:
        return {"diverged": False, "divergence_step": None, "divergence_reason": None}
    fold, first = diverged[0]
    return {
        "diverged": True,
        "converged": False,
        "stop_reason": "diverged",
        "divergence_step": first["divergence_step"],
        "divergence_reason": f"fold {fold}: {first['divergence_reason']}",
    }


def best_fold(summaries: Sequence[Mapping[str, Any]]) -> int:
    """The fold whose model validated best among those that did not diverge: the one
    kept for inference."""
    return max(
        range(len(summaries)),
        key=lambda f: (not summaries[f].get("diverged", False), summaries[f]["best_val_metric"]),
    )


def _combined_fingerprint(summaries: list[dict[str, Any]]) -> str | None:
    """One fingerprint for every fold's split (``None`` if a fold has none)."""
    parts = [s.get("split_fingerprint") for s in summaries]
    if not all(parts):
        return None
    return hashlib.sha256("+".join(parts).encode()).hexdigest()[:16]
