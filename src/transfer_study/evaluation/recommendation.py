"""How much data is enough: the data-budget recommendation from a learning curve.

Takes the report's ``tolerance``, ``extrapolate_to`` and ``confidence`` as keyword
arguments. Pure functions: nothing here opens a file, logs to MLflow or prints.
"""

from __future__ import annotations

from collections.abc import Sequence
from itertools import combinations
from typing import Any

import numpy as np
import pandas as pd

from .learning_curve import (
    _CURVE_COLUMNS,
    _FLOAT_SLACK,
    _MIN_FIT_SIZES,
    extrapolate_power_law,
    fit_inverse_power_law,
)


def _cell(row: pd.Series) -> dict[str, Any]:
    return {
        "variant": str(row["variant"]),
        "n_samples": int(row["n_samples"]),
        "n_angles": int(row["n_angles"]),
        "n_images": int(row["n_images"]),
        "n_seeds": int(row["n_seeds"]),
        "accuracy_mean": float(row["accuracy_mean"]),
        "accuracy_ci_low": float(row["accuracy_ci_low"]),
        "accuracy_ci_high": float(row["accuracy_ci_high"]),
    }


def _best_and_budget(cells: pd.DataFrame, tolerance: float) -> dict[str, Any]:
    """Best cell (ties: fewer images, fewer samples) and the cheapest cell within tolerance."""
    ranked = cells.sort_values(
        ["accuracy_mean", "n_images", "n_samples"], ascending=[False, True, True], kind="stable"
    )
    best = ranked.iloc[0]
    floor = best["accuracy_mean"] - tolerance - _FLOAT_SLACK
    budget = (
        ranked[ranked["accuracy_mean"] >= floor]
        .sort_values(["n_images", "n_samples"], kind="stable")
        .iloc[0]
    )
    return {"best": _cell(best), "budget": _cell(budget)}


def _samples_vs_angles(cells: pd.DataFrame, tolerance: float) -> dict[str, Any]:
    """Pairs of cells with the same number of photos: more samples against more angles."""
    pairs = []
    for n_images, group in cells.groupby("n_images", sort=True):
        ordered = group.sort_values("n_samples")
        for (_, angles), (_, samples) in combinations(ordered.iterrows(), 2):
            if samples["n_samples"] == angles["n_samples"]:
                continue
            pairs.append(
                {
                    "n_images": int(n_images),
                    "more_samples": f"{int(samples['n_samples'])}×{int(samples['n_angles'])}",
                    "more_angles": f"{int(angles['n_samples'])}×{int(angles['n_angles'])}",
                    "accuracy_more_samples": float(samples["accuracy_mean"]),
                    "accuracy_more_angles": float(angles["accuracy_mean"]),
                    "difference": float(samples["accuracy_mean"] - angles["accuracy_mean"]),
                }
            )
    if not pairs:
        return {
            "verdict": "not comparable",
            "mean_difference": None,
            "more_samples_wins": 0,
            "more_angles_wins": 0,
            "pairs": [],
        }
    differences = np.array([p["difference"] for p in pairs])
    mean = float(differences.mean())
    verdict = (
        "more samples"
        if mean > tolerance
        else "more angles"
        if mean < -tolerance
        else "no clear difference"
    )
    return {
        "verdict": verdict,
        "mean_difference": mean,
        "more_samples_wins": int((differences > 0).sum()),
        "more_angles_wins": int((differences < 0).sum()),
        "pairs": pairs,
    }


def _learning_curve_fit(cells: pd.DataFrame, multiples: Sequence[float]) -> dict[str, Any]:
    """Fit on the cells at the largest angle count; on all cells if they have < 3 sizes."""
    largest = cells["n_angles"].max()
    chosen = cells[cells["n_angles"] == largest]
    fit_on = f"n_angles={largest}"
    if chosen["n_images"].nunique() < _MIN_FIT_SIZES:
        chosen, fit_on = cells, "all cells"
    fit = fit_inverse_power_law(chosen["n_images"], chosen["accuracy_mean"])
    return {**fit, "fit_on": fit_on, "extrapolation": extrapolate_power_law(fit, multiples)}


def recommend_data_budget(
    curve: pd.DataFrame, *, tolerance: float, confidence: float, extrapolate_to: Sequence[float]
) -> dict[str, Any]:
    """How much data is enough: per variant and overall.

    * ``best``: the cell with the highest mean accuracy (ties: fewer photos, fewer samples).
    * ``budget``: the cell with the fewest training photos (ties: fewer samples) whose
      mean accuracy is within ``tolerance`` of the best.
    * ``samples_vs_angles``: cells with the same number of photos (e.g. 2n×k against
      n×2k), compared pairwise; the verdict is "more samples" or "more angles" when
      the mean difference exceeds ``tolerance``, otherwise "no clear difference".
    * ``learning_curve``: :func:`fit_inverse_power_law` on the mean accuracy against
      photos of the cells at the variant's largest angle count (more physical samples
      photographed the same way), or of all cells when those have fewer than three
      sizes (``fit_on`` says which), with ``extrapolation`` to ``extrapolate_to``
      times the largest size.

    Args:
        curve: The learning curve from :func:`learning_curve_tables`.
        tolerance: Accuracy (a fraction, ≥ 0) a cheaper cell may lose against the best
            one and still be recommended.
        confidence: Level of the curve's intervals (copied into the result for the
            report's labels).
        extrapolate_to: Multiples of the largest training-set size at which the fitted
            curve is evaluated.

    Returns:
        ``{"tolerance", "confidence", "overall": {"best", "budget"}, "variants":
        {variant: {"best", "budget", "samples_vs_angles", "learning_curve"}}}``, all
        JSON-serialisable.

    Raises:
        ValueError: If ``curve`` is empty or lacks columns.
    """
    missing = [c for c in _CURVE_COLUMNS if c not in curve.columns]
    if missing or curve.empty:
        raise ValueError(f"curve must have rows and columns {_CURVE_COLUMNS}; missing {missing}.")
    variants = {
        str(variant): {
            **_best_and_budget(cells, tolerance),
            "samples_vs_angles": _samples_vs_angles(cells, tolerance),
            "learning_curve": _learning_curve_fit(cells, extrapolate_to),
        }
        for variant, cells in curve.groupby("variant", sort=True)
    }
    return {
        "tolerance": tolerance,
        "confidence": confidence,
        "overall": _best_and_budget(curve, tolerance),
        "variants": variants,
    }
