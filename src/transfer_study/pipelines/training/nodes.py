"""The node that says, before the first training, how long the study will take."""

from __future__ import annotations

import logging
from typing import Any

import pandas as pd

from transfer_study.config import ModelSettings, TrainingSettings
from transfer_study.models.preprocessing import Preprocessing
from transfer_study.training.device import pick_device
from transfer_study.training.timing import (
    VALIDATION_COST,
    advice,
    estimate_image_variant,
    study_time_estimate,
    training_images_per_second,
)

logger = logging.getLogger(__name__)


def estimate_study_time(
    split: pd.DataFrame,
    preprocessing: dict[str, Any],
    model: ModelSettings,
    *variant_settings: TrainingSettings,
) -> dict[str, Any]:
    """Times a few training steps and logs the study's expected duration on this machine.

    Args:
        split: The split table (photos per split).
        preprocessing: ``resolve_preprocessing``' output (the input size).
        model: ``params:model``.
        *variant_settings: Each variant's resolved settings.

    Returns:
        The estimate: speed, per-variant and total expected and worst-case seconds, and
        advice when the study is expected to take over 30 minutes.
    """
    size = Preprocessing.from_dict(preprocessing).input_size
    counts = split["split"].value_counts()
    n_train, n_val = int(counts.get("train", 0)), int(counts.get("val", 0))
    end_to_end = [s for s in variant_settings if s.name != "frozen"]
    reference = end_to_end[0] if end_to_end else variant_settings[0]
    speed = training_images_per_second(model, size, reference, split["label"].nunique())
    variants = {s.name: estimate_image_variant(s, speed, n_train, n_val) for s in end_to_end}
    embedding = round(len(split) * VALIDATION_COST / speed)  # one forward pass per photo
    variants |= {
        s.name: {"variant": s.name, "expected_seconds": embedding, "cap_seconds": embedding}
        for s in variant_settings
        if s.name == "frozen"
    }
    totals = study_time_estimate(variants)
    hint = advice(totals["expected_seconds"], size, pick_device(reference.device).type != "cpu")
    logger.info(
        "Expected study time on this machine: about %.0f min (training at %.0f img/s at "
        "%d px, %d training photos); up to %.0f min if every variant runs to its cap.%s",
        totals["expected_seconds"] / 60,
        speed,
        size,
        n_train,
        totals["cap_seconds"] / 60,
        f" {hint}" if hint else "",
    )
    return {
        "images_per_second": round(speed, 1),
        "input_size": size,
        "n_train": n_train,
        **totals,
        "variants": variants,
        "advice": hint,
    }
