"""A tiny study for the training library's unit tests: 36 decoded photos of two classes
told apart by brightness, their split, and each variant's settings made tiny."""

from __future__ import annotations

import pandas as pd
import torch

from tests.helpers.settings import study_training_settings
from transfer_study.config import ModelSettings, TrainingSettings, with_overrides
from transfer_study.models.preprocessing import (
    Preprocessing,
    pretrained_preprocessing,
    scaled_to_input_size,
)
from transfer_study.training.image_cache import image_cache_key

MODEL = ModelSettings(backbone="efficientnet_lite0", image_size=32)
PREPROCESSING = scaled_to_input_size(pretrained_preprocessing("efficientnet_lite0"), 32)


def tiny_variant(name: str, **changes: object) -> TrainingSettings:
    """The variant's settings from conf/base, resolved as the pipeline resolves them, tiny."""
    # 20 training photos in batches of 8: 3 steps an epoch; 48 images = 2 epochs.
    tiny = {
        "lr": 0.01,
        "max_images": 48,
        "min_steps": 1,
        "patience": None,
        "batch_size": 8,
        "device": "cpu",
        "augmentations": [],
        # Explicit: no timed pass chooses them (training/cpu_tuning.py has its own tests).
        "channels_last": True,
        "cpu_precision": "float32",
    }
    return with_overrides(study_training_settings(name), **{**tiny, **changes})


def brightness_photos(preprocessing: Preprocessing = PREPROCESSING) -> tuple[dict, pd.DataFrame]:
    """A decoded-image cache and split: two classes told apart by brightness."""
    generator = torch.Generator().manual_seed(0)
    size = preprocessing.resize_size
    rows, images = [], []
    for i in range(36):
        label = "bright" if i % 2 else "dark"
        base = 170 if label == "bright" else 70
        noise = torch.randint(-40, 40, (3, size, size), generator=generator)
        images.append((base + noise).clamp(0, 255).to(torch.uint8))
        split = "train" if i < 20 else "val" if i < 28 else "test"
        rows.append(
            {
                "path": f"{label}/s{i:03d}_a00.jpg",
                "label": label,
                "sample_id": f"s{i:03d}",
                "angle": 0,
                "split": split,
                "sha256": f"{i:064d}",
            }
        )
    split_table = pd.DataFrame(rows)
    cache = {"images": torch.stack(images), "paths": split_table["path"].tolist()}
    return {image_cache_key(split_table, preprocessing): lambda: cache}, split_table


def materialised(lazy: dict) -> dict:
    """Runs a node's lazy cache entries, as the cache dataset would on save."""
    values = {key: make() for key, make in lazy.items()}
    return {key: (lambda value=value: value) for key, value in values.items()}
