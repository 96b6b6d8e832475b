"""Tiny photos and photo folders written on the fly, never downloaded."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image


def write_photo(path: Path, seed: int, size: int = 24, fmt: str = "JPEG") -> Path:
    """Writes a small random-noise photo whose bytes are unique to ``seed``."""
    pixels = np.random.default_rng(seed).integers(0, 256, (size, size, 3), dtype=np.uint8)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(pixels).save(path, format=fmt)
    return path


def write_photo_folder(
    root: Path, samples_per_class: dict[str, int], n_angles: int = 2, size: int = 24
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
