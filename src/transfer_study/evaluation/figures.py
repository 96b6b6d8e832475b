"""Figures of a classifier's evaluation, the comparison of variants and the data-size
ablation.

Each function returns a matplotlib ``Figure`` (no pyplot state); saving is the
catalog's job.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.ticker import NullFormatter, PercentFormatter
from sklearn.metrics import confusion_matrix

from .diverged import diverged_mask
from .metrics import _validate_predictions

_HISTORY_COLUMNS = ("epoch", "train_loss", "val_loss", "train_accuracy", "val_accuracy")
_CELL_INCHES = 0.7
_MIN_CONFUSION_INCHES = 4.0
_MAX_CELL_FONT = 12.0
_MIN_CELL_FONT = 6.5
_DARK_CELL = 0.6  # heatmap cells below this share of the colour scale get white text


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
    """The row ``fit`` restored (its last ``improved`` one); without that column, the
    highest validation accuracy, ties broken by lower validation loss."""
    if "improved" in history.columns and history["improved"].astype(bool).any():
        return history[history["improved"].astype(bool)].iloc[-1]
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
        ax.set_xlabel("Epoch (training images seen / training photos)")
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
                label=f"best (epoch {best['epoch']:.1f})",
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


def lr_range_test_figure(curve: pd.DataFrame, choice: dict) -> Figure:
    """How the learning rate was chosen: the range test's smoothed loss against learning
    rate, or each candidate's validation loss (what chooses), with the choice marked.

    Args:
        curve: The range test's ``lr``, ``loss`` and ``smoothed_loss`` per step, or the
            candidates' ``lr`` and ``val_loss``; empty when the rate was given.
        choice: ``variant``, ``lr`` and ``source`` (and ``lr_at_minimum`` when searched).

    Returns:
        The figure.
    """
    fig = Figure(figsize=(6, 4), layout="constrained")
    ax = fig.subplots()
    title = f"{choice['variant']}: learning rate {choice['lr']:.3g} ({choice['source']})"
    if curve.empty:
        ax.text(0.5, 0.5, "lr given in the parameters: no search", ha="center")
        ax.set_axis_off()
    elif "val_loss" in curve.columns:  # candidates compared on validation
        ax.plot(curve["lr"], curve["val_loss"], marker="o", label="validation loss")
        ax.axvline(choice["lr"], color="tab:red", linestyle="--", label="chosen")
        ax.set_xscale("log")
        ax.set_xlabel("Learning rate (head)")
        ax.set_ylabel("Validation loss of its best checkpoint")
        ax.grid(alpha=0.3)
        ax.legend(fontsize="small")
    else:
        ax.plot(curve["lr"], curve["loss"], alpha=0.3, label="loss")
        ax.plot(curve["lr"], curve["smoothed_loss"], label="smoothed loss")
        ax.axvline(choice["lr"], color="tab:red", linestyle="--", label="chosen")
        if "lr_at_minimum" in choice:
            ax.axvline(choice["lr_at_minimum"], color="grey", linestyle=":", label="minimum")
        ax.set_xscale("log")
        ax.set_xlabel("Learning rate (head)")
        ax.set_ylabel("Training loss")
        ax.grid(alpha=0.3)
        ax.legend(fontsize="small")
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
        A figure with one bar axis, y in percent, each bar labelled with its accuracy; a
        variant whose training diverged (``diverged``) gets no bar, only the word.

    Raises:
        ValueError: If ``variant`` or ``accuracy`` is missing, or there are no rows.
    """
    _require_columns(comparison, ["variant", "accuracy"], "comparison")
    if comparison.empty:
        raise ValueError("comparison has no variants.")
    diverged = diverged_mask(comparison).to_numpy()
    # A diverged variant has no result to draw (evaluation/diverged.py).
    accuracy = np.where(diverged, 0.0, comparison["accuracy"].to_numpy(float))
    has_ci = {"accuracy_ci_low", "accuracy_ci_high"} <= set(comparison.columns)
    high = np.where(diverged, 0.0, comparison["accuracy_ci_high"]) if has_ci else accuracy
    low = np.where(diverged, 0.0, comparison["accuracy_ci_low"]) if has_ci else accuracy

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
    labels = ["diverged" if d else _percent(v) for d, v in zip(diverged, accuracy, strict=True)]
    for x, top, label in zip(positions, np.fmax(high, accuracy), labels, strict=True):
        ax.annotate(
            label,
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


# --------------------------------------------------------------------------- ablation


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
