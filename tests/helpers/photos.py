"""Tiny photos and photo folders written on the fly, never downloaded."""

from __future__ import annotations

import io
from collections.abc import Callable, Mapping
from functools import partial
from pathlib import Path

import numpy as np
from PIL import Image

# The smallest side ingestion does not list as suspicious (raw_images.suspicious_min_side).
PHOTO_SIZE = 32


def write_photo(path: Path, seed: int, size: int = PHOTO_SIZE, fmt: str = "JPEG") -> Path:
    """Writes a small random-noise photo whose bytes are unique to ``seed``."""
    pixels = np.random.default_rng(seed).integers(0, 256, (size, size, 3), dtype=np.uint8)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(pixels).save(path, format=fmt)
    return path


def write_photo_folder(
    root: Path, samples_per_class: dict[str, int], n_angles: int = 2, size: int = PHOTO_SIZE
) -> Path:
    """Writes ``<class>/s<id>_a<angle>.jpg`` photos with globally unique sample ids."""
    sample = 0
    for label, n_samples in samples_per_class.items():
        for _ in range(n_samples):
            for angle in range(n_angles):
                write_photo(
                    root / label / f"s{sample:04d}_a{angle:02d}.jpg",
                    seed=sample * 100 + angle,
                    size=size,
                )
            sample += 1
    return root


def encoded_photos(
    images: Mapping[str, Callable[[], Image.Image]], fmt: str = "JPEG", suffix: str = ".jpg"
) -> dict[str, Callable[[], bytes]]:
    """Lazily rendered images as a photo folder's lazy loaders of file bytes.

    What the demo pipeline's partitions become once saved with ``filename_suffix`` and read
    back by ``PhotoFolderDataset``, without touching the disk.

    Args:
        images: ``{name without suffix: function returning a PIL image}``.
        fmt: Pillow format to encode with.
        suffix: Appended to each name, as ``PartitionedDataset``'s ``filename_suffix``.

    Returns:
        ``{name + suffix: function returning the encoded bytes}``.
    """

    def encode(render: Callable[[], Image.Image]) -> bytes:
        buffer = io.BytesIO()
        render().save(buffer, format=fmt)
        return buffer.getvalue()

    return {f"{name}{suffix}": partial(encode, render) for name, render in images.items()}
