"""``inference``: which trained model classifies which folder of photos, and how."""

from __future__ import annotations

from pydantic import Field

from .base import Device, PositiveInt, Settings


class InferenceSettings(Settings):
    """``inference``: the photos, the model and the prediction settings."""

    photos: str = Field(min_length=1, description="the folder of photos to classify")
    model: str = Field(
        min_length=1, description="best, a variant, or the path of a model.pt checkpoint"
    )
    top_k: PositiveInt | None = Field(description="classes listed per photo; null = all")
    batch_size: PositiveInt = Field(description="photos classified at a time")
    device: Device = Field(description="auto (CUDA > MPS > CPU), cpu, cuda or mps")
