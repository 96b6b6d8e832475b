"""The frozen variant's backbone features: every photo embedded once.

``embed_images`` runs the frozen pretrained backbone over every photo (and, with
``augmented_views``, over augmented views of the training photos) and keys the result on
the photos, backbone, weights and views, so every frozen run and ablation cell reuses it.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Mapping
from typing import Any

import pandas as pd
import torch
from torch import nn
from tqdm.auto import tqdm

from transfer_study.config import ModelSettings, TrainingSettings
from transfer_study.models.factory import create_classifier
from transfer_study.models.preprocessing import Preprocessing
from transfer_study.models.transforms import build_eval_transform, build_train_transform
from transfer_study.training.cache_budget import CacheBuild, features_bytes
from transfer_study.training.data import rows_in_cache, seed_everything
from transfer_study.training.device import (
    DeviceSettings,
    _device_settings,
    _memory_format,
)
from transfer_study.training.image_cache import image_cache_key, select_image_cache


def _features_key(image_key: str, backbone: str, settings: TrainingSettings) -> str:
    views = settings.augmented_views
    content = {
        "images": image_key,
        "backbone": backbone,
        "weights": settings.weights,
        "views": views,
        "augmentations": settings.augmentation_specs() if views else None,
        "seed": settings.seed if views else None,
        # Views of every photo, not only the training ones: the entry then fits every
        # split of these photos (split seeds, cross-validation folds, ablation subsets).
        "views_of": "all photos" if views else None,
    }
    digest = hashlib.sha256(json.dumps(content, sort_keys=True).encode()).hexdigest()[:16]
    return f"{backbone}-{digest}"


@torch.inference_mode()
def _embed(
    backbone: nn.Module,
    images: torch.Tensor,
    transform: Callable,
    batch_size: int,
    settings: DeviceSettings,
    description: str,
    dtype: torch.dtype = torch.float32,
) -> torch.Tensor:
    backbone.eval()
    batches = []
    for start in tqdm(
        range(0, len(images), batch_size), desc=description, unit="batch", leave=False
    ):
        batch = torch.stack([transform(image) for image in images[start : start + batch_size]])
        with settings.autocast():
            batches.append(backbone(settings.to_device(batch)).to(dtype).cpu())
    return torch.cat(batches) if batches else torch.empty(0)


def embed_images(
    decoded_images: Mapping[str, Callable[[], dict]],
    split: pd.DataFrame,
    preprocessing: Preprocessing,
    model: ModelSettings,
    settings: TrainingSettings,
    max_bytes: int | None = None,
) -> dict[str, CacheBuild]:
    """Embeds every photo once with the frozen pretrained backbone.

    All photos get their un-augmented embedding; with ``augmented_views > 0`` the
    training photos also get that many augmented embeddings (a new view each epoch).
    The result is cached by a key of the photos, backbone, weights and views, so every
    frozen run and ablation cell reuses it.

    Args:
        decoded_images: The decoded-image cache.
        split: The split table.
        preprocessing: Input size and normalisation.
        model: The ``model`` parameters (``backbone``).
        settings: The frozen variant's settings.
        max_bytes: The memory cap (``raw_images.max_cache_gb``); ``None``: none.

    Returns:
        ``{key: build returning {"paths", "features", "view_paths", "augmented"}}``; the
        build refuses, before embedding, features (photos × feature_dim × 4 bytes × (1 +
        augmented_views)) over ``max_bytes``, and the cache dataset ones over its free disk.
    """
    key = _features_key(image_cache_key(split, preprocessing), model.backbone, settings)
    batch_size = settings.embedding_batch_size

    def compute() -> dict[str, Any]:
        device = _device_settings(
            settings.device, channels_last=settings.channels_last, amp=settings.amp
        )
        seed_everything(settings.seed)  # augmented views are reproducible
        cache = select_image_cache(decoded_images, split, preprocessing)
        # Only the backbone is used; the head's size is irrelevant here.
        classifier = create_classifier(model.backbone, weights=settings.weights, num_classes=2)
        backbone = classifier.backbone.to(device.device, memory_format=_memory_format(device))
        paths = split["path"].tolist()
        images = cache["images"][rows_in_cache(cache, paths)]
        features = _embed(
            backbone,
            images,
            build_eval_transform(preprocessing=preprocessing),
            batch_size,
            device,
            "Embedding photos",
        )
        views = settings.augmented_views
        augmented = None
        if views:
            transform = build_train_transform(
                preprocessing=preprocessing, augmentations=settings.augmentation_specs()
            )
            augmented = torch.stack(
                [
                    _embed(
                        backbone,
                        images,
                        transform,
                        batch_size,
                        device,
                        f"Augmented view {v + 1}/{views}",
                    )
                    for v in range(views)
                ]
            )
        return {
            "paths": paths,
            "features": features,
            "view_paths": paths if views else [],
            "augmented": augmented,
        }

    def estimate() -> int:
        # The backbone's width, from its architecture alone (no weights to load).
        feature_dim = create_classifier(model.backbone, weights="none", num_classes=2).feature_dim
        return features_bytes(len(split), feature_dim, settings.augmented_views)

    views = settings.augmented_views
    build = CacheBuild(
        build=compute,
        estimate=estimate,
        max_bytes=max_bytes,
        what=f"the {model.backbone} features of {len(split)} photos"
        + (f" and {views} augmented views of each" if views else ""),
        advice="fewer frozen.augmented_views, fewer photos or classes (raw_images.classes)",
    )
    return {key: build}


class _EpochViews(torch.utils.data.Dataset):
    """Training features that show a different augmented view each epoch."""

    def __init__(self, views: torch.Tensor, labels: list[int]) -> None:
        self.views, self.labels, self.epoch = views, torch.as_tensor(labels), 0

    def set_epoch(self, epoch: int) -> None:
        """Shows view ``epoch - 1`` (cycling) during epoch ``epoch`` (1-based)."""
        self.epoch = epoch - 1

    def __len__(self) -> int:
        return self.views.shape[1]

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        return self.views[self.epoch % len(self.views), index], self.labels[index]


def cached_features(
    backbone_features: Mapping[str, Callable[[], dict]],
    split: pd.DataFrame,
    preprocessing: Preprocessing,
    model: ModelSettings,
    settings: TrainingSettings,
) -> torch.Tensor:
    """The un-augmented features ``embed_images`` cached for the photos of ``split``.

    Args:
        backbone_features: The feature cache.
        split: The split table the features were embedded for.
        preprocessing: Input size and normalisation.
        model: The ``model`` parameters (``backbone``).
        settings: The frozen variant's settings.

    Returns:
        One feature vector per row of ``split``, in its row order.

    Raises:
        KeyError: If the cache has no entry for these photos and settings.
    """
    key = _features_key(image_cache_key(split, preprocessing), model.backbone, settings)
    if key not in backbone_features:
        raise KeyError(f"No cached backbone features '{key}': run 'embed_images_node' first.")
    cached = backbone_features[key]()
    position = {path: i for i, path in enumerate(cached["paths"])}
    return cached["features"][[position[path] for path in split["path"]]]
