"""Extrapolating the learning curve, only where the grid supports it.

The power law ``metric ≈ a − b·n^(−c)`` (:func:`.learning_curve.fit_inverse_power_law`)
is fitted to the per-seed points (not the means) of the cells at the largest angle
count, i.e. more physical samples photographed the same way. Three parameters fitted
to three or four sizes leave nothing to check the curve's shape against, so a grid
with fewer than ``MIN_SAMPLE_SIZES`` distinct sample sizes gets no extrapolated number,
only the reason. The prediction interval refits the curve inside the two-level
bootstrap (each replicate's resampled seeds and test samples) and takes percentiles of
the refits' predictions. When the fit, or more than the interval's tail share of the
refits, ends on a bound of the parameters, the data do not pin the curve down and the
extrapolation is reported as not identified instead of as a number.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from .cell_scores import CellScores
from .learning_curve import _power_law, fit_inverse_power_law

MIN_SAMPLE_SIZES = 5
_PARAMETER_NAMES = {"a": "the plateau a", "b": "the rise b", "c": "the rate c"}


def _sizes(count: int) -> str:
    return f"{count} sample size" + ("" if count == 1 else "s")


def _refit_predictions(
    scores: CellScores,
    rows: np.ndarray,
    targets: np.ndarray,
    start: Sequence[float],
    max_unusable: int,
) -> tuple[np.ndarray, int, int]:
    """Each replicate's refitted prediction at ``targets``; counts of failed and bounded
    refits. Stops once more than ``max_unusable`` refits failed or ended on a bound: the
    answer is then "not identified" whatever the remaining refits give."""
    predictions, failed, bounded = [], 0, 0
    # By hand: scipy.stats.bootstrap cannot refit on the two-level draws the cells share.
    for replicate, draws in zip(scores.replicates, scores.seed_draws, strict=True):
        if failed + bounded > max_unusable:
            break
        # A seed drawn twice counts twice, as in the replicate's mean.
        x = np.repeat(scores.n_images[rows], draws, axis=1).ravel()
        y = np.repeat(replicate[rows], draws, axis=1).ravel()
        fit = fit_inverse_power_law(x, y, initial=start)
        if fit["status"] != "ok":
            failed += 1
            continue
        bounded += bool(fit["at_bounds"])
        predictions.append(_power_law(targets, fit["a"], fit["b"], fit["c"]))
    return np.asarray(predictions).reshape(-1, targets.size), failed, bounded


def _not_identified(fit: dict[str, Any], message: str) -> dict[str, Any]:
    return fit | {"status": "not identified", "message": message, "predictions": []}


def extrapolate_learning_curve(
    scores: CellScores, *, multiples: Sequence[float], confidence: float
) -> dict[str, Any]:
    """The fitted learning curve beyond the grid, with a bootstrap prediction interval.

    Args:
        scores: One variant's cells (:func:`.cell_scores.score_cells`).
        multiples: Predict at these multiples of the largest training-set size fitted.
        confidence: Level of the prediction intervals.

    Returns:
        ``status``: "ok", "not supported" (fewer than ``MIN_SAMPLE_SIZES`` sample sizes),
        "failed" (``curve_fit`` did not converge) or "not identified" (a bound reached);
        ``message`` says why in words; ``fit_on``, ``n_sample_sizes``; the fit's ``a, b,
        c, r2, rmse, n_points, at_bounds`` when it ran; ``refits`` (replicates),
        ``refits_failed`` and ``refits_at_bounds`` (counted until they decide the answer),
        and ``predictions`` (empty unless ok): ``multiple, n_images, metric, low, high``.
    """
    angles = int(scores.cells["n_angles"].max())
    rows = np.flatnonzero(scores.cells["n_angles"].to_numpy() == angles)
    n_sizes = int(scores.cells.loc[rows, "n_samples"].nunique())
    result: dict[str, Any] = {
        "fit_on": f"cells with {angles} angle(s), each seed a point",
        "n_sample_sizes": n_sizes,
        "min_sample_sizes": MIN_SAMPLE_SIZES,
        "predictions": [],
    }
    if n_sizes < MIN_SAMPLE_SIZES:
        message = f"the grid has {_sizes(n_sizes)}; extrapolation needs at least {MIN_SAMPLE_SIZES}"
        return result | {"status": "not supported", "message": message}
    fit = fit_inverse_power_law(scores.n_images[rows].ravel(), scores.point[rows].ravel())
    result |= {key: fit[key] for key in ("a", "b", "c", "r2", "rmse", "n_points", "at_bounds")}
    if fit["status"] != "ok":
        return result | {"status": "failed", "message": fit["message"]}
    if fit["at_bounds"]:
        names = ", ".join(_PARAMETER_NAMES[name] for name in fit["at_bounds"])
        return _not_identified(
            result, f"the fit ends on the bound of {names}: the points do not pin the curve down"
        )
    targets = np.asarray(multiples, dtype=float) * fit["max_n_images"]
    start = (fit["a"], fit["b"], fit["c"])
    refits = len(scores.replicates)
    # More than the interval's tail share unusable: its ends would come from refits the
    # data cannot determine.
    max_unusable = int((1 - confidence) / 2 * refits)
    predictions, failed, bounded = _refit_predictions(scores, rows, targets, start, max_unusable)
    result |= {"refits": refits, "refits_failed": failed, "refits_at_bounds": bounded}
    if failed + bounded > max_unusable or not predictions.size:
        return _not_identified(
            result,
            f"more than {max_unusable} of {refits} bootstrap refits (the interval's tail "
            "share) failed or ended on a bound: the data do not pin the curve down",
        )
    tail = (1 - confidence) / 2
    low, high = np.quantile(predictions, [tail, 1 - tail], axis=0)
    point = _power_law(targets, fit["a"], fit["b"], fit["c"])
    result["predictions"] = [
        {
            "multiple": float(m),
            "n_images": round(float(n)),
            "metric": float(p),
            "low": float(lo),
            "high": float(hi),
        }
        for m, n, p, lo, hi in zip(multiples, targets, point, low, high, strict=True)
    ]
    message = f"fitted on {fit['n_points']} points at {n_sizes} sample sizes; {refits} refits"
    return result | {"status": "ok", "message": message}
