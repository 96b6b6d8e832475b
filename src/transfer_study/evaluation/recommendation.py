"""How much data is enough: the data-size ablation's recommendation, from its cell records.

Puts together, per variant, the non-inferiority tests of the smaller budgets
(:mod:`.noninferiority`) and the learning-curve extrapolation (:mod:`.extrapolation`),
the samples-vs-angles model (:mod:`.angles_model`), and the variant to recommend, chosen
with the study's own rule (:func:`.selection.choose_best_variant`) on the reference
cells' validation metric. Pure functions: nothing here opens a file, logs to MLflow or
prints.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from .angles_model import samples_vs_angles
from .cell_scores import RERUN, CellScores, score_cells
from .extrapolation import extrapolate_learning_curve
from .noninferiority import budget_order, noninferiority
from .selection import TIE_POINTS, choose_best_variant

# Fewer seeds than this leave the seed-to-seed variance underestimated.
MIN_SEEDS = 3
# A diverged cell's model is an early checkpoint: its variant's budget tests are not of
# trained models, so no verdict is given for that variant.
_WITHHELD = (
    "withheld: some of its cells diverged (see Flagged), so its budgets' scores are "
    "partly those of early checkpoints, not of trained models."
)
CONDITIONAL = (
    "Intervals are conditional on this pool of training samples: the test set and the "
    "subsets drawn from this training split; another collection of samples would vary more."
)


def _reference_choice_rows(
    records: Sequence[Mapping[str, Any]], scores: Mapping[str, CellScores]
) -> pd.DataFrame | None:
    """Per variant: the reference cell's validation metric (mean over seeds), converged?"""
    rows = []
    for variant, cells in scores.items():
        reference = cells.cells.iloc[budget_order(cells.cells)[0]]
        chosen = [
            r
            for r in records
            if str(r["variant"]) == variant
            and (r["n_samples"], r["n_angles"]) == (reference["n_samples"], reference["n_angles"])
        ]
        if any("val_metric" not in r or "converged" not in r for r in chosen):
            return None
        rows.append(
            {
                "variant": variant,
                "val_metric": float(np.mean([r["val_metric"] for r in chosen])),
                # A seed that hit its cap makes the variant ineligible, as in the study.
                "converged": all(bool(r["converged"]) for r in chosen),
                "diverged": any(bool(r.get("diverged", False)) for r in chosen),
            }
        )
    return pd.DataFrame(rows)


def _recommended_variant(
    records: Sequence[Mapping[str, Any]], scores: Mapping[str, CellScores], metric: str
) -> dict[str, Any]:
    table = _reference_choice_rows(records, scores)
    if table is None:
        return {
            "variant": None,
            "reason": f"the records lack the validation metric or convergence. {RERUN}",
            "reference_validation": [],
        }
    chosen = choose_best_variant(table)
    rule = (
        "chosen with the study's rule (evaluation/selection.py: best validation "
        f"{metric.replace('_', ' ')}, "
        f"variants within {TIE_POINTS:g} points tied and the cheaper one taken, never one "
        "whose training hit its cap or diverged) on the reference cells' validation "
        "metric, mean over seeds; the reference cell is the study's own setting, and test "
        "results play no part"
    )
    reason = (
        f"{chosen}, {rule}."
        if chosen is not None
        else f"no variant's reference cells all converged without diverging, so none is {rule}."
    )
    return {"variant": chosen, "reason": reason, "reference_validation": table.to_dict("records")}


def _diverged_cells(records: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """The cells whose training diverged (``training.divergence``), with where."""
    keys = ("variant", "n_samples", "n_angles", "seed", "steps")
    return [{key: record[key] for key in keys} for record in records if record.get("diverged")]


def recommend_data_budget(
    records: Sequence[Mapping[str, Any]],
    *,
    tolerance: float,
    confidence: float,
    n_resamples: int,
    seed: int,
    extrapolate_to: Sequence[float],
) -> dict[str, Any]:
    """How much data is enough: per variant, for the recommended variant, and why.

    Args:
        records: Cell records from ``summarise_cell``.
        tolerance: The loss (a fraction of the headline metric) a smaller budget may
            have against the reference and still be enough.
        confidence: One-sided level of the non-inferiority bounds, and the level of the
            GEE and extrapolation intervals.
        n_resamples: Two-level bootstrap replicates (also the number of power-law refits).
        seed: Seed of the bootstrap.
        extrapolate_to: Multiples of the largest size fitted at which the learning curve
            is extrapolated (where the grid supports it).

    Returns:
        JSON-serialisable: ``metric, tolerance, confidence, n_seeds, intervals`` (what
        they are conditional on), ``seed_warning`` (or ``None``), ``recommended_variant``
        and ``reason``, ``reference``, ``order``, ``budgets``, ``smallest_enough`` and
        ``verdict`` of the recommended variant (``None`` when none is chosen),
        ``variants`` (each: ``reference, order, budgets, smallest_enough, verdict,
        extrapolation``; the verdict withheld for a variant with a diverged cell),
        ``diverged_cells`` (``variant, n_samples, n_angles, seed, steps`` of each) and
        ``samples_vs_angles``.

    Raises:
        ValueError: Without records, or with records the scores cannot pair
            (:func:`.cell_scores.score_cells`).
    """
    scores = score_cells(records, n_resamples=n_resamples, seed=seed)
    metric = next(iter(scores.values())).metric
    variants = {
        variant: noninferiority(cells, tolerance=tolerance, confidence=confidence)
        | {
            "extrapolation": extrapolate_learning_curve(
                cells, multiples=extrapolate_to, confidence=confidence
            )
        }
        for variant, cells in scores.items()
    }
    diverged = _diverged_cells(records)
    for variant in sorted({cell["variant"] for cell in diverged}):
        variants[variant] |= {"smallest_enough": None, "verdict": _WITHHELD}
    n_seeds = min(len(cells.seeds) for cells in scores.values())
    choice = _recommended_variant(records, scores, metric)
    answer = variants.get(choice["variant"] or "", {})
    return {
        "metric": metric,
        "tolerance": tolerance,
        "confidence": confidence,
        "n_seeds": n_seeds,
        "intervals": CONDITIONAL,
        "seed_warning": None
        if n_seeds >= MIN_SEEDS
        else f"Only {n_seeds} seed(s): the seed-to-seed variance is underestimated, so "
        f"intervals are too narrow; use at least {MIN_SEEDS} seeds.",
        "recommended_variant": choice["variant"],
        "reason": choice["reason"],
        "reference_validation": choice["reference_validation"],
        **{
            key: answer.get(key)
            for key in ("reference", "order", "budgets", "smallest_enough", "verdict")
        },
        "variants": variants,
        "diverged_cells": diverged,
        "samples_vs_angles": samples_vs_angles(records, confidence=confidence),
    }
