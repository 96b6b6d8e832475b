"""The Markdown report comparing the study's variants: results table, pairwise tests and a
conclusion that names the variant chosen on validation."""

from __future__ import annotations

import pandas as pd

from .figures import _percent, _require_columns
from .markdown import _markdown_table
from .selection import TIE_POINTS
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
    if column in ("balanced_accuracy", "macro_f1", "val_metric"):
        return _percent(value)
    if column == "train_seconds":
        return f"{value:,.0f}"
    if column in ("epochs_run", "best_epoch"):
        return f"{value:.1f}"
    if column == "lr":
        return f"{value:.2g}"
    if column == "converged":
        return "yes" if bool(value) else "**no: hit the cap**"
    return f"{int(value):,}"  # trainable_params, steps


def _pair_row(mcnemar_table: pd.DataFrame, a: str, b: str) -> pd.Series | None:
    match = mcnemar_table[
        ((mcnemar_table["variant_a"] == a) & (mcnemar_table["variant_b"] == b))
        | ((mcnemar_table["variant_a"] == b) & (mcnemar_table["variant_b"] == a))
    ]
    return None if match.empty else match.iloc[0]


def _metric_name(comparison: pd.DataFrame) -> str:
    metric = comparison["metric"].iloc[0] if "metric" in comparison.columns else "accuracy"
    return str(metric).replace("_", " ")


def _chosen_lines(comparison: pd.DataFrame) -> tuple[pd.Series | None, list[str]]:
    """The chosen variant's row and the lines that state the choice and the flags."""
    metric = _metric_name(comparison)
    selected = comparison[comparison["selected"].astype(bool)] if "selected" in comparison else []
    lines = []
    chosen = None
    if len(selected):
        chosen = selected.iloc[0]
        test = _percent(chosen["accuracy"])
        if {"accuracy_ci_low", "accuracy_ci_high"} <= set(comparison.columns):
            test += (
                f" [{100 * chosen['accuracy_ci_low']:.1f}, {100 * chosen['accuracy_ci_high']:.1f}]"
            )
        validation = (
            f"validation {metric} {_percent(chosen['val_metric'])}; "
            if "val_metric" in chosen.index
            else ""
        )
        lines.append(
            f"Chosen on validation: **{chosen['variant']}** ({validation}test accuracy {test})."
        )
    else:
        lines.append(
            "No variant can be recommended: none converged within its training cap "
            "(raise max_images and re-run)."
        )
    if "converged" in comparison.columns:
        for _, row in comparison[~comparison["converged"].astype(bool)].iterrows():
            lines.append(
                f"**Flagged: {row['variant']} hit its training cap** ({int(row['steps']):,} "
                "steps) while validation was still improving: not converged, so its result "
                "understates what it can reach and it is never chosen. Raise its max_images."
            )
    return chosen, [*lines, ""]


def _conclusion(
    comparison: pd.DataFrame, mcnemar_table: pd.DataFrame, ci_label: str, alpha: float
) -> list[str]:
    chosen, lines = _chosen_lines(comparison)
    if len(comparison) == 1 or chosen is None:
        return [*lines, *_choice_rule(comparison)]
    has_ci = {"accuracy_ci_low", "accuracy_ci_high"} <= set(comparison.columns)
    for _, other in comparison.iterrows():
        if other["variant"] == chosen["variant"]:
            continue
        line = f"- {chosen['variant']} vs {other['variant']}: "
        pair = _pair_row(mcnemar_table, chosen["variant"], other["variant"])
        if pair is None:
            line += "no paired test available"
        else:
            significant = pair["p_value_holm"] < alpha
            verdict = "significant" if significant else "not significant"
            line += f"test difference {verdict} (Holm-adjusted {_p_phrase(pair['p_value_holm'])})"
        line += f"; {_percent(chosen['accuracy'])} vs {_percent(other['accuracy'])}"
        if has_ci:
            overlap = (
                chosen["accuracy_ci_low"] <= other["accuracy_ci_high"]
                and other["accuracy_ci_low"] <= chosen["accuracy_ci_high"]
            )
            line += f"; the {ci_label} CIs {'overlap' if overlap else 'do not overlap'}"
        lines.append(line + ".")
    lines += [
        "",
        f"Significance: McNemar's test on the same test photos (paired), Holm-corrected "
        f"across all pairs, at {alpha:g}. Overlapping CIs alone do not show that a paired "
        "difference is not significant.",
        "",
        *_choice_rule(comparison),
    ]
    return lines


def _choice_rule(comparison: pd.DataFrame) -> list[str]:
    metric = _metric_name(comparison)
    why = (
        "the largest class has at least twice the photos of the smallest"
        if metric == "balanced accuracy"
        else "the classes are balanced within a factor of two"
    )
    seeds = int(comparison["n_seeds"].max()) if "n_seeds" in comparison.columns else 1
    pooled = (
        [
            f"Accuracy is the mean over {seeds} training seeds; its interval is a two-level "
            "bootstrap over seeds and test samples, so it includes the training variance. "
            "The kept model (and its confusion matrix) is the seed with the best validation "
            "metric.",
            "",
        ]
        if seeds > 1
        else []
    )
    return [
        *pooled,
        f"How the variant is chosen: by its best validation {metric} ({why}); variants "
        f"within {TIE_POINTS:g} points are tied and the cheaper one is chosen (frozen, then "
        "finetune, then scratch); a variant that did not converge is never chosen. Test "
        "results are reported, never used to choose. Every variant trained until "
        "validation stopped improving (early stopping), with its learning rate chosen by a "
        "range test unless one was given.",
    ]


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
        "val_metric": "Val metric (choice)",
        "lr": "lr",
        "steps": "Steps",
        "epochs_run": "Epochs",
        "best_epoch": "Best epoch",
        "converged": "Converged",
        "train_seconds": "Train time (s)",
        "trainable_params": "Trainable params",
    }
    headers["val_metric"] = f"Val {_metric_name(comparison)} (choice)"
    columns = [c for c in headers if c in comparison.columns]
    if not {"accuracy_ci_low", "accuracy_ci_high"} <= set(comparison.columns):
        headers["accuracy"] = "Accuracy"
    lines = ["## Results", ""]
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
