"""Test-set metrics of a classifier, with bootstrap confidence intervals.

Accuracy's interval resamples whole physical samples when a sample has several photos
(cluster bootstrap); when every photo is right (or every one wrong) it is the exact
Clopper–Pearson interval over the samples. Pure functions: nothing here opens a file, logs
to MLflow or prints.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Sequence
from typing import Literal

import numpy as np
import pandas as pd
from scipy import stats
from sklearn.metrics import (
    accuracy_score,
    balanced_accuracy_score,
    precision_recall_fscore_support,
    roc_auc_score,
    top_k_accuracy_score,
)

logger = logging.getLogger(__name__)

BootstrapMethod = Literal["BCa", "percentile", "basic"]

# Softmax outputs in float16/bfloat16 sum to 1 only to about 1e-3.
_PROBABILITY_SUM_TOLERANCE = 1e-3
# Resamples evaluated per batch: bounds memory to ~batch x n floats for large test sets
# (scipy would otherwise build an n x n array for the BCa jackknife).
_BOOTSTRAP_BATCH = 256


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
        right (or all wrong) the interval is Clopper–Pearson's exact binomial interval
        over the independent units (groups when given, else photos), e.g. ``[0.69, 1]``
        for 10 samples all right at 95 %.

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
        # Every resample would have the same accuracy, so the bootstrap has nothing to say
        # (a point interval). Clopper–Pearson's exact interval still does: over the n
        # independent units, samples rather than photos, because a sample's angles are
        # not independent evidence that the model is always (or never) right.
        n_units = hits.size
        interval = stats.binomtest(n_units if correct.all() else 0, n_units).proportion_ci(
            confidence_level=confidence, method="exact"
        )
        return accuracy, float(interval.low), float(interval.high)
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
