"""Markdown reports: the data-size ablation's recommendation, and the table helper that the
variant comparison (``comparison_report``) shares."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import pandas as pd


def _markdown_table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    table = pd.DataFrame([list(row) for row in rows], columns=list(headers))
    # disable_numparse: tabulate would rewrite numeric-looking cells ("+4.6" -> "4.6").
    return table.to_markdown(index=False, disable_numparse=True).splitlines()


# --------------------------------------------------------------------------- ablation

_NOT_SHOWN = (
    "The answers hold for photos like these test photos, taken and labelled the same way, "
    "and for models trained as these cells were; a budget shown to be enough is at most "
    "the tolerance worse than the reference on this test set, not as good. Intervals cover "
    "the test samples and the seeds (each drawing its own subset and initialisation) but "
    "not another collection of training samples, another photographer or another camera. "
    "The samples-vs-angles model scores photos one by one, so with imbalanced classes it "
    "weighs the common classes more than balanced accuracy does, and it treats the seeds' "
    "models as independent. An extrapolation assumes more physical samples photographed "
    "like the fitted cells and that the curve keeps its shape beyond the grid: it is a "
    "guess, not a measurement."
)
_METRIC_NAMES = {"accuracy": "accuracy", "balanced_accuracy": "balanced accuracy"}


def _pct(value: float | None) -> str:
    return "n/a" if value is None else f"{100 * value:.1f} %"


def _points(value: float) -> str:
    return f"{100 * value:+.1f}"


def _count(n: float, noun: str) -> str:
    return f"{n:g} {noun}" if n == 1 else f"{n:g} {noun}s"


def _budget(cell: Mapping[str, Any]) -> str:
    return (
        f"{_count(cell['n_samples'], 'sample')} × {_count(cell['n_angles'], 'angle')} "
        f"({_count(cell['photos'], 'photo')})"
    )


def _interval(low: float, high: float, scale: float = 100, digits: int = 1) -> str:
    return f"[{scale * low:.{digits}f}, {scale * high:.{digits}f}]"


def _headline(recommendation: Mapping[str, Any]) -> list[str]:
    variant = recommendation["recommended_variant"]
    if variant is None:
        lines = [f"**Answer:** no variant is recommended: {recommendation['reason']}", ""]
        lines += [
            f"- {name}: {result['verdict']}" for name, result in recommendation["variants"].items()
        ]
    else:
        lines = [f"**Answer ({variant}):** {recommendation['verdict']}", ""]
        lines.append(f"- Recommended variant: {recommendation['reason']}")
    metric = _METRIC_NAMES[recommendation["metric"]]
    lines.append(
        f"- Headline metric: {metric}; a budget is enough when its loss against the "
        f"reference is below {100 * recommendation['tolerance']:g} points."
    )
    lines.append(f"- {recommendation['intervals']}")
    if recommendation["seed_warning"]:
        lines.append(f"- **Warning:** {recommendation['seed_warning']}")
    lines += _diverged_lines(recommendation.get("diverged_cells") or [])
    return lines


def _diverged_lines(cells: Sequence[Mapping[str, Any]]) -> list[str]:
    """The flag for cells whose training diverged: they are not data points of a trained
    model, though their scores stay in the tables (the tests pair every seed)."""
    if not cells:
        return []
    where = "; ".join(
        f"{c['variant']} {c['n_samples']} × {c['n_angles']} seed {c['seed']} (step {c['steps']})"
        for c in cells
    )
    return [
        f"- **Flagged: {_count(len(cells), 'cell')} diverged** ({where}): the training was "
        "stopped and its model is an early checkpoint, so these scores, still in the tables "
        'below ("diverged" in Converged), are not what the budget can reach, and their '
        "variant's verdict is withheld. Lower that variant's learning rate "
        "(`data_size_ablation.training_overrides.<variant>.lr`) and re-run."
    ]


def _noninferiority_section(recommendation: Mapping[str, Any]) -> list[str]:
    level = f"{100 * recommendation['confidence']:g} %"
    metric = _METRIC_NAMES[recommendation["metric"]]
    lines = [
        "## Is a smaller budget enough? (non-inferiority to the largest)",
        "",
        f"The reference, fixed before any result was seen, is each variant's largest budget. "
        f"A smaller budget's loss (reference − budget, {metric}, paired on the same seeds and "
        f"test photos) is enough when its one-sided {level} upper bound (two-level "
        f"bootstrap) is below the tolerance. Budgets are tested from most photos to fewest "
        f"and testing stops at the first that fails, so the chance of any false 'enough' "
        f"stays at {100 - 100 * recommendation['confidence']:g} %.",
    ]
    headers = ["Order", "Budget", "Photos", _METRIC_NAMES[recommendation["metric"]].capitalize()]
    headers += ["Difference (points)", f"Loss, {level} upper bound (points)", "Verdict"]
    for variant, result in recommendation["variants"].items():
        reference = result["reference"]
        lines += [
            "",
            f"### {variant}",
            "",
            f"Reference: {_budget(reference)}, {metric} {_pct(reference['metric_mean'])}.",
            "",
        ]
        rows = [
            [
                str(i),
                budget["budget"],
                str(budget["photos"]),
                _pct(budget["metric_mean"]),
                _points(budget["difference"]),
                f"{100 * budget['loss_upper']:.1f}",
                budget["status"],
            ]
            for i, budget in enumerate(result["budgets"], start=1)
        ]
        lines += _markdown_table(headers, rows) if rows else []
        lines += ["", f"**Verdict:** {result['verdict']}"]
    return lines


def _slope(result: Mapping[str, Any], key: str) -> str:
    return f"{result[f'{key}_slope']:+.2f} {_interval(*result[f'{key}_ci'], scale=1, digits=2)}"


def _angles_rows(angles: Mapping[str, Any]) -> list[list[str]]:
    rows = []
    models = {"all variants": angles["all_variants"], **angles["variants"]}
    for name, result in models.items():
        if result["status"] != "ok":
            rows.append([name, "", "", "", result["verdict"]])
            continue
        difference = f"{result['difference']:+.2f} {_interval(*result['difference_ci'], 1, 2)}"
        rows.append(
            [
                name,
                _slope(result, "samples"),
                _slope(result, "angles"),
                difference,
                result["verdict"],
            ]
        )
    return rows


def _angles_section(recommendation: Mapping[str, Any]) -> list[str]:
    angles = recommendation["samples_vs_angles"]
    ci = f"{100 * angles['confidence']:g} % CI"
    lines = [
        "## More samples or more angles?",
        "",
        f"{angles['model']}. A slope is what one doubling adds to the log-odds that a test "
        "photo is classified right; both doublings double the training photos. The verdict "
        "reads the interval of their difference: above 0, more samples pay more; below 0, "
        "more angles do; around 0, no clear difference.",
        "",
    ]
    headers = ["Model", f"Samples slope [{ci}]", f"Angles slope [{ci}]"]
    lines += _markdown_table(
        [*headers, f"Samples − angles [{ci}]", "Verdict"], _angles_rows(angles)
    )
    models = {"all variants": angles["all_variants"], **angles["variants"]}
    lines += [
        f"- {name}: the fit warned: {'; '.join(result['warnings'])}"
        for name, result in models.items()
        if result["warnings"]
    ]
    return lines


def _extrapolation_cell(fit: Mapping[str, Any]) -> str:
    if fit["status"] != "ok":
        return f"none: {fit['message']}"
    return "; ".join(
        f"{_pct(p['metric'])} {_interval(p['low'], p['high'])} at {p['n_images']} photos "
        f"({p['multiple']:g}×)"
        for p in fit["predictions"]
    )


def _extrapolation_section(recommendation: Mapping[str, Any]) -> list[str]:
    level = f"{100 * recommendation['confidence']:g} %"
    lines = [
        "## Learning curve and extrapolation",
        "",
        "metric ≈ a − b·n^(−c), n = training photos, fitted to every seed's point at the "
        "largest angle count, only when the grid has at least 5 sample sizes. Bounds: "
        "0 ≤ a ≤ 1 (the plateau), b ≥ 0 (the curve rises), 0.001 ≤ c ≤ 5 (its rate); a fit "
        f"on a bound is not identified. Intervals ({level}) come from refitting each "
        "bootstrap replicate.",
        "",
    ]
    rows = []
    for variant, result in recommendation["variants"].items():
        fit = result["extrapolation"]
        fitted = fit.get("a") is not None
        rows.append(
            [
                variant,
                str(fit["n_sample_sizes"]),
                _pct(fit["a"]) if fitted else "",
                f"{fit['b']:.3g}" if fitted else "",
                f"{fit['c']:.3g}" if fitted else "",
                _extrapolation_cell(fit),
            ]
        )
    headers = ["Variant", "Sample sizes", "a (plateau)", "b", "c"]
    return lines + _markdown_table([*headers, f"Extrapolated [{level} interval]"], rows)


def _curve_row_cells(row: pd.Series, balanced: bool) -> list[str]:
    mean, low, high = (row[c] for c in ("accuracy_mean", "accuracy_ci_low", "accuracy_ci_high"))
    cells = [
        str(row["variant"]),
        *(str(int(row[column])) for column in ("n_samples", "n_angles", "n_images", "n_seeds")),
        f"{_pct(mean)} {_interval(low, high)}",
        f"{100 * row['accuracy_std']:.1f} pt",
    ]
    if balanced:  # the headline metric the tests above used
        cells.append(_pct(row["balanced_accuracy_mean"]))
    if {"steps_mean", "n_converged"} <= set(row.index):  # how the cells trained
        converged = f"{int(row['n_converged'])} of {int(row['n_seeds'])}"
        if row.get("n_diverged", 0) > 0:
            converged += f", **{int(row['n_diverged'])} diverged**"
        cells += [f"{row['steps_mean']:.0f}", converged]
    return cells


def _training_headers(curve: pd.DataFrame) -> list[str]:
    if {"steps_mean", "n_converged"} <= set(curve.columns):
        return ["Steps (mean)", "Converged"]
    return []


def recommendation_markdown(recommendation: Mapping[str, Any], curve: pd.DataFrame) -> str:
    """A readable report of the data-size ablation: the answer first, then the evidence.

    Args:
        recommendation: Output of
            :func:`transfer_study.evaluation.recommendation.recommend_data_budget`.
        curve: The learning curve from :func:`learning_curve_tables`.

    Returns:
        Markdown: the answer, the recommended variant and why, the non-inferiority
        table of each variant in test order, the samples-vs-angles model, the
        extrapolation (or why there is none), every cell, and what the report does not
        show.
    """
    ci = f"{100 * recommendation['confidence']:g} % CI"
    lines = ["# How much data is enough?", "", *_headline(recommendation), ""]
    lines += [*_noninferiority_section(recommendation), ""]
    lines += [*_angles_section(recommendation), ""]
    lines += [*_extrapolation_section(recommendation), ""]
    lines += ["## Every cell (mean over seeds)", ""]
    headers = ["Variant", "Samples", "Angles", "Photos", "Seeds", f"Accuracy [{ci}]"]
    headers.append("Std over seeds")
    balanced = recommendation["metric"] == "balanced_accuracy"
    balanced = balanced and "balanced_accuracy_mean" in curve.columns
    headers += ["Balanced accuracy"] if balanced else []
    lines += _markdown_table(
        [*headers, *_training_headers(curve)],
        [_curve_row_cells(row, balanced) for _, row in curve.iterrows()],
    )
    lines += ["", "## What this does not show", "", _NOT_SHOWN]
    return "\n".join(lines) + "\n"
