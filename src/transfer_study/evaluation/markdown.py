"""Markdown reports: the variant comparison and the data-size ablation's recommendation."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from .figures import _percent, _require_columns
from .learning_curve import _MIN_FIT_SIZES
from .recommendation import _cell
from .stats import _PAIRWISE_COLUMNS

# --------------------------------------------------------------------------- comparison


def _format_p(p: float) -> str:
    return "< 0.001" if p < 0.001 else f"{p:.2g}"


def _p_phrase(p: float) -> str:
    formatted = _format_p(p)
    return f"p {formatted}" if formatted.startswith("<") else f"p = {formatted}"


def _format_cell(column: str, row: pd.Series) -> str:
    value = row[column]
    if column in ("variant", "backbone"):
        return str(value)
    if pd.isna(value):
        return "n/a"
    if column == "accuracy":
        text = _percent(value)
        if {"accuracy_ci_low", "accuracy_ci_high"} <= set(row.index):
            text += f" [{100 * row['accuracy_ci_low']:.1f}, {100 * row['accuracy_ci_high']:.1f}]"
        return text
    if column in ("balanced_accuracy", "macro_f1"):
        return _percent(value)
    if column == "train_seconds":
        return f"{value:,.0f}"
    return f"{int(value):,}"  # trainable_params, best_epoch


def _markdown_table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    table = pd.DataFrame([list(row) for row in rows], columns=list(headers))
    # disable_numparse: tabulate would rewrite numeric-looking cells ("+4.6" -> "4.6").
    return table.to_markdown(index=False, disable_numparse=True).splitlines()


def _pair_row(mcnemar_table: pd.DataFrame, a: str, b: str) -> pd.Series | None:
    match = mcnemar_table[
        ((mcnemar_table["variant_a"] == a) & (mcnemar_table["variant_b"] == b))
        | ((mcnemar_table["variant_a"] == b) & (mcnemar_table["variant_b"] == a))
    ]
    return None if match.empty else match.iloc[0]


def _conclusion(
    comparison: pd.DataFrame, mcnemar_table: pd.DataFrame, ci_label: str, alpha: float
) -> list[str]:
    best = comparison.iloc[int(np.argmax(comparison["accuracy"].to_numpy(float)))]
    tied = [str(v) for v in comparison.loc[comparison["accuracy"] == best["accuracy"], "variant"]]
    lines = [
        f"Best variant: **{best['variant']}** ({_percent(best['accuracy'])} accuracy)"
        + (f", tied with {', '.join(tied[1:])}." if len(tied) > 1 else "."),
        "",
    ]
    if len(comparison) == 1:
        return lines[:1]
    has_ci = {"accuracy_ci_low", "accuracy_ci_high"} <= set(comparison.columns)
    for _, other in comparison.iterrows():
        if other["variant"] == best["variant"]:
            continue
        line = f"- {best['variant']} vs {other['variant']}: "
        pair = _pair_row(mcnemar_table, best["variant"], other["variant"])
        if pair is None:
            line += "no paired test available"
        else:
            significant = pair["p_value_holm"] < alpha
            verdict = "significant" if significant else "not significant"
            line += f"difference {verdict} (Holm-adjusted {_p_phrase(pair['p_value_holm'])})"
        line += f"; {_percent(best['accuracy'])} vs {_percent(other['accuracy'])}"
        if has_ci:
            overlap = (
                best["accuracy_ci_low"] <= other["accuracy_ci_high"]
                and other["accuracy_ci_low"] <= best["accuracy_ci_high"]
            )
            line += f"; the {ci_label} CIs {'overlap' if overlap else 'do not overlap'}"
        lines.append(line + ".")
    lines += [
        "",
        f"Significance: McNemar's test on the same test photos (paired), Holm-corrected "
        f"across all pairs, at {alpha:g}. Overlapping CIs alone do not show that a paired "
        "difference is not significant.",
    ]
    return lines


def comparison_markdown(
    comparison: pd.DataFrame,
    mcnemar: pd.DataFrame,
    *,
    confidence: float,
    alpha: float = 0.05,
) -> str:
    """A short Markdown report comparing the variants.

    Args:
        comparison: One row per variant with ``variant`` and ``accuracy`` (fractions)
            and any of ``backbone, accuracy_ci_low, accuracy_ci_high, balanced_accuracy,
            macro_f1, train_seconds, trainable_params, best_epoch``.
        mcnemar: Output of :func:`pairwise_mcnemar`.
        confidence: Confidence level of the accuracy intervals (for the labels).
        alpha: Significance level applied to the Holm-adjusted p-values.

    Returns:
        Markdown with a results table, the pairwise McNemar table and a conclusion.

    Raises:
        ValueError: If required columns are missing or ``comparison`` is empty.
    """
    _require_columns(comparison, ["variant", "accuracy"], "comparison")
    _require_columns(mcnemar, _PAIRWISE_COLUMNS, "mcnemar")
    if comparison.empty:
        raise ValueError("comparison has no variants.")
    ci_label = f"{100 * confidence:g} %"
    headers = {
        "variant": "Variant",
        "backbone": "Backbone",
        "accuracy": f"Accuracy [{ci_label} CI]",
        "balanced_accuracy": "Balanced accuracy",
        "macro_f1": "Macro F1",
        "train_seconds": "Train time (s)",
        "trainable_params": "Trainable params",
        "best_epoch": "Best epoch",
    }
    columns = [c for c in headers if c in comparison.columns]
    if not {"accuracy_ci_low", "accuracy_ci_high"} <= set(comparison.columns):
        headers["accuracy"] = "Accuracy"
    lines = ["## Test results", ""]
    lines += _markdown_table(
        [headers[c] for c in columns],
        [[_format_cell(c, row) for c in columns] for _, row in comparison.iterrows()],
    )
    lines += ["", "## Pairwise McNemar tests", ""]
    if mcnemar.empty:
        lines.append("Only one variant; nothing to compare.")
    else:
        lines += _markdown_table(
            ["Pair (A vs B)", "Only A correct", "Only B correct", "Test", "p", "p (Holm)"],
            [
                [
                    f"{r['variant_a']} vs {r['variant_b']}",
                    str(r["n_a_only_correct"]),
                    str(r["n_b_only_correct"]),
                    str(r["method"]),
                    _format_p(r["p_value"]),
                    _format_p(r["p_value_holm"]),
                ]
                for _, r in mcnemar.iterrows()
            ],
        )
    lines += ["", "## Conclusion", ""]
    lines += _conclusion(comparison, mcnemar, ci_label, alpha)
    return "\n".join(lines) + "\n"


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
        [*headers, "Std over seeds"], [_curve_row_cells(row) for _, row in curve.iterrows()]
    )
    return "\n".join(lines) + "\n"
