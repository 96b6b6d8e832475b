"""The nodes of a variant, shared by the study and the data-size ablation.

Thin: each takes the typed parameters Kedro validated, parses the saved preprocessing,
calls the library (``transfer_study.training``) and returns its results.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import pandas as pd
from matplotlib.figure import Figure

from transfer_study.config import (
    EvaluationSettings,
    ModelSettings,
    TrainingSettings,
    VariantName,
    VariantOverrides,
    resolve_training_settings,
)
from transfer_study.evaluation.figures import training_curves_figure
from transfer_study.models.preprocessing import Preprocessing
from transfer_study.training.features import embed_images
from transfer_study.training.testing import evaluate_on_test
from transfer_study.training.variants import train_on_features, train_on_images

Trained = tuple[dict[str, Any], pd.DataFrame, dict[str, Any]]
Cache = Mapping[str, Callable[[], dict]]


def resolve_variant_settings(
    defaults: VariantOverrides, overrides: VariantOverrides, *, variant: VariantName
) -> TrainingSettings:
    """A variant's complete training settings: ``training_defaults`` updated with its block.

    Args:
        defaults: ``params:training_defaults``.
        overrides: ``params:<variant>``: only what differs from the defaults.
        variant: The variant (bound when the pipeline is built).

    Returns:
        The settings the variant trains with.
    """
    return resolve_training_settings(variant, defaults, overrides)


def train_image_variant(
    decoded_images: Cache,
    split: pd.DataFrame,
    preprocessing: dict[str, Any],
    model: ModelSettings,
    settings: TrainingSettings,
) -> Trained:
    """Trains scratch or fine-tune end to end on the cached images.

    Args:
        decoded_images: The decoded-image cache.
        split: The split table.
        preprocessing: ``resolve_preprocessing``' output.
        model: ``params:model``.
        settings: The variant's resolved settings.

    Returns:
        The checkpoint, the per-epoch history and the training summary.
    """
    spec = Preprocessing.from_dict(preprocessing)
    return train_on_images(decoded_images, split, spec, model, settings)


def train_feature_variant(
    backbone_features: Cache,
    split: pd.DataFrame,
    preprocessing: dict[str, Any],
    model: ModelSettings,
    settings: TrainingSettings,
) -> Trained:
    """Trains the frozen variant's head on the cached backbone features.

    Args:
        backbone_features: The feature cache of ``embed_backbone_features``.
        split: The split table.
        preprocessing: ``resolve_preprocessing``' output (stored in the checkpoint).
        model: ``params:model``.
        settings: The frozen variant's resolved settings.

    Returns:
        The checkpoint, the per-epoch history and the training summary.
    """
    spec = Preprocessing.from_dict(preprocessing)
    return train_on_features(backbone_features, split, spec, model, settings)


def embed_backbone_features(
    decoded_images: Cache,
    split: pd.DataFrame,
    preprocessing: dict[str, Any],
    model: ModelSettings,
    settings: TrainingSettings,
) -> dict[str, Callable[[], dict]]:
    """Embeds every photo once with the frozen backbone, for every frozen run and cell.

    Args:
        decoded_images: The decoded-image cache.
        split: The split table.
        preprocessing: ``resolve_preprocessing``' output.
        model: ``params:model``.
        settings: The frozen variant's resolved settings (weights, augmented views).

    Returns:
        ``{key: function computing the features}`` for the feature cache.
    """
    spec = Preprocessing.from_dict(preprocessing)
    return embed_images(decoded_images, split, spec, model, settings)


def evaluate_variant(
    checkpoint: Mapping[str, Any],
    decoded_images: Cache,
    split: pd.DataFrame,
    settings: EvaluationSettings,
) -> tuple[pd.DataFrame, dict[str, float], Figure]:
    """Evaluates a trained checkpoint on the test split.

    Args:
        checkpoint: The variant's checkpoint.
        decoded_images: The decoded-image cache.
        split: The split table.
        settings: ``params:evaluation``.

    Returns:
        Per-photo predictions, the metrics and the confusion-matrix figure.
    """
    return evaluate_on_test(checkpoint, decoded_images, split, settings)


def plot_training_curves(history: pd.DataFrame, summary: Mapping[str, Any]) -> Figure:
    """Loss and accuracy per epoch for one training run.

    Args:
        history: ``fit``'s per-epoch history.
        summary: The training summary (names the variant in the title).

    Returns:
        The figure.
    """
    return training_curves_figure(history, title=f"{summary['variant']}: training curves")
