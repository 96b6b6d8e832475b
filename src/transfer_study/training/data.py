"""Datasets and loaders over cached ``uint8`` tensors (images) or cached features."""

from __future__ import annotations

import os
import random
from collections.abc import Callable, Sequence

import numpy as np
import pandas as pd
import torch
from torch.utils.data import DataLoader, Dataset, TensorDataset

from transfer_study.training.device import DeviceSettings


def seed_everything(seed: int) -> torch.Generator:
    """Seeds Python, NumPy and torch; returns a generator for DataLoader shuffling.

    Lightning's ``seed_everything`` does the same; it is four lines, not worth a
    dependency on all of Lightning.

    Args:
        seed: The run's seed.

    Returns:
        A ``torch.Generator`` seeded with ``seed``.
    """
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    generator = torch.Generator()
    generator.manual_seed(seed)
    return generator


def _seed_worker(worker_id: int) -> None:
    # torch seeds each worker from the loader's generator; derive NumPy/random from it
    # (recipe from the PyTorch reproducibility notes).
    worker_seed = torch.initial_seed() % 2**32
    np.random.seed(worker_seed)
    random.seed(worker_seed)


class CachedImageDataset(Dataset):
    """Photos from the decoded-image cache, transformed on access.

    Args:
        images: ``uint8`` tensor ``(N, 3, S, S)`` (may be memory-mapped).
        labels: Class index per image.
        transform: Applied to each ``uint8`` image, e.g. augmentation + normalisation.
    """

    def __init__(self, images: torch.Tensor, labels: Sequence[int], transform: Callable) -> None:
        self.images = images
        self.labels = torch.as_tensor(labels, dtype=torch.long)
        self.transform = transform

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        return self.transform(self.images[index]), self.labels[index]


def rows_in_cache(cache: dict, paths: Sequence[str]) -> torch.Tensor:
    """Positions of ``paths`` in a decoded-image cache bundle.

    Args:
        cache: ``{"images": tensor, "paths": list}`` from the cache.
        paths: Photos wanted, in the wanted order.

    Returns:
        Index tensor into ``cache["images"]``.

    Raises:
        KeyError: If a photo is not in the cache.
    """
    position = {path: i for i, path in enumerate(cache["paths"])}
    missing = [p for p in paths if p not in position]
    if missing:
        raise KeyError(
            f"{len(missing)} photo(s) are not in the decoded-image cache, e.g. {missing[:3]}"
        )
    return torch.as_tensor([position[p] for p in paths], dtype=torch.long)


def class_indices(labels: pd.Series, class_names: Sequence[str]) -> list[int]:
    """Maps label strings to indices in ``class_names`` order."""
    lookup = {name: i for i, name in enumerate(class_names)}
    return [lookup[label] for label in labels]


def resolve_num_workers(setting: int | str) -> int:
    """``"auto"`` → no worker processes on a machine with ≤ 2 cores, else up to 4.

    With two cores, torch's intra-op threads already use both for the model, and a
    worker process competes with them; the per-image transform of a cached tensor is
    cheap enough (≈ 2 ms) to run in the main process.
    """
    if setting != "auto":
        return int(setting)
    cores = os.cpu_count() or 1
    few_cores = 2
    return 0 if cores <= few_cores else min(4, cores - 1)


def make_loader(
    dataset: Dataset,
    *,
    batch_size: int,
    shuffle: bool,
    generator: torch.Generator,
    num_workers: int,
    pin_memory: bool,
) -> DataLoader:
    """A DataLoader seeded for reproducible shuffling and worker augmentation."""
    return DataLoader(
        dataset,
        batch_size=batch_size,
        shuffle=shuffle,
        generator=generator,
        num_workers=num_workers,
        worker_init_fn=_seed_worker,
        persistent_workers=num_workers > 0,
        pin_memory=pin_memory,
    )


def _image_loader(
    cache: dict,
    rows: pd.DataFrame,
    class_names: list[str],
    transform: Callable,
    *,
    batch_size: int,
    num_workers: int | str,
    shuffle: bool,
    generator: torch.Generator,
    settings: DeviceSettings,
) -> torch.utils.data.DataLoader:
    images = cache["images"][rows_in_cache(cache, rows["path"].tolist())]
    dataset = CachedImageDataset(images, class_indices(rows["label"], class_names), transform)
    return make_loader(
        dataset,
        batch_size=batch_size,
        shuffle=shuffle,
        generator=generator,
        num_workers=resolve_num_workers(num_workers),
        pin_memory=settings.device.type == "cuda",
    )


def feature_dataset(features: torch.Tensor, labels: Sequence[int]) -> TensorDataset:
    """Cached backbone features with labels, for training only the head."""
    return TensorDataset(features.float(), torch.as_tensor(labels, dtype=torch.long))
