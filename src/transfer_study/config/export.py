"""``export``: which trained model is exported to ONNX after the study."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from .base import PositiveInt, Settings


class ExportSettings(Settings):
    """``export``: the model exported to ONNX and how its export is checked."""

    model: Literal["best", "scratch", "frozen", "finetune_top", "finetune", "none"] = Field(
        description="best (chosen on validation), a variant, or none (no export)"
    )
    batch_size: PositiveInt = Field(description="test photos run at a time in the check")
