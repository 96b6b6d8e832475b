"""Class balance: the imbalance rule, the class weights of the loss and the headline metric."""

from __future__ import annotations

import pandas as pd
import pytest
import torch

from tests.helpers.settings import study_training_settings
from transfer_study.training.balance import class_weights, headline_metric, is_imbalanced
from transfer_study.training.setup import _criterion


def _split(counts: dict[str, int]) -> pd.DataFrame:
    return pd.DataFrame({"label": [label for label, n in counts.items() for _ in range(n)]})


@pytest.mark.parametrize(
    ("counts", "imbalanced"),
    [
        ({"a": 10, "b": 10}, False),
        ({"a": 19, "b": 10}, False),
        ({"a": 20, "b": 10}, True),  # exactly twice: imbalanced
        ({"a": 10, "b": 10, "c": 4}, True),
    ],
)
def test_classes_are_imbalanced_when_the_largest_has_twice_the_smallest(counts, imbalanced):
    split = _split(counts)
    assert is_imbalanced(split["label"]) is imbalanced
    assert headline_metric(split) == ("balanced_accuracy" if imbalanced else "accuracy")


def test_auto_weights_the_loss_only_when_classes_are_imbalanced():
    labels = [0] * 30 + [1] * 10
    assert class_weights(labels, 2, "auto", imbalanced=False) is None
    weights = class_weights(labels, 2, "auto", imbalanced=True)
    # scikit-learn's "balanced": n / (k × count) = 40 / (2 × 30) and 40 / (2 × 10).
    assert weights.tolist() == pytest.approx([40 / 60, 40 / 20])
    assert weights.dtype == torch.float32


def test_weights_can_be_forced_on_or_off():
    labels = [0] * 30 + [1] * 10
    assert class_weights(labels, 2, False, imbalanced=True) is None
    assert class_weights([0, 1, 1, 1], 3, True, imbalanced=False).tolist() == pytest.approx(
        [4 / 2, 4 / 6, 1.0]  # class 2 has no training photo: weight 1
    )


def test_the_training_loss_is_weighted_only_for_an_imbalanced_split():
    settings = study_training_settings("frozen")  # class_weights: auto
    imbalanced = _split({"a": 30, "b": 10})
    labels = [0] * 30 + [1] * 10
    weighted = _criterion(settings, imbalanced, labels, 2)
    assert weighted.weight.tolist() == pytest.approx([40 / 60, 40 / 20])
    balanced = _split({"a": 20, "b": 20})
    assert _criterion(settings, balanced, [0] * 20 + [1] * 20, 2).weight is None
