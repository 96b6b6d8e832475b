"""Learning curves, power-law extrapolation and the data-budget recommendation.

Pure functions of the ablation's cell records (:func:`..nodes.summarise_cell`): tables,
a two-level bootstrap, a fitted learning curve, a recommendation, Markdown and figures.
Nothing here opens a file, logs to MLflow or prints.

Report settings come from one ``params`` mapping (``params:data_size_ablation.report``
or similar); missing keys fall back to :data:`DEFAULT_SETTINGS`:

* ``confidence``: level of the accuracy intervals (0.95).
* ``bootstrap_resamples``: two-level bootstrap replicates (2000).
* ``bootstrap_seed``: seed of the bootstrap (0).
* ``tolerance``: accuracy (a fraction) a cheaper cell may lose against the best one and
  still be recommended (0.01 = one percentage point).
* ``extrapolate_to``: multiples of the largest training-set size at which the fitted
  learning curve is evaluated ([2, 10]).
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from itertools import combinations
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.ticker import NullFormatter, PercentFormatter
from scipy.optimize import OptimizeWarning, curve_fit

DEFAULT_SETTINGS: dict[str, Any] = {
    "confidence": 0.95,
    "bootstrap_resamples": 2000,
    "bootstrap_seed": 0,
    "tolerance": 0.01,
    "extrapolate_to": [2, 10],
}
CELL_KEYS = ["variant", "n_samples", "n_angles"]
_PER_PHOTO_KEYS = ("sample_id", "correct")
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
_FLOAT_SLACK = 1e-12  # accuracies equal up to rounding count as within tolerance
_FIT_CAVEAT = (
    "Extrapolation assumes more physical samples photographed like the fitted cells; "
    "it is a guess beyond the measured sizes, not a measurement."
)
_EXACT_FIT_CAVEAT = (
    f"A fit on {_MIN_FIT_SIZES} sizes has as many points as parameters, so its R² and RMSE "
    "say little about its quality; add sizes to the grid to trust it."
)
_DARK_CELL = 0.6  # heatmap cells below this share of the colour scale get white text


def _settings(params: Mapping[str, Any] | None) -> dict[str, Any]:
    settings = {**DEFAULT_SETTINGS, **(params or {})}
    if not 0 < float(settings["confidence"]) < 1:
        raise ValueError(f"confidence must be in (0, 1), got {settings['confidence']}.")
    if float(settings["tolerance"]) < 0:
        raise ValueError(f"tolerance must be ≥ 0, got {settings['tolerance']}.")
    return settings


# --------------------------------------------------------------------------- tables


def _per_seed_table(records: Sequence[Mapping[str, Any]]) -> pd.DataFrame:
    if not records:
        raise ValueError("No ablation records to summarise.")
    missing = [k for k in (*_RECORD_KEYS, *_PER_PHOTO_KEYS) if k not in records[0]]
    if missing:
        raise ValueError(f"Ablation records are missing keys {missing}.")
    rows = [{k: v for k, v in r.items() if k not in _PER_PHOTO_KEYS} for r in records]
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


def two_level_bootstrap_ci(
    hits: np.ndarray, sizes: np.ndarray, *, confidence: float, n_resamples: int, seed: int
) -> tuple[float, float]:
    """Percentile interval of the mean accuracy over seeds, resampling seeds and test samples.

    Each replicate draws the seeds with replacement and, independently, the test
    samples (clusters of photos) with replacement; the same drawn test samples score
    every drawn seed. Its statistic is the mean over drawn seeds of
    ``sum(correct) / sum(photos)`` over the drawn test samples. Draws are multinomial
    counts, so replicates are computed as matrix products, a batch at a time to bound
    memory on large test sets.

    Args:
        hits: ``(n_seeds, n_test_samples)`` correct photos per seed and test sample.
        sizes: ``(n_test_samples,)`` photos per test sample.
        confidence: Interval level in (0, 1).
        n_resamples: Number of replicates.
        seed: Seed of the resampling.

    Returns:
        ``(low, high)`` as fractions.
    """
    n_seeds, n_clusters = hits.shape
    rng = np.random.default_rng(seed)

    def replicates(count: int) -> np.ndarray:
        clusters = rng.multinomial(n_clusters, np.full(n_clusters, 1 / n_clusters), count)
        seeds = rng.multinomial(n_seeds, np.full(n_seeds, 1 / n_seeds), count)
        accuracy = (clusters @ hits.T) / (clusters @ sizes)[:, None]  # replicate × seed
        return (accuracy * seeds).sum(axis=1) / n_seeds

    batches = [_BOOTSTRAP_BATCH] * (n_resamples // _BOOTSTRAP_BATCH)
    statistic = np.concatenate(
        [replicates(count) for count in [*batches, n_resamples % _BOOTSTRAP_BATCH] if count]
    )
    tail = (1 - confidence) / 2
    low, high = np.quantile(statistic, [tail, 1 - tail])
    return float(low), float(high)


def _curve_row(
    frame: pd.DataFrame, records: Sequence[Mapping[str, Any]], settings: Mapping[str, Any]
) -> dict[str, Any]:
    hits, sizes = _cluster_hits([records[i] for i in frame.index])
    low, high = two_level_bootstrap_ci(
        hits,
        sizes,
        confidence=float(settings["confidence"]),
        n_resamples=int(settings["bootstrap_resamples"]),
        seed=int(settings["bootstrap_seed"]),
    )
    row = {
        "n_images": round(float(frame["n_images"].mean())),
        "n_seeds": len(frame),
        "accuracy_mean": float(frame["accuracy"].mean()),
        "accuracy_std": float(frame["accuracy"].std(ddof=1)) if len(frame) > 1 else 0.0,
        "accuracy_ci_low": low,
        "accuracy_ci_high": high,
    }
    for metric in ("balanced_accuracy", "macro_f1", "train_seconds"):
        if metric in frame.columns:
            row[f"{metric}_mean"] = float(frame[metric].mean())
    return row


def learning_curve_tables(
    records: Sequence[Mapping[str, Any]], params: Mapping[str, Any]
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
        params: Reads ``confidence``, ``bootstrap_resamples``, ``bootstrap_seed``.

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
    settings = _settings(params)
    per_seed = _per_seed_table(records)
    rows = [
        {**dict(zip(CELL_KEYS, key, strict=True)), **_curve_row(frame, records, settings)}
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


def fit_inverse_power_law(n_images: Sequence[float], accuracy: Sequence[float]) -> dict[str, Any]:
    """Fits the learning curve ``accuracy ≈ a − b·n^(−c)`` with scipy's ``curve_fit``.

    ``a`` is the accuracy the curve levels off at, ``b`` how far below it the curve
    starts, ``c`` how fast it closes the gap. Bounds: ``0 ≤ a ≤ 1``, ``b ≥ 0``,
    ``0.001 ≤ c ≤ 5``. ``n`` is rescaled by its smallest value during the fit for
    conditioning; the returned ``b`` is in the original units. With exactly three sizes
    the curve passes through every point, so R² = 1 says nothing about its quality.

    Args:
        n_images: Training-set size of each point (photos, > 0); repeats allowed.
        accuracy: Accuracy of each point, as a fraction.

    Returns:
        ``status`` (``"ok"``, ``"not enough points"`` or ``"failed"``), ``a, b, c, r2,
        rmse`` (``None`` unless ok; ``r2`` is ``None`` when all accuracies are equal),
        ``n_points``, ``n_sizes``, ``max_n_images`` and a ``message``.

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
    result |= {"n_points": int(x.size), "n_sizes": n_sizes}
    result["max_n_images"] = float(x.max()) if x.size else None
    if n_sizes < _MIN_FIT_SIZES:
        message = f"need at least {_MIN_FIT_SIZES} distinct training-set sizes, got {n_sizes}"
        return result | {"status": "not enough points", "message": message}
    scale = float(x.min())
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", OptimizeWarning)
            (a, b_scaled, c), _ = curve_fit(
                _power_law,
                x / scale,
                y,
                p0=_initial_guess(x / scale, y),
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


# --------------------------------------------------------------------------- recommendation


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


def recommend_data_budget(curve: pd.DataFrame, params: Mapping[str, Any]) -> dict[str, Any]:
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
        params: Reads ``tolerance``, ``extrapolate_to`` and ``confidence`` (copied into
            the result for the report's labels).

    Returns:
        ``{"tolerance", "confidence", "overall": {"best", "budget"}, "variants":
        {variant: {"best", "budget", "samples_vs_angles", "learning_curve"}}}``, all
        JSON-serialisable.

    Raises:
        ValueError: If ``curve`` is empty or lacks columns.
    """
    settings = _settings(params)
    missing = [c for c in _CURVE_COLUMNS if c not in curve.columns]
    if missing or curve.empty:
        raise ValueError(f"curve must have rows and columns {_CURVE_COLUMNS}; missing {missing}.")
    tolerance = float(settings["tolerance"])
    variants = {
        str(variant): {
            **_best_and_budget(cells, tolerance),
            "samples_vs_angles": _samples_vs_angles(cells, tolerance),
            "learning_curve": _learning_curve_fit(cells, settings["extrapolate_to"]),
        }
        for variant, cells in curve.groupby("variant", sort=True)
    }
    return {
        "tolerance": tolerance,
        "confidence": float(settings["confidence"]),
        "overall": _best_and_budget(curve, tolerance),
        "variants": variants,
    }


# --------------------------------------------------------------------------- Markdown


def _pct(value: float | None) -> str:
    return "n/a" if value is None else f"{100 * value:.1f} %"


def _count(n: float, noun: str) -> str:
    return f"{n:g} {noun}" if n == 1 else f"{n:g} {noun}s"


def _shape(cell: Mapping[str, Any]) -> str:
    return (
        f"{_count(cell['n_samples'], 'sample')} × {_count(cell['n_angles'], 'angle')} "
        f"({_count(cell['n_images'], 'photo')})"
    )


def _with_ci(cell: Mapping[str, Any]) -> str:
    low, high = 100 * cell["accuracy_ci_low"], 100 * cell["accuracy_ci_high"]
    return f"{_pct(cell['accuracy_mean'])} [{low:.1f}, {high:.1f}]"


def _table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    return lines + ["| " + " | ".join(row) + " |" for row in rows]


def _headline(recommendation: Mapping[str, Any]) -> list[str]:
    overall = recommendation["overall"]
    best, budget = overall["best"], overall["budget"]
    points = 100 * recommendation["tolerance"]
    lines = [
        f"**Answer:** {budget['variant']} with {_shape(budget)} reaches "
        f"{_pct(budget['accuracy_mean'])} test accuracy, within {_count(points, 'point')} of the "
        f"best cell ({best['variant']}, {_shape(best)}: {_pct(best['accuracy_mean'])}).",
        "",
    ]
    for variant, result in recommendation["variants"].items():
        verdict = result["samples_vs_angles"]
        fit = result["learning_curve"]
        text = f"- {variant}: at equal photo counts, {verdict['verdict']}"
        if verdict["mean_difference"] is not None:
            text += f" (more samples − more angles: {100 * verdict['mean_difference']:+.1f} points)"
        predictions = [e for e in fit["extrapolation"] if e["accuracy"] is not None]
        if predictions:
            text += "; the fitted curve predicts " + ", ".join(
                f"{_pct(e['accuracy'])} at {e['multiple']:g}× ({e['n_images']} photos)"
                for e in predictions
            )
        lines.append(text + ".")
    return lines


def _variant_rows(recommendation: Mapping[str, Any]) -> list[list[str]]:
    rows = []
    for variant, result in recommendation["variants"].items():
        best, budget = result["best"], result["budget"]
        rows.append(
            [
                variant,
                _shape(best),
                _with_ci(best),
                _shape(budget),
                _with_ci(budget),
                f"{1 - budget['n_images'] / best['n_images']:.0%}",
            ]
        )
    return rows


def _pair_rows(recommendation: Mapping[str, Any]) -> list[list[str]]:
    return [
        [
            variant,
            str(pair["n_images"]),
            pair["more_samples"],
            _pct(pair["accuracy_more_samples"]),
            pair["more_angles"],
            _pct(pair["accuracy_more_angles"]),
            f"{100 * pair['difference']:+.1f}",
        ]
        for variant, result in recommendation["variants"].items()
        for pair in result["samples_vs_angles"]["pairs"]
    ]


def _fit_row(variant: str, fit: Mapping[str, Any]) -> list[str]:
    if fit["status"] != "ok":
        failed = f"{fit['status']}: {fit['message']}"
        return [variant, fit["fit_on"], failed, "", "", "", "", str(fit["n_points"]), ""]
    return [
        variant,
        fit["fit_on"],
        _pct(fit["a"]),
        f"{fit['b']:.3g}",
        f"{fit['c']:.3g}",
        "n/a" if fit["r2"] is None else f"{fit['r2']:.3f}",
        _pct(fit["rmse"]),
        str(fit["n_points"]),
        "; ".join(f"{_pct(e['accuracy'])} at {e['n_images']}" for e in fit["extrapolation"]),
    ]


def _curve_row_cells(row: pd.Series) -> list[str]:
    return [
        str(row["variant"]),
        *(str(int(row[column])) for column in ("n_samples", "n_angles", "n_images", "n_seeds")),
        _with_ci(_cell(row)),
        f"{100 * row['accuracy_std']:.1f} pt",
    ]


def recommendation_markdown(recommendation: Mapping[str, Any], curve: pd.DataFrame) -> str:
    """A readable report of the data-size ablation: the answer first, then the tables.

    Args:
        recommendation: Output of :func:`recommend_data_budget`.
        curve: The learning curve from :func:`learning_curve_tables`.

    Returns:
        Markdown with the headline answer, per-variant best and budget cells, the
        samples-vs-angles pairs, the learning-curve fits and every cell.
    """
    ci = f"{100 * recommendation['confidence']:g} % CI"
    points = f"{100 * recommendation['tolerance']:g} pt"
    variants = recommendation["variants"]
    lines = ["# How much data is enough?", "", *_headline(recommendation), ""]
    lines += ["## Per variant", ""]
    headers = ["Variant", "Best cell", f"Accuracy [{ci}]", f"Cheapest within {points}"]
    lines += _table([*headers, f"Accuracy [{ci}]", "Photos saved"], _variant_rows(recommendation))
    lines += ["", "## More samples or more angles? (same number of photos)", ""]
    pair_rows = _pair_rows(recommendation)
    headers = ["Variant", "Photos", "More samples", "Accuracy", "More angles", "Accuracy"]
    lines += (
        _table([*headers, "Difference (points)"], pair_rows)
        if pair_rows
        else ["No two cells have the same number of photos; add e.g. 2n×k next to n×2k."]
    )
    lines += ["", "## Learning curve accuracy ≈ a − b·n^(−c) (n = training photos)", ""]
    headers = ["Variant", "Fitted on", "a (plateau)", "b", "c", "R²", "RMSE", "Points"]
    fits = [result["learning_curve"] for result in variants.values()]
    lines += _table(
        [*headers, "Extrapolated (at photos)"],
        [_fit_row(variant, fit) for variant, fit in zip(variants, fits, strict=True)],
    )
    lines += ["", _FIT_CAVEAT]
    if any(fit["n_sizes"] == _MIN_FIT_SIZES for fit in fits):
        lines += ["", _EXACT_FIT_CAVEAT]
    lines += ["", "## Every cell (mean over seeds)", ""]
    headers = ["Variant", "Samples", "Angles", "Photos", "Seeds", f"Accuracy [{ci}]"]
    lines += _table(
        [*headers, "Std over seeds"], [_curve_row_cells(row) for _, row in curve.iterrows()]
    )
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------- figures


def _panels(
    curve: pd.DataFrame, width: float, height: float, *, sharey: bool
) -> tuple[Figure, list, list[str]]:
    if curve.empty:
        raise ValueError("curve has no cells to plot.")
    variants = [str(v) for v in curve["variant"].unique()]
    fig = Figure(figsize=(width * len(variants), height), layout="constrained")
    axes = fig.subplots(1, len(variants), squeeze=False, sharey=sharey)[0]
    return fig, list(axes), variants


def learning_curve_figure(curve: pd.DataFrame) -> Figure:
    """Test accuracy against training photos (log x), one panel per variant.

    Args:
        curve: The learning curve from :func:`learning_curve_tables`.

    Returns:
        A figure with one axis per variant; in each, one line per angle count with its
        confidence band (``fill_between``).

    Raises:
        ValueError: If ``curve`` is empty.
    """
    fig, axes, variants = _panels(curve, width=4.5, height=4.0, sharey=True)
    for ax, variant in zip(axes, variants, strict=True):
        cells = curve[curve["variant"].astype(str) == variant]
        for i, (n_angles, group) in enumerate(cells.groupby("n_angles", sort=True)):
            line = group.sort_values("n_images")
            x = line["n_images"].to_numpy(float)
            colour = f"C{i}"
            ax.plot(
                x, line["accuracy_mean"], marker="o", color=colour, label=f"{n_angles} angle(s)"
            )
            ax.fill_between(
                x, line["accuracy_ci_low"], line["accuracy_ci_high"], color=colour, alpha=0.2
            )
        ax.set_xscale("log")
        sizes = sorted(cells["n_images"].unique())
        ax.set_xticks(sizes, [str(size) for size in sizes])
        ax.xaxis.set_minor_formatter(NullFormatter())
        ax.set_xlabel("Training photos (log scale)")
        ax.set_title(variant)
        ax.grid(alpha=0.3, which="both")
        ax.legend(fontsize="small")
    axes[0].set_ylabel("Test accuracy (mean over seeds)")
    axes[0].yaxis.set_major_formatter(PercentFormatter(xmax=1, decimals=0))
    return fig


def accuracy_heatmap_figure(curve: pd.DataFrame) -> Figure:
    """Mean test accuracy over samples × angles, one annotated panel per variant.

    Args:
        curve: The learning curve from :func:`learning_curve_tables`.

    Returns:
        A figure with one heatmap axis per variant (shared colour scale) and a colour
        bar; every cell is labelled with its accuracy, missing cells are blank.

    Raises:
        ValueError: If ``curve`` is empty.
    """
    fig, axes, variants = _panels(curve, width=4.0, height=3.8, sharey=False)
    limits = (float(curve["accuracy_mean"].min()), float(curve["accuracy_mean"].max()))
    image = None
    for ax, variant in zip(axes, variants, strict=True):
        cells = curve[curve["variant"].astype(str) == variant]
        grid = cells.pivot_table("accuracy_mean", index="n_samples", columns="n_angles")
        values = grid.to_numpy()
        image = ax.imshow(values, cmap="viridis", origin="lower", vmin=limits[0], vmax=limits[1])
        for (i, j), value in np.ndenumerate(values):
            if np.isfinite(value):
                dark = image.norm(value) < _DARK_CELL
                colour = "white" if dark else "black"
                ax.text(j, i, f"{100 * value:.1f}", ha="center", va="center", color=colour)
        ax.set_xticks(range(grid.shape[1]), [str(k) for k in grid.columns])
        ax.set_yticks(range(grid.shape[0]), [str(n) for n in grid.index])
        ax.set_xlabel("Angles per sample")
        ax.set_title(variant)
    axes[0].set_ylabel("Training samples")
    colorbar = fig.colorbar(image, ax=axes, format=PercentFormatter(xmax=1, decimals=0))
    colorbar.set_label("Test accuracy (mean over seeds)")
    return fig


def report_ablation(
    params: Mapping[str, Any], *records: Mapping[str, Any]
) -> tuple[pd.DataFrame, pd.DataFrame, dict[str, Any], str, Figure, Figure]:
    """Everything the ablation reports, from every cell's record.

    Args:
        params: ``data_size_ablation`` parameters; its ``report`` block holds
            ``tolerance``, ``confidence``, ``bootstrap_resamples``, ``bootstrap_seed``
            and ``extrapolate_to``.
        *records: One ``summarise_cell`` record per cell.

    Returns:
        The per-seed table, the learning curve, the recommendation, its Markdown report,
        the learning-curve figure and the samples × angles heatmap.
    """
    settings = params.get("report") or {}
    per_seed, curve = learning_curve_tables(records, settings)
    recommendation = recommend_data_budget(curve, settings)
    return (
        per_seed,
        curve,
        recommendation,
        recommendation_markdown(recommendation, curve),
        learning_curve_figure(curve),
        accuracy_heatmap_figure(curve),
    )
