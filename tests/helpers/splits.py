"""Split tables for the ablation's subset and report tests."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd


def make_split(
    train_per_class: dict[str, int],
    angles: int | Callable[[int], int] = 4,
    held_out_per_class: int = 2,
    angle_values: bool = True,
) -> pd.DataFrame:
    """A split table: per class, training samples then ``held_out`` val and test samples."""
    rows, sample = [], 0
    for label, n_train in train_per_class.items():
        splits = ["train"] * n_train + ["val", "test"] * held_out_per_class
        for split in splits:
            n_angles = angles(sample) if callable(angles) else angles
            for angle in range(n_angles):
                rows.append(
                    {
                        "path": f"{label}/s{sample:04d}_a{angle:02d}.jpg",
                        "label": label,
                        "sample_id": f"s{sample:04d}",
                        "angle": float(angle) if angle_values else np.nan,
                        "split": split,
                        "sha256": f"{sample:032d}{angle:032d}",
                    }
                )
            sample += 1
    return pd.DataFrame(rows)
