"""Partial fine-tuning's cache: the frozen early stages' output, once per photo and view.

``embed_intermediate`` runs the pretrained backbone's early stages (``cut_backbone``)
over every photo, un-augmented, and over ``augmented_views`` augmented views of every
photo, and keys the result on the photos, backbone, weights, cut and views, so every
``finetune_top`` run, split seed, fold and ablation cell of these photos reuses it. The
later stages then train on it: an epoch costs their forward and backward pass only.

Stored as float16: half the memory of float32; the rounding (about 1e-3 relative) is far
below the augmentations' own variation, and the checkpoint is evaluated on images.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Mapping
from typing import Any

import pandas as pd
import torch

from transfer_study.config import ModelSettings, TrainingSettings
from transfer_study.models.factory import create_classifier
from transfer_study.models.preprocessing import Preprocessing
from transfer_study.models.stages import cut_backbone
from transfer_study.models.transforms import build_eval_transform, build_train_transform
from transfer_study.training.cache_budget import CacheBuild
from transfer_study.training.data import rows_in_cache, seed_everything
from transfer_study.training.device import _device_settings, _memory_format
from transfer_study.training.features import _embed
from transfer_study.training.image_cache import image_cache_key, select_image_cache

CACHED_DTYPE = torch.float16
_FLOAT16_BYTES = 2


def intermediate_key(image_key: str, backbone: str, settings: TrainingSettings) -> str:
    """Names the cache entry of these photos' early-stage outputs under ``settings``."""
    views = settings.augmented_views
    content = {
        "images": image_key,
        "backbone": backbone,
        "weights": settings.weights,
        "trainable_stages": settings.trainable_stages,
        "views": views,
        "augmentations": settings.augmentation_specs() if views else None,
        "seed": settings.seed if views else None,
        "dtype": str(CACHED_DTYPE),
    }
    digest = hashlib.sha256(json.dumps(content, sort_keys=True).encode()).hexdigest()[:16]
    return f"{backbone}-top{settings.trainable_stages}-{digest}"


def _cut(model: ModelSettings, settings: TrainingSettings, weights: str):
    classifier = create_classifier(model.backbone, weights=weights, num_classes=2)
    return cut_backbone(classifier.backbone, model.backbone, settings.trainable_stages)


def _output_shape(model: ModelSettings, settings: TrainingSettings, side: int) -> torch.Size:
    """The early stages' output for one photo, from the architecture alone."""
    with torch.no_grad():
        frozen = _cut(model, settings, "none").frozen.eval()
        return frozen(torch.zeros(1, 3, side, side)).shape[1:]


def embed_intermediate(
    decoded_images: Mapping[str, Callable[[], dict]],
    split: pd.DataFrame,
    preprocessing: Preprocessing,
    model: ModelSettings,
    settings: TrainingSettings,
    max_bytes: int | None = None,
) -> dict[str, CacheBuild]:
    """The early stages' output of every photo and augmented view, as a lazy cache build.

    Args:
        decoded_images: The decoded-image cache.
        split: The split table (every photo of it is embedded, whatever its split).
        preprocessing: Input size and normalisation.
        model: The ``model`` parameters (``backbone``).
        settings: The partial fine-tune's settings (``weights``, ``trainable_stages``,
            ``augmented_views``, ``augmentations``, ``seed``).
        max_bytes: The memory cap (``raw_images.max_cache_gb``); ``None``: none.

    Returns:
        ``{key: build returning {"paths", "features", "augmented"}}``: ``features`` is
        ``(photos, C, H, W)``, ``augmented`` ``(views, photos, C, H, W)`` or ``None``.
    """
    key = intermediate_key(image_cache_key(split, preprocessing), model.backbone, settings)
    views = settings.augmented_views

    def compute() -> dict[str, Any]:
        device = _device_settings(
            settings.device, channels_last=settings.channels_last, amp=settings.amp
        )
        seed_everything(settings.seed)  # the augmented views are reproducible
        cache = select_image_cache(decoded_images, split, preprocessing)
        frozen = _cut(model, settings, settings.weights).frozen
        frozen = frozen.to(device.device, memory_format=_memory_format(device))
        paths = split["path"].tolist()
        images = cache["images"][rows_in_cache(cache, paths)]
        batch = settings.embedding_batch_size

        def embed(transform: Callable, description: str) -> torch.Tensor:
            return _embed(frozen, images, transform, batch, device, description, CACHED_DTYPE)

        features = embed(build_eval_transform(preprocessing=preprocessing), "Early stages")
        augmented = None
        if views:
            train_transform = build_train_transform(
                preprocessing=preprocessing, augmentations=settings.augmentation_specs()
            )
            augmented = torch.stack(
                [
                    embed(train_transform, f"Early stages, view {v + 1}/{views}")
                    for v in range(views)
                ]
            )
        return {"paths": paths, "features": features, "augmented": augmented}

    def estimate() -> int:
        shape = _output_shape(model, settings, preprocessing.input_size)
        return len(split) * shape.numel() * _FLOAT16_BYTES * (1 + views)

    build = CacheBuild(
        build=compute,
        estimate=estimate,
        max_bytes=max_bytes,
        what=f"the early-stage outputs ({model.backbone}, all but the last "
        f"{settings.trainable_stages} stages) of {len(split)} photos"
        + (f" and {views} augmented views of each" if views else ""),
        advice=f"fewer {settings.name}.augmented_views, more {settings.name}.trainable_stages "
        "(smaller outputs), a smaller model.image_size, or fewer photos",
    )
    return {key: build}


def cached_intermediate(
    intermediate_features: Mapping[str, Callable[[], dict]],
    split: pd.DataFrame,
    preprocessing: Preprocessing,
    model: ModelSettings,
    settings: TrainingSettings,
) -> dict[str, Any]:
    """The cache entry ``embed_intermediate`` wrote for these photos and settings.

    Raises:
        KeyError: If there is none (the embedding node has not run).
    """
    key = intermediate_key(image_cache_key(split, preprocessing), model.backbone, settings)
    if key not in intermediate_features:
        raise KeyError(f"No cached early-stage outputs '{key}': run 'embed_intermediate_node'.")
    return intermediate_features[key]()
