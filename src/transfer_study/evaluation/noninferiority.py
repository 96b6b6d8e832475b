"""How much data is enough: smaller budgets tested for non-inferiority to the largest one.

The reference is fixed before any result is seen: the grid's largest budget (most
samples × most angles), the study's own setting. Each smaller budget's loss against it
(reference − budget, in the headline metric) is paired on the same seeds and the same
test photos, and its one-sided upper confidence bound comes from the two-level bootstrap
(seeds and physical test samples resampled; :mod:`.cell_scores`). A budget is "enough"
when that bound is below the tolerance. Budgets are tested in one fixed order, from most
photos to fewest (ties: more samples first), and testing stops at the first budget that
fails: a fixed-sequence procedure, so the chance of calling any budget enough when it is
not stays at ``1 − confidence`` overall without a multiplicity correction.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from .cell_scores import CellScores

ENOUGH, NOT_ENOUGH, UNTESTED = "enough", "not enough", "untested"


def budget_label(n_samples: int, n_angles: int) -> str:
    """``120 × 2``: physical samples × photos per sample."""
    return f"{int(n_samples)} × {int(n_angles)}"


def _points(value: float) -> str:
    return f"{100 * value:.1f}"


def budget_order(cells: pd.DataFrame) -> tuple[int, list[int]]:
    """The reference cell and the order in which the other cells are tested.

    Args:
        cells: One row per cell with ``n_samples`` and ``n_angles``.

    Returns:
        The reference's row position (most samples and most angles) and the other
        positions from most photos (samples × angles) to fewest, ties to more samples.

    Raises:
        ValueError: If the grid has no cell with both the most samples and the most angles.
    """
    largest = (cells["n_samples"] == cells["n_samples"].max()) & (
        cells["n_angles"] == cells["n_angles"].max()
    )
    if not largest.any():
        raise ValueError("The grid has no cell with both its most samples and its most angles.")
    reference = int(np.flatnonzero(largest.to_numpy())[0])
    photos = cells["n_samples"] * cells["n_angles"]
    ranked = (
        cells.assign(photos=photos, position=range(len(cells)))
        .drop(index=cells.index[reference])
        .sort_values(["photos", "n_samples"], ascending=[False, False], kind="stable")
    )
    return reference, [int(p) for p in ranked["position"]]


def _row(scores: CellScores, position: int) -> dict[str, Any]:
    n_samples, n_angles = (int(v) for v in scores.cells.iloc[position][["n_samples", "n_angles"]])
    return {
        "budget": budget_label(n_samples, n_angles),
        "n_samples": n_samples,
        "n_angles": n_angles,
        "photos": n_samples * n_angles,
        "n_images": float(scores.n_images[position].mean()),
        "metric_mean": float(scores.means[position]),
    }


def _verdict(
    reference: dict[str, Any], budgets: list[dict[str, Any]], tolerance: float, confidence: float
) -> tuple[dict[str, Any] | None, str]:
    """The smallest budget shown to be enough and the sentence that says so (or why not)."""
    tol, level = f"{100 * tolerance:g}", f"{100 * confidence:g} %"
    if not budgets:
        return None, "The grid has no budget smaller than the reference, so nothing was tested."
    passed = [b for b in budgets if b["status"] == ENOUGH]
    failed = next((b for b in budgets if b["status"] == NOT_ENOUGH), None)
    if passed:
        smallest = passed[-1]
        text = (
            f"{smallest['budget']} ({smallest['photos']} photos) is enough: against the "
            f"reference {reference['budget']} it loses at most {_points(smallest['loss_upper'])} "
            f"points ({level} one-sided bound), below the {tol}-point tolerance."
        )
        if failed is not None:
            text += (
                f" Testing stopped at {failed['budget']} (loss up to "
                f"{_points(failed['loss_upper'])} points); smaller budgets are untested."
            )
        return smallest, text
    first = budgets[0]
    loss = -first["difference"]
    if loss < tolerance <= first["half_width"]:
        # Even a budget that lost nothing could not pass with intervals this wide.
        return None, (
            "No smaller budget is shown to be enough: intervals are "
            f"±{_points(first['half_width'])} points, wider than the {tol}-point tolerance: "
            "more test samples or seeds are needed to show any saving."
        )
    return None, (
        f"No smaller budget is shown to be enough: the first one tested, {first['budget']}, "
        f"loses {_points(loss)} points and may lose up to {_points(first['loss_upper'])} "
        f"({level} bound), more than the {tol}-point tolerance."
    )


def noninferiority(scores: CellScores, *, tolerance: float, confidence: float) -> dict[str, Any]:
    """Fixed-sequence non-inferiority of every smaller budget to the largest one.

    Args:
        scores: One variant's cells (:func:`.cell_scores.score_cells`).
        tolerance: The loss (a fraction of the metric) a budget may have and still be
            enough.
        confidence: One-sided level of each bound (0.95: the loss exceeds the bound with
            probability 0.05).

    Returns:
        ``reference`` (its cell and mean metric), ``order`` (budget labels in test
        order), ``budgets`` (in that order: ``difference`` = budget − reference, mean over
        seeds; ``loss_upper``, the one-sided upper bound of reference − budget;
        ``half_width`` = ``loss_upper`` + ``difference``; ``status`` "enough", "not
        enough" or "untested"), ``smallest_enough`` (a budget, or ``None``) and
        ``verdict`` (a sentence). Untested budgets keep their numbers for reading, not
        for deciding.
    """
    reference_at, order = budget_order(scores.cells)
    replicate_means = scores.replicate_means()
    reference = _row(scores, reference_at)
    budgets, failed = [], False
    # By hand: statsmodels' multipletests has no fixed-sequence procedure; it is this loop.
    for position in order:
        loss = replicate_means[:, reference_at] - replicate_means[:, position]
        difference = float(scores.means[position] - scores.means[reference_at])
        upper = float(np.quantile(loss, confidence))
        enough = upper < tolerance
        status = UNTESTED if failed else ENOUGH if enough else NOT_ENOUGH
        failed = failed or not enough
        budgets.append(
            _row(scores, position)
            | {
                "difference": difference,
                "loss_upper": upper,
                "half_width": upper + difference,
                "status": status,
            }
        )
    smallest, verdict = _verdict(reference, budgets, tolerance, confidence)
    return {
        "reference": reference,
        "order": [b["budget"] for b in budgets],
        "budgets": budgets,
        "smallest_enough": smallest,
        "verdict": verdict,
    }
