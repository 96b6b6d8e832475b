"""The Markdown report comparing the study's variants: results table, paired differences
and a conclusion that names the variant chosen on validation."""

from __future__ import annotations

import pandas as pd

from .diverged import diverged_flag, diverged_mask, is_diverged
from .figures import _percent, _require_columns
from .markdown import _markdown_table
from .pairs import PAIR_COLUMNS
from .selection import TIE_POINTS

# How the prose names a variant whose id is not a word.
_PROSE_NAMES = {"finetune": "fine-tune", "finetune_top": "partial fine-tune"}
# The table's columns that hold results: none is shown for a diverged variant.
_RESULTS = ("accuracy", "balanced_accuracy", "macro_f1", "val_metric")


def _format_p(p: float) -> str:
    return "< 0.001" if p < 0.001 else f"{p:.2g}"


def _p_phrase(p: float) -> str:
    formatted = _format_p(p)
    return f"p {formatted}" if formatted.startswith("<") else f"p = {formatted}"


def _diverged_cell(column: str, row: pd.Series) -> str | None:
    """What a diverged variant's row shows instead of a result (``None``: the value)."""
    if column == "accuracy":
        step = row.get("divergence_step")
        return "**diverged**" if pd.isna(step) else f"**diverged at step {int(step):,}**"
    if column in _RESULTS:
        return "—"
    return "**no: diverged**" if column == "converged" else None


def _format_cell(column: str, row: pd.Series) -> str:
    value = row[column]
    if column in ("variant", "backbone"):
        return str(value)
    if is_diverged(row) and (shown := _diverged_cell(column, row)) is not None:
        return shown
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


def _prose(variant: str) -> str:
    return _PROSE_NAMES.get(variant, variant)


def _points(fraction: float) -> str:
    # A typographic minus, as in the rest of the reports, and always a sign.
    # + 0.0 turns a negative zero (a flipped zero difference) into +0.0.
    return f"{100 * fraction + 0.0:+.1f}".replace("-", "−")


def _difference_sentence(
    first: str, second: str, pair: pd.Series, alpha: float, *, flipped: bool = False
) -> str:
    """``first − second: +3.0 points [−1.5, +7.5], no evidence of a difference (…)``;
    ``flipped`` when ``pair`` holds ``second − first``."""
    sign = -1 if flipped else 1
    difference = sign * pair["difference"]
    low, high = sorted((sign * pair["ci_low"], sign * pair["ci_high"]))
    if pair["p_holm"] < alpha:
        verdict = f"evidence that {_prose(first if difference > 0 else second)} is better"
    else:
        verdict = "no evidence of a difference"
    return (
        f"{_prose(first)} − {_prose(second)}: {_points(difference)} points "
        f"[{_points(low)}, {_points(high)}], {verdict} "
        f"({_p_phrase(pair['p_holm'])}, Holm-adjusted)"
    )


def _pair_row(pairs: pd.DataFrame, a: str, b: str) -> tuple[pd.Series, bool] | None:
    """The row comparing ``a`` and ``b`` and whether it holds ``b − a``."""
    for first, second, flipped in ((a, b, False), (b, a, True)):
        match = pairs[(pairs["a"] == first) & (pairs["b"] == second)]
        if not match.empty:
            return match.iloc[0], flipped
    return None


def _pairs_metric(comparison: pd.DataFrame, pairs: pd.DataFrame) -> str:
    if "metric" in pairs.columns and not pairs.empty:
        return str(pairs["metric"].iloc[0]).replace("_", " ")
    return _metric_name(comparison)


def _left_out(comparison: pd.DataFrame) -> list[str]:
    """Why diverged variants are not in the paired differences."""
    diverged = comparison.loc[diverged_mask(comparison), "variant"]
    if diverged.empty:
        return []
    names = " and ".join(_prose(str(v)) for v in diverged)
    verb = "diverged and is" if len(diverged) == 1 else "diverged and are"
    return [
        f"{names} {verb} left out: a difference to a training stopped early would say "
        "nothing about its variant."
    ]


def _sentence(text: str) -> str:
    return text[:1].upper() + text[1:]


def _paired_differences(
    comparison: pd.DataFrame, pairs: pd.DataFrame, ci_label: str, alpha: float
) -> list[str]:
    left_out = _left_out(comparison)
    if pairs.empty and left_out:
        return [f"No pair of variants to compare: {left_out[0]}"]
    if pairs.empty:
        return ["Only one variant; nothing to compare."]
    metric = _pairs_metric(comparison, pairs)
    # One name for the test; "(exact)" where few samples let every swap be enumerated.
    tests = " or ".join(sorted(set(pairs["test"])))
    lines = [
        f"Test {metric} of each pair of variants on the same test photos, the more "
        f"elaborate variant first, in points, with its {ci_label} interval. The comparison "
        "is cluster-aware: physical samples, not photos, are the independent units. The "
        "interval is a bootstrap that resamples whole samples (all photos of a sample "
        f"together) and the test a {tests}, Holm-adjusted across the {len(pairs)} pairs "
        f"and read at {alpha:g}.",
        "",
    ]
    lines += [f"- {_difference_sentence(r['a'], r['b'], r, alpha)}." for _, r in pairs.iterrows()]
    lines += [
        "",
        "No evidence of a difference is not evidence of no difference: the interval shows "
        "the differences this test set cannot rule out, and more test samples (not more "
        "photos of the same samples) narrow it.",
        *(["", _sentence(left_out[0])] if left_out else []),
    ]
    excludes_zero = (pairs["ci_low"] > 0) | (pairs["ci_high"] < 0)
    if (excludes_zero & (pairs["p_holm"] >= alpha)).any():
        lines += [
            "",
            "Where an interval excludes 0 but the test finds no evidence, trust the test: "
            "the interval is not adjusted for the number of pairs, and with few test "
            "samples a bootstrap interval is narrower than it should be.",
        ]
    return lines


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
    elif diverged_mask(comparison).any():
        lines.append(
            "No variant can be recommended: each diverged or hit its training cap (see below)."
        )
    else:
        lines.append(
            "No variant can be recommended: none converged within its training cap "
            "(raise max_images and re-run)."
        )
    diverged = diverged_mask(comparison)
    for _, row in comparison[diverged].iterrows():
        lines.append(diverged_flag(row, _prose(str(row["variant"]))))
    if "converged" in comparison.columns:
        for _, row in comparison[~comparison["converged"].astype(bool) & ~diverged].iterrows():
            lines.append(
                f"**Flagged: {row['variant']} hit its training cap** ({int(row['steps']):,} "
                "steps) while validation was still improving: not converged, so its result "
                "understates what it can reach and it is never chosen. Raise its max_images."
            )
    return chosen, [*lines, ""]


def _conclusion(comparison: pd.DataFrame, pairs: pd.DataFrame, alpha: float) -> list[str]:
    chosen, lines = _chosen_lines(comparison)
    if len(comparison) == 1 or chosen is None:
        return [*lines, *_choice_rule(comparison)]
    lines.append(
        f"The chosen variant against the others, in test {_pairs_metric(comparison, pairs)} "
        "(see Paired differences):"
    )
    lines.append("")
    for _, other in comparison.iterrows():
        if other["variant"] == chosen["variant"]:
            continue
        found = _pair_row(pairs, chosen["variant"], other["variant"])
        if is_diverged(other):
            line = (
                f"{_prose(chosen['variant'])} vs {_prose(other['variant'])}: not compared, "
                f"{_prose(other['variant'])} diverged"
            )
        elif found is None:
            line = f"{_prose(chosen['variant'])} vs {_prose(other['variant'])}: no paired test"
        else:
            pair, flipped = found
            line = _difference_sentence(
                chosen["variant"], other["variant"], pair, alpha, flipped=flipped
            )
        lines.append(f"- {line}.")
    return [*lines, "", *_choice_rule(comparison)]


def _partial_fine_tuning(comparison: pd.DataFrame) -> list[str]:
    """What the partial fine-tune trained, which the table's parameter count only hints."""
    if "trainable_stages" not in comparison.columns:
        return []
    lines = []
    for _, row in comparison[comparison["trainable_stages"].notna()].iterrows():
        stages = int(row["trainable_stages"])
        lines.append(
            f"{_prose(row['variant'])} ({row['variant']}) trained the backbone's last "
            f"{stages} stage{'s' if stages > 1 else ''} and the head; the earlier stages "
            "kept their pretrained weights and were computed once per photo and per "
            "augmented view (cached), so its augmentations cycle through those views "
            "instead of being drawn anew each epoch."
        )
    return ["", *lines] if lines else []


def _progressive_resizing(comparison: pd.DataFrame) -> list[str]:
    """Which variants trained at smaller sides first (their figures are at full size)."""
    if "input_sizes" not in comparison.columns:
        return []
    lines = [
        f"{_prose(row['variant'])} ({row['variant']}) trained with progressive resizing, "
        f"at {row['input_sizes']} px in turn, each side to convergence; its weights were "
        "chosen on validation at the last, full size, and tested at it."
        for _, row in comparison[comparison["input_sizes"].notna()].iterrows()
    ]
    return ["", *lines] if lines else []


def _cross_validation(comparison: pd.DataFrame) -> list[str]:
    folds = int(comparison["folds"].max()) if "folds" in comparison.columns else 1
    if folds < 2:
        return []
    return [
        f"**Grouped {folds}-fold cross-validation.** Every physical sample was tested once, "
        f"in one of {folds} folds, by models trained on the other folds (each fold's "
        "validation samples drawn from its own training samples). Test figures and "
        "intervals pool the folds' predictions, resampling samples; the validation metric "
        "is the mean of the folds' best; lr, steps and epochs are medians over folds "
        "(each fold's own in `training_summary.json`). The model kept for inference is the "
        "fold that validated best: the cross-validated figures describe the training "
        "procedure, not that one model.",
        "",
    ]


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
        *_cross_validation(comparison),
        f"How the variant is chosen: by its best validation {metric} ({why}); variants "
        f"within {TIE_POINTS:g} points are tied and the cheaper one is chosen (frozen, then "
        "finetune_top, then finetune, then scratch); a variant that did not converge (it "
        "hit its cap or diverged) is never chosen. Test "
        "results are reported, never used to choose. Every variant trained until "
        "validation stopped improving (early stopping), with its learning rate chosen as "
        "lr: auto says unless one was given (docs/user_guide.md).",
    ]


def comparison_markdown(
    comparison: pd.DataFrame,
    pairs: pd.DataFrame,
    *,
    confidence: float,
    alpha: float = 0.05,
) -> str:
    """A short Markdown report comparing the variants.

    Args:
        comparison: One row per variant with ``variant`` and ``accuracy`` (fractions)
            and any of ``backbone, accuracy_ci_low, accuracy_ci_high, balanced_accuracy,
            macro_f1, train_seconds, trainable_params, best_epoch``.
        pairs: Output of :func:`~transfer_study.evaluation.pairs.paired_differences`.
        confidence: Confidence level of the intervals (for the labels).
        alpha: Level at which a Holm-adjusted p-value counts as evidence of a difference.

    Returns:
        Markdown with a results table, one sentence per pair of variants (difference,
        interval, verdict, Holm-adjusted p) and a conclusion.

    Raises:
        ValueError: If required columns are missing or ``comparison`` is empty.
    """
    _require_columns(comparison, ["variant", "accuracy"], "comparison")
    _require_columns(pairs, PAIR_COLUMNS[:8], "pairs")
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
    lines += _partial_fine_tuning(comparison) + _progressive_resizing(comparison)
    lines += ["", "## Paired differences", ""]
    lines += _paired_differences(comparison, pairs, ci_label, alpha)
    lines += ["", "## Conclusion", ""]
    lines += _conclusion(comparison, pairs, alpha)
    return "\n".join(lines) + "\n"
