"""Nodes that compare the variants on the same test photos."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import pandas as pd
from matplotlib.figure import Figure

from transfer_study.config import EvaluationSettings, ModelSettings
from transfer_study.evaluation.comparison_report import comparison_markdown
from transfer_study.evaluation.diverged import is_diverged, withhold_diverged_results
from transfer_study.evaluation.figures import variant_comparison_figure
from transfer_study.evaluation.pairs import paired_differences
from transfer_study.evaluation.selection import choose_best_variant
from transfer_study.photos.grouping import with_grouping_summary

logger = logging.getLogger(__name__)

_SUMMARY_COLUMNS = [
    "metric",
    "lr",
    "train_seconds",
    "trainable_params",
    "total_params",
    "steps",
    "epochs_run",
    "best_epoch",
    "converged",
    "stop_reason",
    "seed",
]


def _comparison_row(
    backbone: str, metrics: Mapping[str, float], summary: Mapping[str, Any]
) -> dict[str, Any]:
    row = {"variant": summary["variant"], "backbone": backbone, "weights": summary["weights"]}
    row.update(
        {
            k: metrics[k]
            for k in (
                "accuracy",
                "accuracy_ci_low",
                "accuracy_ci_high",
                "balanced_accuracy",
                "macro_f1",
            )
        }
    )
    row.update({k: v for k, v in metrics.items() if k.startswith(("roc_auc", "top_"))})
    row.update({k: summary[k] for k in _SUMMARY_COLUMNS})
    row["val_metric"] = summary["best_val_metric"]
    row["n_seeds"] = int(metrics.get("n_seeds", 1))
    row["folds"] = int(summary.get("folds", 1))
    row["diverged"] = is_diverged(summary)
    row["divergence_step"] = summary.get("divergence_step")
    row["divergence_reason"] = summary.get("divergence_reason")
    row["trainable_stages"] = summary.get("trainable_stages")  # partial fine-tuning only
    sides = summary.get("input_sizes")  # progressive resizing only
    row["input_sizes"] = " → ".join(str(side) for side in sides) if sides else None
    return row


def compare_variants(
    model_params: ModelSettings,
    evaluation_params: EvaluationSettings,
    grouping: dict[str, Any],
    *results: Any,
) -> tuple[pd.DataFrame, pd.DataFrame, str, Figure]:
    """Puts the variants side by side and compares every pair on the same test photos.

    Args:
        model_params: ``model`` parameters (names the backbone).
        evaluation_params: ``evaluation`` parameters (``confidence``, the bootstrap's
            resamples and seed, ``permutation_resamples``).
        grouping: How the photos were grouped into samples (``grouping.json``); the
            report states it at its top.
        *results: For each variant, in order: its test metrics, training summary and
            test predictions.

    Returns:
        The comparison table (one row per variant; ``selected`` marks the variant chosen
        on validation; a diverged variant's results blanked), the paired differences in
        the headline metric (one row per pair of variants that did not diverge,
        cluster-aware: see ``evaluation.pairs``), the Markdown summary and the bar chart
        with confidence-interval whiskers.

    Raises:
        ValueError: If the variants were not evaluated on the same photos.
    """
    triples = [results[i : i + 3] for i in range(0, len(results), 3)]
    rows = [_comparison_row(model_params.backbone, m, s) for m, s, _ in triples]
    # A diverged variant's figures are an early checkpoint's: never shown as its result.
    comparison = withhold_diverged_results(pd.DataFrame(rows))
    comparison["selected"] = comparison["variant"] == choose_best_variant(comparison)
    paths = [tuple(predictions["path"]) for _, _, predictions in triples]
    if len(set(paths)) != 1:
        raise ValueError(
            "The variants were evaluated on different test photos; re-run the whole study."
        )
    correct = {
        summary["variant"]: (p["label"] == p["predicted"]).to_numpy()
        for _, summary, p in triples
        if not is_diverged(summary)
    }
    confidence = evaluation_params.confidence
    test_photos = triples[0][2]
    pairs = paired_differences(
        correct,
        test_photos["sample_id"].to_numpy(),
        test_photos["label"].to_numpy(),
        metric=comparison["metric"].iloc[0],
        confidence=confidence,
        bootstrap_resamples=evaluation_params.bootstrap_resamples,
        permutation_resamples=evaluation_params.permutation_resamples,
        seed=evaluation_params.bootstrap_seed,
    )
    report = with_grouping_summary(
        comparison_markdown(comparison, pairs, confidence=confidence), grouping
    )
    chart = variant_comparison_figure(
        comparison, title=f"Test accuracy with {confidence:.0%} CI ({model_params.backbone})"
    )
    logger.info("Variant comparison:\n%s", comparison.to_string(index=False))
    return comparison, pairs, report, chart
