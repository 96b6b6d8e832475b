"""The nodes of a variant, shared by the study and the data-size ablation.

Training, embedding and testing are library functions used as nodes as they are
(``transfer_study.training``); plotting the curves and the correctness flags are
node-only.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from transfer_study.evaluation.figures import training_curves_figure
from transfer_study.training.features import embed_images
from transfer_study.training.testing import evaluate_on_test
from transfer_study.training.variants import train_on_features, train_on_images

__all__ = [
    "correct_flags",
    "embed_images",
    "evaluate_on_test",
    "plot_training_curves",
    "train_on_features",
    "train_on_images",
]


def plot_training_curves(history: pd.DataFrame, summary: Mapping[str, Any]) -> Figure:
    """Loss and accuracy per epoch for one training run.

    Args:
        history: ``fit``'s per-epoch history.
        summary: The training summary (names the variant in the title).

    Returns:
        The figure.
    """
    return training_curves_figure(history, title=f"{summary['variant']}: training curves")


def correct_flags(predictions: pd.DataFrame) -> np.ndarray:
    """Whether each test photo was classified correctly (for paired tests)."""
    return (predictions["label"] == predictions["predicted"]).to_numpy()
