"""Learning curves of the data-size ablation and their power-law fit.

Pure functions of the ablation's cell records
(:func:`transfer_study.pipelines.data_size_ablation.nodes.summarise_cell`): the
per-seed table, the learning curve with a two-level bootstrap interval, and a fitted,
extrapolated learning curve. Nothing here opens a file, logs to MLflow or prints.

The report's settings (``data_size_ablation.report``, validated by
``transfer_study.config.ReportSettings``) arrive as keyword arguments.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
from scipy.optimize import OptimizeWarning, curve_fit

CELL_KEYS = ["variant", "n_samples", "n_angles"]
_PER_PHOTO_KEYS = ("sample_id", "correct")
# Per test photo, left out of the per-seed table: the required lists and the labels.
_PHOTO_LISTS = (*_PER_PHOTO_KEYS, "label")
_RECORD_KEYS = ("variant", "n_samples", "n_angles", "seed", "n_images", "accuracy")
_CURVE_COLUMNS = [
    *CELL_KEYS,
    "n_images",
    "n_seeds",
    "accuracy_mean",
    "accuracy_std",
    "accuracy_ci_low",
    "accuracy_ci_high",
]
# Replicates per batch of the bootstrap: bounds memory to ~batch × test samples counts.
_BOOTSTRAP_BATCH = 512
_MIN_FIT_SIZES = 3
# Exponent bounds of the power law: c > 0 (scipy's bounds are closed, hence a small
# positive floor); learning-curve exponents beyond 5 are not plausible.
_C_BOUNDS = (1e-3, 5.0)
_FIT_MAX_EVALUATIONS = 20_000
# A parameter this close to a bound (a fraction of its range; for b, of the accuracy
# scale) counts as on it: the optimiser approaches closed bounds without reaching them.
_BOUND_MARGIN = 1e-3
_FLOAT_SLACK = 1e-12  # accuracies equal up to rounding count as within tolerance


# --------------------------------------------------------------------------- tables


def _per_seed_table(records: Sequence[Mapping[str, Any]]) -> pd.DataFrame:
    if not records:
        raise ValueError("No ablation records to summarise.")
    missing = [k for k in (*_RECORD_KEYS, *_PER_PHOTO_KEYS) if k not in records[0]]
    if missing:
        raise ValueError(f"Ablation records are missing keys {missing}.")
    rows = [{k: v for k, v in r.items() if k not in _PHOTO_LISTS} for r in records]
    return pd.DataFrame(rows)


def _cluster_hits(records: Sequence[Mapping[str, Any]]) -> tuple[np.ndarray, np.ndarray]:
    """Correct photos per (seed, test sample) and photos per test sample."""
    ids = list(records[0]["sample_id"])
    if any(list(r["sample_id"]) != ids for r in records):
        raise ValueError(
            "Records of one cell were evaluated on different test photos; every cell must "
            "use the same test split."
        )
    codes, uniques = pd.factorize(pd.Series(ids, dtype=object))
    correct = np.asarray([r["correct"] for r in records], dtype=float)
    hits = np.stack([np.bincount(codes, weights=row, minlength=uniques.size) for row in correct])
    return hits, np.bincount(codes, minlength=uniques.size).astype(float)


def two_level_bootstrap_replicates(
    hits: np.ndarray, sizes: np.ndarray, *, n_resamples: int, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """Bootstrap replicates of every cell's score, seed by seed, all cells sharing each draw.

    Each replicate draws the seeds with replacement and, independently, the test
    samples (clusters of photos) with replacement; the same drawn test samples score
    every cell and seed of the replicate, so differences between cells stay paired.
    With one class the score is accuracy (``sum(correct) / sum(photos)`` over the drawn
    test samples); with several it is balanced accuracy, the mean recall over the classes
    that the drawn test samples contain (as scikit-learn leaves out classes absent from
    ``y_true``). Draws are multinomial counts, so replicates are matrix products, a batch
    at a time to bound memory on large test sets.

    Args:
        hits: ``(n_classes, n_cells, n_seeds, n_test_samples)`` correct photos of each
            class per cell, seed and test sample.
        sizes: ``(n_classes, n_test_samples)`` photos of each class per test sample.
        n_resamples: Number of replicates.
        seed: Seed of the resampling.

    Returns:
        ``scores``, ``(n_resamples, n_cells, n_seeds)``: each seed's score on the
        replicate's test samples; ``seed_draws``, ``(n_resamples, n_seeds)``: how often
        the replicate drew each seed. A replicate's statistic for a cell is
        ``(scores * seed_draws).sum(-1) / n_seeds``.
    """
    # By hand: scipy.stats.bootstrap resamples one level; here seeds and test samples are
    # drawn together, and each draw is shared by every cell to keep differences paired.
    n_classes, _, n_seeds, n_clusters = hits.shape
    rng = np.random.default_rng(seed)

    def replicates(count: int) -> tuple[np.ndarray, np.ndarray]:
        clusters = rng.multinomial(n_clusters, np.full(n_clusters, 1 / n_clusters), count)
        seeds = rng.multinomial(n_seeds, np.full(n_seeds, 1 / n_seeds), count)
        correct = np.tensordot(clusters, hits, axes=([1], [3]))  # replicate × class × cell × seed
        photos = (clusters @ sizes.T)[:, :, None, None]
        if n_classes == 1:
            return correct[:, 0] / photos[:, 0], seeds
        with np.errstate(invalid="ignore", divide="ignore"):  # classes not drawn: 0 / 0
            recall = correct / photos
        return np.nanmean(recall, axis=1), seeds

    batches = [_BOOTSTRAP_BATCH] * (n_resamples // _BOOTSTRAP_BATCH)
    parts = [replicates(count) for count in [*batches, n_resamples % _BOOTSTRAP_BATCH] if count]
    return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])


def two_level_bootstrap_ci(
    hits: np.ndarray, sizes: np.ndarray, *, confidence: float, n_resamples: int, seed: int
) -> tuple[float, float]:
    """Percentile interval of the mean accuracy over seeds, resampling seeds and test samples.

    A replicate's statistic is the mean over its drawn seeds of the accuracy over its
    drawn test samples; see :func:`two_level_bootstrap_replicates`.

    Args:
        hits: ``(n_seeds, n_test_samples)`` correct photos per seed and test sample.
        sizes: ``(n_test_samples,)`` photos per test sample.
        confidence: Interval level in (0, 1).
        n_resamples: Number of replicates.
        seed: Seed of the resampling.

    Returns:
        ``(low, high)`` as fractions.
    """
    scores, seed_draws = two_level_bootstrap_replicates(
        hits[None, None], sizes[None], n_resamples=n_resamples, seed=seed
    )
    statistic = (scores[:, 0] * seed_draws).sum(axis=1) / hits.shape[0]
    tail = (1 - confidence) / 2
    low, high = np.quantile(statistic, [tail, 1 - tail])
    return float(low), float(high)


def seed_pooled_accuracy(
    correct: np.ndarray, groups: np.ndarray, *, confidence: float, n_resamples: int, seed: int
) -> tuple[float, float, float]:
    """Mean accuracy over training seeds with its two-level bootstrap interval.

    Args:
        correct: ``(n_seeds, n_photos)`` whether each seed's model got each test photo right.
        groups: ``(n_photos,)`` the physical sample of each test photo.
        confidence: Interval level in (0, 1).
        n_resamples: Bootstrap replicates.
        seed: Seed of the resampling.

    Returns:
        ``(mean, low, high)`` as fractions; see :func:`two_level_bootstrap_ci`.
    """
    codes, uniques = pd.factorize(pd.Series(groups, dtype=object))
    hits = np.stack(
        [np.bincount(codes, weights=row, minlength=uniques.size) for row in correct.astype(float)]
    )
    sizes = np.bincount(codes, minlength=uniques.size).astype(float)
    low, high = two_level_bootstrap_ci(
        hits, sizes, confidence=confidence, n_resamples=n_resamples, seed=seed
    )
    return float(correct.mean(axis=1).mean()), low, high


def _curve_row(
    frame: pd.DataFrame, records: Sequence[Mapping[str, Any]], **bootstrap: Any
) -> dict[str, Any]:
    hits, sizes = _cluster_hits([records[i] for i in frame.index])
    low, high = two_level_bootstrap_ci(hits, sizes, **bootstrap)
    row = {
        "n_images": round(float(frame["n_images"].mean())),
        "n_seeds": len(frame),
        "accuracy_mean": float(frame["accuracy"].mean()),
        "accuracy_std": float(frame["accuracy"].std(ddof=1)) if len(frame) > 1 else 0.0,
        "accuracy_ci_low": low,
        "accuracy_ci_high": high,
    }
    for metric in ("balanced_accuracy", "macro_f1", "train_seconds", "steps"):
        if metric in frame.columns:
            row[f"{metric}_mean"] = float(frame[metric].mean())
    if "converged" in frame.columns:  # seeds stopped by patience rather than the cap
        row["n_converged"] = int(frame["converged"].astype(bool).sum())
    if "diverged" in frame.columns:  # seeds stopped by the divergence rule: flagged
        row["n_diverged"] = int(frame["diverged"].fillna(False).astype(bool).sum())
    return row


def learning_curve_tables(
    records: Sequence[Mapping[str, Any]], *, confidence: float, n_resamples: int, seed: int
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Per-seed results and the learning curve with a two-level bootstrap interval.

    The interval of a cell's mean accuracy reflects both sources of uncertainty: which
    test samples happened to be in the test split, and which seed (subset and
    initialisation) was used. A replicate resamples the seeds and the test samples
    (whole samples with all their photos, shared by all seeds of the replicate) with
    replacement; see :func:`two_level_bootstrap_ci`. With one seed only the test-set
    uncertainty remains.

    Args:
        records: Cell records from ``summarise_cell``.
        confidence: Level of the intervals, in (0, 1).
        n_resamples: Two-level bootstrap replicates.
        seed: Seed of the bootstrap.

    Returns:
        ``per_seed``: one row per record (per-photo lists left out), sorted by cell and
        seed. ``curve``: one row per ``(variant, n_samples, n_angles)`` with
        ``n_images, n_seeds, accuracy_mean, accuracy_std`` (over seeds, 0 for one seed),
        ``accuracy_ci_low, accuracy_ci_high`` and the means of ``balanced_accuracy``,
        ``macro_f1`` and ``train_seconds`` when the records have them.

    Raises:
        ValueError: Without records, with records missing keys, or when the seeds of
            one cell were tested on different photos.
    """
    bootstrap = {"confidence": confidence, "n_resamples": n_resamples, "seed": seed}
    per_seed = _per_seed_table(records)
    rows = [
        {**dict(zip(CELL_KEYS, key, strict=True)), **_curve_row(frame, records, **bootstrap)}
        for key, frame in per_seed.groupby(CELL_KEYS, sort=True)
    ]
    curve = pd.DataFrame(rows)
    extra = [c for c in curve.columns if c not in _CURVE_COLUMNS]
    per_seed = per_seed.sort_values([*CELL_KEYS, "seed"], ignore_index=True)
    return per_seed, curve[_CURVE_COLUMNS + extra]


# --------------------------------------------------------------------------- power law


def _power_law(n: np.ndarray, a: float, b: float, c: float) -> np.ndarray:
    return a - b * np.power(n, -c)


def _initial_guess(x: np.ndarray, y: np.ndarray) -> list[float]:
    """``(a, b, c)`` from a straight line through ``log(a0 - y)`` against ``log x``."""
    a0 = float(np.clip(y.max() + max(0.01, 0.1 * np.ptp(y)), 0, 1))
    gap = np.clip(a0 - y, 1e-6, None)
    slope, intercept = np.polyfit(np.log(x), np.log(gap), 1)
    return [a0, float(np.exp(intercept)), float(np.clip(-slope, *_C_BOUNDS))]


def _at_bounds(a: float, b_scaled: float, c: float) -> list[str]:
    """The parameters that ended on (or within a hair of) their bounds."""
    hits = []
    if a <= _BOUND_MARGIN or a >= 1 - _BOUND_MARGIN:
        hits.append("a")
    if b_scaled <= _BOUND_MARGIN:  # less than 0.1 point of rise over the fitted sizes
        hits.append("b")
    margin = _BOUND_MARGIN * (_C_BOUNDS[1] - _C_BOUNDS[0])
    if c <= _C_BOUNDS[0] + margin or c >= _C_BOUNDS[1] - margin:
        hits.append("c")
    return hits


def fit_inverse_power_law(
    n_images: Sequence[float],
    accuracy: Sequence[float],
    *,
    initial: Sequence[float] | None = None,
) -> dict[str, Any]:
    """Fits the learning curve ``accuracy ≈ a − b·n^(−c)`` with scipy's ``curve_fit``.

    ``a`` is the accuracy the curve levels off at, ``b`` how far below it the curve
    starts, ``c`` how fast it closes the gap. Bounds keep the curve meaningful:
    ``0 ≤ a ≤ 1`` (a plateau is an accuracy), ``b ≥ 0`` (the curve rises with data),
    ``0.001 ≤ c ≤ 5`` (it closes the gap at a plausible rate). A fit that ends on a
    bound (``at_bounds`` names the parameters) did not find its optimum inside them:
    the data do not pin that parameter down, so predictions from it are not
    identified. ``n`` is rescaled by its smallest value during the fit for
    conditioning; the returned ``b`` is in the original units. With exactly three sizes
    the curve passes through every point, so R² = 1 says nothing about its quality.

    Args:
        n_images: Training-set size of each point (photos, > 0); repeats allowed.
        accuracy: Accuracy of each point, as a fraction.
        initial: ``(a, b, c)`` to start from (e.g. a fit to the same data, when refitting
            bootstrap replicates); by default a guess from a straight line in log space.

    Returns:
        ``status`` (``"ok"``, ``"not enough points"`` or ``"failed"``), ``a, b, c, r2,
        rmse`` (``None`` unless ok; ``r2`` is ``None`` when all accuracies are equal),
        ``at_bounds`` (the parameters on their bounds), ``n_points``, ``n_sizes``,
        ``max_n_images`` and a ``message``.

    Raises:
        ValueError: If the inputs differ in length, are not finite or sizes are ≤ 0.
    """
    x, y = np.asarray(n_images, dtype=float), np.asarray(accuracy, dtype=float)
    if x.shape != y.shape or x.ndim != 1:
        raise ValueError(f"n_images and accuracy must be 1-D of one length: {x.shape}, {y.shape}.")
    if not (np.isfinite(x).all() and np.isfinite(y).all() and (x > 0).all()):
        raise ValueError("n_images must be finite and > 0, accuracy finite.")
    n_sizes = int(np.unique(x).size)
    result: dict[str, Any] = dict.fromkeys(("a", "b", "c", "r2", "rmse"))
    result |= {"at_bounds": [], "n_points": int(x.size), "n_sizes": n_sizes}
    result["max_n_images"] = float(x.max()) if x.size else None
    if n_sizes < _MIN_FIT_SIZES:
        message = f"need at least {_MIN_FIT_SIZES} distinct training-set sizes, got {n_sizes}"
        return result | {"status": "not enough points", "message": message}
    scale = float(x.min())
    if initial is None:
        p0 = _initial_guess(x / scale, y)
    else:  # b in the units of the rescaled sizes, kept inside the bounds
        a0, b0, c0 = initial
        p0 = [
            float(np.clip(a0, 0, 1)),
            max(b0 * scale ** (-c0), 0.0),
            float(np.clip(c0, *_C_BOUNDS)),
        ]
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", OptimizeWarning)
            (a, b_scaled, c), _ = curve_fit(
                _power_law,
                x / scale,
                y,
                p0=p0,
                bounds=([0, 0, _C_BOUNDS[0]], [1, np.inf, _C_BOUNDS[1]]),
                maxfev=_FIT_MAX_EVALUATIONS,
            )
    except (RuntimeError, ValueError) as error:
        return result | {"status": "failed", "message": f"curve_fit did not converge: {error}"}
    residual = y - _power_law(x / scale, a, b_scaled, c)
    total = float(np.sum((y - y.mean()) ** 2))
    return result | {
        "status": "ok",
        "a": float(a),
        "b": float(b_scaled * scale**c),
        "c": float(c),
        "r2": 1 - float(np.sum(residual**2)) / total if total > _FLOAT_SLACK else None,
        "rmse": float(np.sqrt(np.mean(residual**2))),
        "at_bounds": _at_bounds(float(a), float(b_scaled), float(c)),
        "message": f"fitted on {x.size} points at {n_sizes} sizes",
    }


def extrapolate_power_law(
    fit: Mapping[str, Any], multiples: Sequence[float]
) -> list[dict[str, Any]]:
    """The fitted curve at multiples of the largest training-set size it was fitted on.

    Args:
        fit: Output of :func:`fit_inverse_power_law`.
        multiples: E.g. ``[2, 10]`` for twice and ten times the largest size.

    Returns:
        One ``{"multiple", "n_images", "accuracy"}`` per multiple; ``accuracy`` is
        ``None`` when the fit is not usable.
    """
    largest = fit.get("max_n_images")
    usable = fit.get("status") == "ok"
    return [
        {
            "multiple": float(m),
            "n_images": None if largest is None else round(float(m) * largest),
            "accuracy": float(_power_law(float(m) * largest, fit["a"], fit["b"], fit["c"]))
            if usable
            else None,
        }
        for m in multiples
    ]
