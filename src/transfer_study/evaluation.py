"""Evaluation of test predictions and comparison of training variants.

Pure functions: metrics with bootstrap confidence intervals (resampling whole physical
samples when a sample has several photos), paired McNemar tests between variants,
figures and a Markdown summary. Nothing here opens a file, logs to MLflow or prints.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Mapping, Sequence
from itertools import combinations
from typing import Literal

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator, PercentFormatter
from scipy import stats
from sklearn.metrics import (
    accuracy_score,
    balanced_accuracy_score,
    confusion_matrix,
    precision_recall_fscore_support,
    roc_auc_score,
    top_k_accuracy_score,
)
from statsmodels.stats.contingency_tables import mcnemar as _statsmodels_mcnemar
from statsmodels.stats.multitest import multipletests

logger = logging.getLogger(__name__)

BootstrapMethod = Literal["BCa", "percentile", "basic"]

# Softmax outputs in float16/bfloat16 sum to 1 only to about 1e-3.
_PROBABILITY_SUM_TOLERANCE = 1e-3
# Resamples evaluated per batch: bounds memory to ~batch x n floats for large test sets
# (scipy would otherwise build an n x n array for the BCa jackknife).
_BOOTSTRAP_BATCH = 256

_HISTORY_COLUMNS = ("epoch", "train_loss", "val_loss", "train_accuracy", "val_accuracy")
_PAIRWISE_COLUMNS = [
    "variant_a",
    "variant_b",
    "accuracy_a",
    "accuracy_b",
    "n_a_only_correct",
    "n_b_only_correct",
    "statistic",
    "p_value",
    "method",
    "p_value_holm",
]


# --------------------------------------------------------------------------- bootstrap


def _as_correct(correct: np.ndarray, name: str = "correct") -> np.ndarray:
    """Validates a 1-D array of 0/1 or booleans and returns it as booleans."""
    array = np.asarray(correct)
    if array.ndim != 1 or array.size == 0:
        raise ValueError(f"{name} must be a non-empty 1-D array, got shape {array.shape}.")
    if array.dtype != bool and not np.isin(array, (0, 1)).all():
        raise ValueError(f"{name} must hold booleans or 0/1 values.")
    return array.astype(bool)


def _cluster_totals(
    correct: np.ndarray, groups: np.ndarray | None
) -> tuple[np.ndarray, np.ndarray]:
    """Correct predictions and photo count per group (one group per photo if no groups)."""
    if groups is None:
        return correct.astype(float), np.ones(correct.size)
    groups = np.asarray(groups)
    if groups.shape != correct.shape:
        raise ValueError(
            f"groups must have one id per prediction: shape {groups.shape} != {correct.shape}."
        )
    codes, _ = pd.factorize(groups)
    if (codes < 0).any():
        raise ValueError("groups contains missing ids (None/NaN).")
    sizes = np.bincount(codes).astype(float)
    return np.bincount(codes, weights=correct.astype(float)), sizes


def _ratio(correct: np.ndarray, sizes: np.ndarray, axis: int = -1) -> np.ndarray:
    return correct.sum(axis=axis) / sizes.sum(axis=axis)


def bootstrap_accuracy_ci(
    correct: np.ndarray,
    groups: np.ndarray | None = None,
    *,
    confidence: float = 0.95,
    n_resamples: int = 2000,
    seed: int = 0,
    method: BootstrapMethod = "BCa",
) -> tuple[float, float, float]:
    """Accuracy and its bootstrap confidence interval.

    Photos of one physical sample (several angles) are not independent, so when
    ``groups`` is given whole samples are resampled (cluster bootstrap) and the
    statistic is ``sum(correct) / sum(photos)`` over the drawn samples. scipy has no
    cluster option, but resampling the per-sample ``(correct, size)`` pairs with
    ``paired=True`` is exactly a cluster bootstrap, so no hand-rolled loop is needed.

    Args:
        correct: 1-D booleans (or 0/1), one per test photo.
        groups: Optional sample id per photo; photos sharing an id are resampled together.
        confidence: Confidence level of the interval, in (0, 1).
        n_resamples: Number of bootstrap resamples.
        seed: Seed of the resampling; the same seed gives the same interval.
        method: scipy's interval method. BCa falls back to percentile when it is
            undefined (nearly degenerate bootstrap distributions).

    Returns:
        ``(accuracy, low, high)`` as fractions in [0, 1]. When all predictions are
        right (or all wrong) the interval is ``[accuracy, accuracy]``.

    Raises:
        ValueError: If inputs are malformed, ``confidence`` is outside (0, 1), or there
            are fewer than two independent units (photos or groups) to resample.
    """
    correct = _as_correct(correct)
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}.")
    hits, sizes = _cluster_totals(correct, groups)
    accuracy = float(hits.sum() / sizes.sum())
    if correct.all() or not correct.any():
        # Every resample has the same accuracy; BCa would return NaN.
        return accuracy, accuracy, accuracy
    if hits.size < 2:
        raise ValueError("Need at least two photos (or groups) to bootstrap a confidence interval.")

    interval = _scipy_interval(hits, sizes, confidence, n_resamples, seed, method)
    if method == "BCa" and not np.isfinite(interval).all():
        logger.info("BCa interval undefined for these data; using the percentile interval.")
        interval = _scipy_interval(hits, sizes, confidence, n_resamples, seed, "percentile")
    return accuracy, float(interval[0]), float(interval[1])


def _scipy_interval(
    hits: np.ndarray,
    sizes: np.ndarray,
    confidence: float,
    n_resamples: int,
    seed: int,
    method: BootstrapMethod,
) -> np.ndarray:
    with warnings.catch_warnings():
        # The NaN BCa result is handled by the caller; scipy's warning would only be noise.
        warnings.simplefilter("ignore", stats.DegenerateDataWarning)
        warnings.simplefilter("ignore", RuntimeWarning)
        result = stats.bootstrap(
            (hits, sizes),
            _ratio,
            paired=True,
            vectorized=True,
            confidence_level=confidence,
            n_resamples=n_resamples,
            method=method,
            batch=_BOOTSTRAP_BATCH,
            rng=np.random.default_rng(seed),
        )
    return np.array([result.confidence_interval.low, result.confidence_interval.high])


# --------------------------------------------------------------------------- metrics


def _as_labels(labels: np.ndarray, name: str, n_classes: int) -> np.ndarray:
    array = np.asarray(labels)
    if array.ndim != 1 or array.size == 0:
        raise ValueError(f"{name} must be a non-empty 1-D array, got shape {array.shape}.")
    if not np.issubdtype(array.dtype, np.integer):
        raise ValueError(f"{name} must hold integer class indices, got dtype {array.dtype}.")
    if array.min() < 0 or array.max() >= n_classes:
        raise ValueError(
            f"{name} holds labels outside [0, {n_classes - 1}] "
            f"(min {array.min()}, max {array.max()}) for {n_classes} classes."
        )
    return array


def _validate_predictions(
    y_true: np.ndarray, y_pred: np.ndarray, class_names: Sequence[str]
) -> tuple[np.ndarray, np.ndarray]:
    n_classes = len(class_names)
    if n_classes < 2:
        raise ValueError(f"Need at least two classes, got {list(class_names)}.")
    if len(set(class_names)) != n_classes:
        raise ValueError(f"class_names must be unique, got {list(class_names)}.")
    y_true = _as_labels(y_true, "y_true", n_classes)
    y_pred = _as_labels(y_pred, "y_pred", n_classes)
    if y_true.shape != y_pred.shape:
        raise ValueError(f"y_true and y_pred lengths differ: {y_true.size} != {y_pred.size}.")
    return y_true, y_pred


def _validate_probabilities(
    probabilities: np.ndarray, n_samples: int, n_classes: int
) -> np.ndarray:
    """Checks shape, range and row sums; returns rows renormalised to sum exactly to 1."""
    probs = np.asarray(probabilities, dtype=float)
    if probs.shape != (n_samples, n_classes):
        raise ValueError(
            f"probabilities must have shape (n_samples, n_classes) = ({n_samples}, {n_classes}), "
            f"got {probs.shape}."
        )
    if not np.isfinite(probs).all() or (probs < 0).any():
        raise ValueError("probabilities must be finite and non-negative.")
    row_sums = probs.sum(axis=1)
    if not np.allclose(row_sums, 1.0, rtol=0, atol=_PROBABILITY_SUM_TOLERANCE):
        worst = int(np.argmax(np.abs(row_sums - 1)))
        raise ValueError(
            f"probabilities rows must sum to 1 (softmax outputs, not logits); "
            f"row {worst} sums to {row_sums[worst]:.6g}."
        )
    # scikit-learn's multiclass ROC AUC rejects sums off by more than ~1e-8.
    return probs / row_sums[:, None]


def classification_metrics(
    y_true: np.ndarray,
    y_pred: np.ndarray,
    probabilities: np.ndarray,
    class_names: list[str],
    *,
    groups: np.ndarray | None = None,
    confidence: float = 0.95,
    n_resamples: int = 2000,
    seed: int = 0,
    top_k: Sequence[int] = (1, 3, 5),
) -> dict[str, float]:
    """Test-set metrics of a classifier, flat and ready to log.

    Macro averages run over the classes present in ``y_true`` or ``y_pred``
    (scikit-learn's default), so a class absent from the test set does not count as a
    zero; per-class entries are reported for every class.

    Args:
        y_true: True class index per photo.
        y_pred: Predicted class index per photo.
        probabilities: ``(n_photos, n_classes)`` predicted probabilities (softmax).
        class_names: Class names in class-index order.
        groups: Optional sample id per photo for the cluster bootstrap of accuracy.
        confidence: Confidence level of the accuracy interval.
        n_resamples: Bootstrap resamples.
        seed: Bootstrap seed.
        top_k: Values of ``k`` for top-k accuracy (only ``k < n_classes``, and only for
            more than two classes).

    Returns:
        ``accuracy``, ``accuracy_ci_low``, ``accuracy_ci_high``, ``balanced_accuracy``,
        ``macro_f1``, ``macro_precision``, ``macro_recall``; ``precision_<class>``,
        ``recall_<class>``, ``f1_<class>``, ``support_<class>`` per class; ``roc_auc``
        for two classes, or ``roc_auc_ovr_macro`` and ``top_<k>_accuracy`` for more.
        ROC AUC keys are omitted when a class is missing from ``y_true`` (undefined).

    Raises:
        ValueError: If shapes disagree, labels are out of range, class names repeat or
            probability rows do not sum to 1.
    """
    y_true, y_pred = _validate_predictions(y_true, y_pred, class_names)
    n_classes = len(class_names)
    probs = _validate_probabilities(probabilities, y_true.size, n_classes)
    labels = list(range(n_classes))

    _, low, high = bootstrap_accuracy_ci(
        y_true == y_pred, groups, confidence=confidence, n_resamples=n_resamples, seed=seed
    )
    precision, recall, f1, _ = precision_recall_fscore_support(
        y_true, y_pred, average="macro", zero_division=0
    )
    metrics = {
        "accuracy": float(accuracy_score(y_true, y_pred)),
        "accuracy_ci_low": low,
        "accuracy_ci_high": high,
        "balanced_accuracy": float(balanced_accuracy_score(y_true, y_pred)),
        "macro_f1": float(f1),
        "macro_precision": float(precision),
        "macro_recall": float(recall),
    }
    per_class = precision_recall_fscore_support(
        y_true, y_pred, labels=labels, average=None, zero_division=0
    )
    for name, values in zip(("precision", "recall", "f1", "support"), per_class, strict=True):
        for cls, value in zip(class_names, values, strict=True):
            metrics[f"{name}_{cls}"] = float(value)

    all_classes_present = np.unique(y_true).size == n_classes
    if n_classes == 2:
        if all_classes_present:
            metrics["roc_auc"] = float(roc_auc_score(y_true, probs[:, 1]))
    else:
        if all_classes_present:
            metrics["roc_auc_ovr_macro"] = float(
                roc_auc_score(y_true, probs, multi_class="ovr", average="macro", labels=labels)
            )
        for k in sorted(set(top_k)):
            if 1 <= k < n_classes:
                metrics[f"top_{k}_accuracy"] = float(
                    top_k_accuracy_score(y_true, probs, k=k, labels=labels)
                )
    return metrics


# --------------------------------------------------------------------------- McNemar


def mcnemar_test(
    correct_a: np.ndarray, correct_b: np.ndarray, *, exact_below: int = 25
) -> dict[str, float | int | str]:
    """McNemar's test of two classifiers on the same test photos (paired).

    Args:
        correct_a: Per-photo correctness of classifier A.
        correct_b: Per-photo correctness of classifier B, same photos in the same order.
        exact_below: Use the exact binomial test when fewer discordant photos than this,
            otherwise chi-square with continuity correction.

    Returns:
        ``n01`` (A wrong, B right), ``n10`` (A right, B wrong), ``statistic``,
        ``p_value`` (two-sided) and ``method`` (``"exact"`` or ``"chi2"``).

    Raises:
        ValueError: If the arrays are not 1-D booleans of equal length.
    """
    a = _as_correct(correct_a, "correct_a")
    b = _as_correct(correct_b, "correct_b")
    if a.shape != b.shape:
        raise ValueError(
            f"correct_a and correct_b must score the same photos: lengths {a.size} != {b.size}."
        )
    n01 = int(np.sum(~a & b))
    n10 = int(np.sum(a & ~b))
    exact = n01 + n10 < exact_below
    # statsmodels reads only the off-diagonal cells.
    table = [[int(np.sum(a & b)), n10], [n01, int(np.sum(~a & ~b))]]
    result = _statsmodels_mcnemar(table, exact=exact, correction=True)
    return {
        "n01": n01,
        "n10": n10,
        "statistic": float(result.statistic),
        "p_value": float(result.pvalue),
        "method": "exact" if exact else "chi2",
    }


def pairwise_mcnemar(
    correct_by_variant: Mapping[str, np.ndarray], *, exact_below: int = 25
) -> pd.DataFrame:
    """McNemar's test for every unordered pair of variants, Holm-corrected across pairs.

    Args:
        correct_by_variant: Per-photo correctness of each variant, same photos in the
            same order; pairs follow the mapping's order.
        exact_below: Passed to :func:`mcnemar_test`.

    Returns:
        One row per pair with ``variant_a, variant_b, accuracy_a, accuracy_b,
        n_a_only_correct, n_b_only_correct, statistic, p_value, method, p_value_holm``.
        Empty (with these columns) for fewer than two variants.

    Raises:
        ValueError: If the variants scored different numbers of photos.
    """
    correct = {name: _as_correct(values, name) for name, values in correct_by_variant.items()}
    if len({v.size for v in correct.values()}) > 1:
        sizes = {name: v.size for name, v in correct.items()}
        raise ValueError(f"All variants must score the same test photos; sizes: {sizes}.")
    rows = []
    for name_a, name_b in combinations(correct, 2):
        test = mcnemar_test(correct[name_a], correct[name_b], exact_below=exact_below)
        rows.append(
            {
                "variant_a": name_a,
                "variant_b": name_b,
                "accuracy_a": float(correct[name_a].mean()),
                "accuracy_b": float(correct[name_b].mean()),
                "n_a_only_correct": test["n10"],
                "n_b_only_correct": test["n01"],
                "statistic": test["statistic"],
                "p_value": test["p_value"],
                "method": test["method"],
            }
        )
    table = pd.DataFrame(rows, columns=_PAIRWISE_COLUMNS[:-1])
    table["p_value_holm"] = (
        multipletests(table["p_value"], method="holm")[1] if rows else pd.Series(dtype=float)
    )
    return table


# --------------------------------------------------------------------------- figures

_CELL_INCHES = 0.7
_MIN_CONFUSION_INCHES = 4.0
_MAX_CELL_FONT = 12.0
_MIN_CELL_FONT = 6.5


def confusion_matrix_figure(
    y_true: np.ndarray, y_pred: np.ndarray, class_names: list[str], *, title: str
) -> Figure:
    """Confusion matrix with counts and row-normalised percentages (share of true class).

    Args:
        y_true: True class index per photo.
        y_pred: Predicted class index per photo.
        class_names: Class names in class-index order.
        title: Figure title.

    Returns:
        A figure with the matrix and its colour bar (two axes).

    Raises:
        ValueError: If labels are malformed or out of range.
    """
    y_true, y_pred = _validate_predictions(y_true, y_pred, class_names)
    n = len(class_names)
    counts = confusion_matrix(y_true, y_pred, labels=list(range(n)))
    row_totals = counts.sum(axis=1, keepdims=True)
    shares = np.divide(counts, row_totals, out=np.zeros(counts.shape), where=row_totals > 0)

    side = max(_MIN_CONFUSION_INCHES, _CELL_INCHES * n + 2.5)
    fig = Figure(figsize=(side + 1.0, side), layout="constrained")
    ax = fig.subplots()
    image = ax.imshow(shares, cmap="Blues", vmin=0, vmax=1)
    colorbar = fig.colorbar(image, ax=ax, format=PercentFormatter(xmax=1), shrink=0.8)
    colorbar.set_label("share of true class")

    font = float(np.clip(130 / n, _MIN_CELL_FONT, _MAX_CELL_FONT))
    decimals = 1 if n <= 10 else 0  # whole percents keep 20 x 20 cells legible
    for i, j in np.ndindex(counts.shape):
        text = f"{counts[i, j]}"
        if counts[i, j] > 0:  # bare zeros keep large, sparse matrices readable
            text += f"\n{100 * shares[i, j]:.{decimals}f} %"
        ax.text(
            j,
            i,
            text,
            ha="center",
            va="center",
            fontsize=font,
            color="white" if shares[i, j] > 0.5 else "black",
        )

    ax.set_xticks(range(n), class_names, rotation=45, ha="right", rotation_mode="anchor")
    ax.set_yticks(range(n), class_names)
    ax.set_xlabel("Predicted class")
    ax.set_ylabel("True class")
    ax.set_title(title)
    return fig


def _best_epoch_row(history: pd.DataFrame) -> pd.Series | None:
    """Highest validation accuracy, ties broken by lower validation loss (as in ``fit``)."""
    valid = history.dropna(subset=["val_accuracy"])
    if valid.empty:
        return None
    ranked = valid.sort_values(["val_accuracy", "val_loss"], ascending=[False, True], kind="stable")
    return ranked.iloc[0]


def training_curves_figure(history: pd.DataFrame, *, title: str) -> Figure:
    """Loss and accuracy per epoch for training and validation.

    Args:
        history: Columns ``epoch, train_loss, val_loss, train_accuracy, val_accuracy``
            (accuracies as fractions) and optionally ``lr``, drawn on a log-scale
            secondary axis of the loss panel.
        title: Figure title.

    Returns:
        A figure with a loss and an accuracy panel (plus a twin axis when ``lr`` is
        present); the best validation epoch is marked by a vertical line.

    Raises:
        ValueError: If required columns are missing or ``history`` is empty.
    """
    missing = [c for c in _HISTORY_COLUMNS if c not in history.columns]
    if missing:
        raise ValueError(f"history is missing columns {missing}.")
    if history.empty:
        raise ValueError("history has no epochs.")

    fig = Figure(figsize=(11, 4), layout="constrained")
    loss_ax, acc_ax = fig.subplots(1, 2)
    epochs = history["epoch"]
    for ax, metric, label in ((loss_ax, "loss", "Loss"), (acc_ax, "accuracy", "Accuracy")):
        ax.plot(epochs, history[f"train_{metric}"], marker="o", markersize=3, label="train")
        ax.plot(epochs, history[f"val_{metric}"], marker="o", markersize=3, label="validation")
        ax.set_xlabel("Epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
    acc_ax.yaxis.set_major_formatter(PercentFormatter(xmax=1, decimals=0))

    best = _best_epoch_row(history)
    if best is not None:
        for ax in (loss_ax, acc_ax):
            ax.axvline(
                best["epoch"],
                color="grey",
                linestyle="--",
                linewidth=1,
                label=f"best epoch ({int(best['epoch'])})",
            )

    handles, labels = loss_ax.get_legend_handles_labels()
    if "lr" in history.columns and (history["lr"] > 0).any():
        lr_ax = loss_ax.twinx()
        lr_ax.plot(epochs, history["lr"], color="tab:green", linestyle=":", label="learning rate")
        lr_ax.set_yscale("log")
        lr_ax.set_ylabel("Learning rate")
        lr_handles, lr_labels = lr_ax.get_legend_handles_labels()
        handles, labels = handles + lr_handles, labels + lr_labels
    loss_ax.legend(handles, labels, fontsize="small")
    acc_ax.legend(fontsize="small")
    fig.suptitle(title)
    return fig


def _require_columns(frame: pd.DataFrame, columns: Sequence[str], name: str) -> None:
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise ValueError(f"{name} is missing columns {missing}.")


def _percent(value: float) -> str:
    return f"{100 * value:.1f} %"


def variant_comparison_figure(comparison: pd.DataFrame, *, title: str) -> Figure:
    """Test accuracy per variant as bars with confidence-interval whiskers.

    Args:
        comparison: One row per variant with ``variant``, ``accuracy`` and, for the
            whiskers, ``accuracy_ci_low`` and ``accuracy_ci_high`` (fractions).
        title: Figure title.

    Returns:
        A figure with one bar axis, y in percent, each bar labelled with its accuracy.

    Raises:
        ValueError: If ``variant`` or ``accuracy`` is missing, or there are no rows.
    """
    _require_columns(comparison, ["variant", "accuracy"], "comparison")
    if comparison.empty:
        raise ValueError("comparison has no variants.")
    accuracy = comparison["accuracy"].to_numpy(float)
    has_ci = {"accuracy_ci_low", "accuracy_ci_high"} <= set(comparison.columns)
    high = comparison["accuracy_ci_high"].to_numpy(float) if has_ci else accuracy
    low = comparison["accuracy_ci_low"].to_numpy(float) if has_ci else accuracy

    n = len(comparison)
    fig = Figure(figsize=(max(4.0, 1.3 * n + 2.0), 4.5), layout="constrained")
    ax = fig.subplots()
    positions = np.arange(n)
    # Clip at zero: a BCa interval can, in rare cases, exclude the point estimate.
    yerr = np.clip(np.vstack([accuracy - low, high - accuracy]), 0, None) if has_ci else None
    ax.bar(
        positions,
        accuracy,
        yerr=yerr,
        capsize=6,
        color=[f"C{i}" for i in range(n)],
        error_kw={"elinewidth": 1.2},
    )
    for x, top, value in zip(positions, np.fmax(high, accuracy), accuracy, strict=True):
        ax.annotate(
            _percent(value),
            (x, top),
            xytext=(0, 4),
            textcoords="offset points",
            ha="center",
            va="bottom",
            fontsize="small",
        )
    ax.set_xticks(positions, comparison["variant"].astype(str))
    ax.set_ylim(0, 1.1)  # head-room for labels above 100 % whiskers
    ax.yaxis.set_major_formatter(PercentFormatter(xmax=1, decimals=0))
    ax.set_ylabel("Test accuracy")
    ax.grid(axis="y", alpha=0.3)
    ax.set_title(title)
    return fig


# --------------------------------------------------------------------------- Markdown


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
