"""Markdown reports: the comparison of the variants."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from .figures import _percent, _require_columns
from .stats import _PAIRWISE_COLUMNS


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
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return lines


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
