"""The nodes of a variant, shared by the study and the data-size ablation, and the
study's registry check before it trains.

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
    RawImagesSettings,
    RegistrySettings,
    TrainingSettings,
    VariantName,
    VariantOverrides,
    resolve_training_settings,
    with_overrides,
)
from transfer_study.evaluation.figures import lr_range_test_figure, training_curves_figure
from transfer_study.models.preprocessing import Preprocessing
from transfer_study.photos.near_copies import guard_against_near_copies, near_copy_check
from transfer_study.tracking.registry import registry_name
from transfer_study.training.cache_budget import BYTES_PER_GB, CacheBuild
from transfer_study.training.features import cached_features, embed_images
from transfer_study.training.intermediate import embed_intermediate
from transfer_study.training.partial import choose_lr_on_intermediate, train_on_intermediate
from transfer_study.training.seeds import train_over_seeds
from transfer_study.training.setup import class_names_of
from transfer_study.training.testing import evaluate_over_seeds
from transfer_study.training.variants import (
    HeadState,
    choose_lr_on_features,
    choose_lr_on_images,
    probe_head,
    train_on_features,
    train_on_images,
)

Trained = tuple[dict[str, Any], pd.DataFrame, dict[str, Any], dict[str, dict[str, Any]]]
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


def choose_image_variant_lr(
    decoded_images: Cache,
    split: pd.DataFrame,
    preprocessing: dict[str, Any],
    model: ModelSettings,
    settings: TrainingSettings,
    head: HeadState | None = None,
) -> tuple[dict[str, Any], Figure]:
    """The learning rate of scratch or fine-tune: as given, or by a range test.

    Args:
        decoded_images: The decoded-image cache.
        split: The split table.
        preprocessing: ``resolve_preprocessing``' output.
        model: ``params:model``.
        settings: The variant's resolved settings (``lr``, ``lr_search``).
        head: Fine-tune: the head training starts from (``probe_variant_head``).

    Returns:
        The choice (``lr``, ``source``, the test's settings) and the range-test plot.
    """
    spec = Preprocessing.from_dict(preprocessing)
    choice, curve = choose_lr_on_images(decoded_images, split, spec, model, settings, head)
    return choice, lr_range_test_figure(curve, choice)


def probe_variant_head(
    backbone_features: Cache,
    split: pd.DataFrame,
    preprocessing: dict[str, Any],
    model: ModelSettings,
    settings: TrainingSettings,
    probe_settings: TrainingSettings,
    probe_learning_rate: Mapping[str, Any],
) -> HeadState | None:
    """Fine-tune's starting head: trained on the cached features (``head_init: probe``).

    Args:
        backbone_features: The feature cache written by ``embed_backbone_features``.
        split: The split table (an ablation cell's subset in a cell).
        preprocessing: ``resolve_preprocessing``' output.
        model: ``params:model``.
        settings: Fine-tune's resolved settings (``head_init``, ``head``, ``seed``).
        probe_settings: The frozen variant's resolved settings: how a head is trained on
            the features.
        probe_learning_rate: The frozen variant's chosen learning rate.

    Returns:
        The head's state, or ``None`` for ``head_init: random``.
    """
    spec = Preprocessing.from_dict(preprocessing)
    probe = with_overrides(probe_settings, lr=float(probe_learning_rate["lr"]))
    return probe_head(backbone_features, split, spec, model, settings, probe)


def choose_feature_variant_lr(
    backbone_features: Cache,
    split: pd.DataFrame,
    preprocessing: dict[str, Any],
    model: ModelSettings,
    settings: TrainingSettings,
) -> tuple[dict[str, Any], Figure]:
    """The learning rate of the frozen variant's head: as given, or by a range test on
    the cached features. Arguments and results as ``choose_image_variant_lr``."""
    spec = Preprocessing.from_dict(preprocessing)
    choice, curve = choose_lr_on_features(backbone_features, split, spec, model, settings)
    return choice, lr_range_test_figure(curve, choice)


def train_image_variant(
    decoded_images: Cache,
    split: pd.DataFrame,
    preprocessing: dict[str, Any],
    model: ModelSettings,
    settings: TrainingSettings,
    learning_rate: Mapping[str, Any],
    head: HeadState | None = None,
) -> Trained:
    """Trains scratch or fine-tune end to end on the cached images, to convergence, once
    per seed.

    Args:
        decoded_images: The decoded-image cache.
        split: The split table.
        preprocessing: ``resolve_preprocessing``' output.
        model: ``params:model``.
        settings: The variant's resolved settings.
        learning_rate: The variant's chosen learning rate (``choose_image_variant_lr``).
        head: Fine-tune: the head every seed starts from (``probe_variant_head``).

    Returns:
        The kept checkpoint (the seed with the best validation metric), its history (one
        row per validation), the training summary, and the other seeds' checkpoints.
    """
    spec = Preprocessing.from_dict(preprocessing)
    chosen = with_overrides(settings, lr=float(learning_rate["lr"]))
    return train_over_seeds(
        lambda seeded: train_on_images(decoded_images, split, spec, model, seeded, head),
        chosen,
    )


def train_feature_variant(
    backbone_features: Cache,
    split: pd.DataFrame,
    preprocessing: dict[str, Any],
    model: ModelSettings,
    settings: TrainingSettings,
    learning_rate: Mapping[str, Any],
) -> Trained:
    """Trains the frozen variant's head on the cached backbone features, to convergence.

    Arguments and results as ``train_image_variant``, with the feature cache of
    ``embed_backbone_features`` in place of the decoded images.
    """
    spec = Preprocessing.from_dict(preprocessing)
    chosen = with_overrides(settings, lr=float(learning_rate["lr"]))
    return train_over_seeds(
        lambda seeded: train_on_features(backbone_features, split, spec, model, seeded), chosen
    )


def choose_partial_variant_lr(
    intermediate_features: Cache,
    split: pd.DataFrame,
    preprocessing: dict[str, Any],
    model: ModelSettings,
    settings: TrainingSettings,
    head: HeadState | None = None,
) -> tuple[dict[str, Any], Figure]:
    """The learning rate of the partial fine-tune, on the cached early-stage outputs.
    Arguments and results as ``choose_image_variant_lr``."""
    spec = Preprocessing.from_dict(preprocessing)
    choice, curve = choose_lr_on_intermediate(
        intermediate_features, split, spec, model, settings, head
    )
    return choice, lr_range_test_figure(curve, choice)


def train_partial_variant(
    intermediate_features: Cache,
    split: pd.DataFrame,
    preprocessing: dict[str, Any],
    model: ModelSettings,
    settings: TrainingSettings,
    learning_rate: Mapping[str, Any],
    head: HeadState | None = None,
) -> Trained:
    """Trains the partial fine-tune (its last ``trainable_stages`` stages and the head) on
    the cached early-stage outputs, to convergence, once per seed.

    Arguments and results as ``train_image_variant``, with the cache of
    ``embed_intermediate_features`` in place of the decoded images.
    """
    spec = Preprocessing.from_dict(preprocessing)
    chosen = with_overrides(settings, lr=float(learning_rate["lr"]))
    return train_over_seeds(
        lambda seeded: train_on_intermediate(
            intermediate_features, split, spec, model, seeded, head
        ),
        chosen,
    )


def embed_intermediate_features(
    decoded_images: Cache,
    split: pd.DataFrame,
    preprocessing: dict[str, Any],
    model: ModelSettings,
    settings: TrainingSettings,
    raw_images: RawImagesSettings,
) -> dict[str, CacheBuild]:
    """Computes the partial fine-tune's frozen early stages once per photo and view.

    Args:
        decoded_images: The decoded-image cache.
        split: The split table.
        preprocessing: ``resolve_preprocessing``' output.
        model: ``params:model``.
        settings: The partial fine-tune's resolved settings (``trainable_stages``,
            ``augmented_views``).
        raw_images: ``params:raw_images`` (``max_cache_gb``, the cap on the cache).

    Returns:
        ``{key: build computing the outputs}`` for the content-addressed cache.
    """
    spec = Preprocessing.from_dict(preprocessing)
    max_bytes = round(raw_images.max_cache_gb * BYTES_PER_GB)
    return embed_intermediate(decoded_images, split, spec, model, settings, max_bytes)


def embed_backbone_features(
    decoded_images: Cache,
    split: pd.DataFrame,
    preprocessing: dict[str, Any],
    model: ModelSettings,
    settings: TrainingSettings,
    raw_images: RawImagesSettings,
) -> dict[str, CacheBuild]:
    """Embeds every photo once with the frozen backbone, for every frozen run and cell.

    Args:
        decoded_images: The decoded-image cache.
        split: The split table.
        preprocessing: ``resolve_preprocessing``' output.
        model: ``params:model``.
        settings: The frozen variant's resolved settings (weights, augmented views).
        raw_images: ``params:raw_images`` (``max_cache_gb``, the cap on the features).

    Returns:
        ``{key: build computing the features}`` for the feature cache; the build refuses
        features over ``raw_images.max_cache_gb``, the cache their size over its free disk.
    """
    spec = Preprocessing.from_dict(preprocessing)
    max_bytes = round(raw_images.max_cache_gb * BYTES_PER_GB)
    return embed_images(decoded_images, split, spec, model, settings, max_bytes)


def evaluate_variant(
    checkpoint: Mapping[str, Any],
    seed_models: Mapping[str, Mapping[str, Any]],
    decoded_images: Cache,
    split: pd.DataFrame,
    settings: EvaluationSettings,
) -> tuple[pd.DataFrame, dict[str, float], Figure]:
    """Evaluates a trained variant on the test split.

    Args:
        checkpoint: The variant's kept checkpoint.
        seed_models: The other seeds' checkpoints (empty with one seed).
        decoded_images: The decoded-image cache.
        split: The split table.
        settings: ``params:evaluation``.

    Returns:
        The kept model's per-photo predictions, the metrics (accuracy and its interval
        over every seed when there are several) and the confusion-matrix figure.
    """
    return evaluate_over_seeds(checkpoint, seed_models, decoded_images, split, settings)


def plot_training_curves(history: pd.DataFrame, summary: Mapping[str, Any]) -> Figure:
    """Loss and accuracy per epoch for one training run.

    Args:
        history: ``fit``'s per-epoch history.
        summary: The training summary (names the variant in the title).

    Returns:
        The figure.
    """
    return training_curves_figure(history, title=f"{summary['variant']}: training curves")


# ---------------------------------------------------------------- the leak guard
def check_near_copies(
    backbone_features: Cache,
    split: pd.DataFrame,
    preprocessing: dict[str, Any],
    model: ModelSettings,
    settings: TrainingSettings,
    raw_images: RawImagesSettings,
    sample_grouping: dict[str, Any],
) -> tuple[pd.DataFrame, dict[str, Any]]:
    """Stops the run before any training when test photos have near-copies in training.

    Args:
        backbone_features: The frozen backbone's feature cache.
        split: The split table.
        preprocessing: ``resolve_preprocessing``' output.
        model: ``params:model``.
        settings: The frozen variant's resolved settings (the embedding's weights).
        raw_images: ``params:raw_images``: the threshold, the share and
            ``allow_ungrouped``.
        sample_grouping: How the ingestion formed the samples.

    Returns:
        ``split``, unchanged (every variant trains on this output, so after the check),
        and the grouping record with the near-copy share (``grouping.json``).

    Raises:
        SampleGroupingError: If the share of near-copies is above
            ``raw_images.max_near_copy_share`` and ``allow_ungrouped`` is false.
    """
    check = None
    if settings.weights != "none":  # random weights' features say nothing about copies
        spec = Preprocessing.from_dict(preprocessing)
        features = cached_features(backbone_features, split, spec, model, settings)
        check = near_copy_check(
            features.numpy(),
            split,
            threshold=raw_images.near_copy_similarity,
            max_share=raw_images.max_near_copy_share,
        )
    grouping = guard_against_near_copies(check, sample_grouping, allow=raw_images.allow_ungrouped)
    return split, grouping


def resolve_registry_target(
    split: pd.DataFrame, registry: RegistrySettings, model: ModelSettings
) -> tuple[pd.DataFrame, dict[str, Any]]:
    """Names the registered model the study's model will join, before any training.

    Args:
        split: The split table (its labels give the class list).
        registry: The ``registry`` parameters.
        model: The ``model`` parameters (the backbone).

    Returns:
        The split, unchanged: the study trains on it, so no training starts before the
        target is checked; and the target: ``register``, ``name``, ``backbone`` and
        ``class_names`` (the model's output order).
    """
    target = {
        "register": registry.enabled,
        "name": registry_name(registry.name, model.backbone),
        "backbone": model.backbone,
        "class_names": class_names_of(split),
        "promote_across_splits": registry.promote_across_splits,
    }
    return split, target
