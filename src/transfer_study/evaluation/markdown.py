"""Markdown reports: the data-size ablation's recommendation, and the table helper that the
variant comparison (``comparison_report``) shares."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import pandas as pd

from .learning_curve import _MIN_FIT_SIZES
from .recommendation import _cell


def _markdown_table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    table = pd.DataFrame([list(row) for row in rows], columns=list(headers))
    # disable_numparse: tabulate would rewrite numeric-looking cells ("+4.6" -> "4.6").
    return table.to_markdown(index=False, disable_numparse=True).splitlines()


# --------------------------------------------------------------------------- ablation

_FIT_CAVEAT = (
    "Extrapolation assumes more physical samples photographed like the fitted cells; "
    "it is a guess beyond the measured sizes, not a measurement."
)
_EXACT_FIT_CAVEAT = (
    f"A fit on {_MIN_FIT_SIZES} sizes has as many points as parameters, so its R² and RMSE "
    "say little about its quality; add sizes to the grid to trust it."
)


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
    cells = [
        str(row["variant"]),
        *(str(int(row[column])) for column in ("n_samples", "n_angles", "n_images", "n_seeds")),
        _with_ci(_cell(row)),
        f"{100 * row['accuracy_std']:.1f} pt",
    ]
    if {"steps_mean", "n_converged"} <= set(row.index):  # how the cells trained
        cells += [f"{row['steps_mean']:.0f}", f"{int(row['n_converged'])} of {int(row['n_seeds'])}"]
    return cells


def _training_headers(curve: pd.DataFrame) -> list[str]:
    if {"steps_mean", "n_converged"} <= set(curve.columns):
        return ["Steps (mean)", "Converged"]
    return []


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
    lines += _markdown_table(
        [*headers, f"Accuracy [{ci}]", "Photos saved"], _variant_rows(recommendation)
    )
    lines += ["", "## More samples or more angles? (same number of photos)", ""]
    pair_rows = _pair_rows(recommendation)
    headers = ["Variant", "Photos", "More samples", "Accuracy", "More angles", "Accuracy"]
    lines += (
        _markdown_table([*headers, "Difference (points)"], pair_rows)
        if pair_rows
        else ["No two cells have the same number of photos; add e.g. 2n×k next to n×2k."]
    )
    lines += ["", "## Learning curve accuracy ≈ a − b·n^(−c) (n = training photos)", ""]
    headers = ["Variant", "Fitted on", "a (plateau)", "b", "c", "R²", "RMSE", "Points"]
    fits = [result["learning_curve"] for result in variants.values()]
    lines += _markdown_table(
        [*headers, "Extrapolated (at photos)"],
        [_fit_row(variant, fit) for variant, fit in zip(variants, fits, strict=True)],
    )
    lines += ["", _FIT_CAVEAT]
    if any(fit["n_sizes"] == _MIN_FIT_SIZES for fit in fits):
        lines += ["", _EXACT_FIT_CAVEAT]
    lines += ["", "## Every cell (mean over seeds)", ""]
    headers = ["Variant", "Samples", "Angles", "Photos", "Seeds", f"Accuracy [{ci}]"]
    lines += _markdown_table(
        [*headers, "Std over seeds", *_training_headers(curve)],
        [_curve_row_cells(row) for _, row in curve.iterrows()],
    )
    return "\n".join(lines) + "\n"
