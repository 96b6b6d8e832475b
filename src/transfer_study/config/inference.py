"""``inference``: which trained model classifies which folder of photos, and how."""

from __future__ import annotations

from pydantic import Field

from .base import Device, PositiveInt, Settings, TtaMode


class InferenceSettings(Settings):
    """``inference``: the photos, the model and the prediction settings."""

    photos: str = Field(min_length=1, description="the folder of photos to classify")
    model: str = Field(
        min_length=1, description="best, a variant, a model.pt path, or models:/<name>@champion"
    )
    top_k: PositiveInt | None = Field(description="classes listed per photo; null = all")
    batch_size: PositiveInt = Field(description="photos classified at a time")
    device: Device = Field(description="auto (CUDA > MPS > CPU), cpu, cuda or mps")
    # A default, so that settings written before TTA existed stay valid.
    tta: TtaMode = Field(
        default="none",
        description="test-time augmentation: none, flip, or flip+crops (softmax averaged "
        "over the photo, its mirror and 5 crops of 87.5% of the side, each also mirrored)",
    )
