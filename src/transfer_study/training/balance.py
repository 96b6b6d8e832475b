"""Class balance: when classes count as imbalanced, the class weights of the loss, and the
one headline metric that follows (balanced accuracy, or accuracy)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
import torch
from sklearn.utils.class_weight import compute_class_weight

from transfer_study.training.loops import Metric

# Classes are imbalanced when the largest has at least this many times the smallest's photos.
IMBALANCE_RATIO = 2.0


def is_imbalanced(labels: pd.Series) -> bool:
    """Whether the largest class has at least ``IMBALANCE_RATIO`` × the smallest's photos."""
    counts = labels.value_counts()
    return bool(len(counts) > 1 and counts.max() >= IMBALANCE_RATIO * counts.min())


def headline_metric(split: pd.DataFrame) -> Metric:
    """The metric used everywhere for this split: early stopping, choosing the best
    variant, comparisons. Balanced accuracy when its photos' classes are imbalanced."""
    return "balanced_accuracy" if is_imbalanced(split["label"]) else "accuracy"


def class_weights(
    train_labels: Sequence[int], num_classes: int, setting: bool | str, imbalanced: bool
) -> torch.Tensor | None:
    """The loss's class weights, or ``None`` for an unweighted loss.

    Args:
        train_labels: Class index of every training photo.
        num_classes: Number of classes.
        setting: ``class_weights``: ``True``, ``False`` or ``"auto"`` (on when imbalanced).
        imbalanced: Whether the split counts as imbalanced.

    Returns:
        scikit-learn's "balanced" weights (``n / (k × count)``; classes absent from the
        training photos get weight 1) as a float tensor, or ``None``.
    """
    if setting is False or (setting == "auto" and not imbalanced):
        return None
    labels = np.asarray(train_labels)
    present = np.unique(labels)
    weights = np.ones(num_classes, dtype=np.float32)
    weights[present] = compute_class_weight("balanced", classes=present, y=labels)
    return torch.tensor(weights, dtype=torch.float32)
