"""The blocks of the photos and the model: ``model``, ``raw_images`` and ``split``."""

from __future__ import annotations

import re
from typing import Annotated, Literal

from pydantic import Field, Strict, field_validator, model_validator

from .base import NonNegativeInt, OpenFraction, PositiveFloat, PositiveInt, Seed, Settings

Fraction = Annotated[float, Strict(), Field(ge=0, le=1)]  # 0 and 1 included

# The backbones downsample 32 times; a smaller input leaves them nothing to see.
_MIN_IMAGE_SIZE = 32
_SAMPLE_ID_GROUP = "sample_id"
_MAX_FOLDS = 20  # each fold is a whole study: more would take days, not change the answer


class ModelSettings(Settings):
    """``model``: the backbone every variant starts from, and its input size."""

    backbone: str = Field(
        min_length=1, description="efficientnet_lite0, a torchvision or a timm model name"
    )
    image_size: Annotated[int, Strict(), Field(ge=_MIN_IMAGE_SIZE)] | Literal["auto"] = Field(
        description="input side in pixels; auto = the weights' native size, capped at the "
        "photos' median shorter side"
    )


class RawImagesSettings(Settings):
    """``raw_images``: where the photos are and how their names group them into samples."""

    path: str = Field(min_length=1, description="the photo folder")
    manifest: str | None = Field(description="CSV at the folder root with path,label[,...]")
    filename_pattern: str | None = Field(
        description="regex on the file name; named groups sample_id and optional angle"
    )
    sample_ids_per_class: bool = Field(
        default=True,
        description="true: an id read from a file name names a sample within its class "
        "(cat/001 and dog/001 are two samples); false: one id names one sample across the "
        "folder. A manifest's sample_id column is always folder-wide",
    )
    classes: Annotated[list[str], Field(min_length=1)] | None = Field(
        description="classes to use; null = all"
    )
    check_draft_size: PositiveInt | None = Field(
        description="check JPEGs at this many pixels a side at least; null = full size"
    )
    max_ungrouped_share: Fraction = Field(
        default=0.10,
        description="largest share of photos the pattern may leave ungrouped (each its own "
        "sample) when it matches others; above it the run stops before the split",
    )
    near_copy_similarity: OpenFraction = Field(
        default=0.90,
        description="cosine similarity of frozen-backbone features above which a test photo "
        "and its nearest training photo count as near-copies",
    )
    max_near_copy_share: Fraction = Field(
        default=0.05,
        description="largest share of test photos with a near-copy in training; above it "
        "the run stops before any training",
    )
    suspicious_one_colour_share: Annotated[float, Strict(), Field(gt=0, le=1)] = Field(
        default=0.90,
        description="a photo with at least this share of its pixels in one colour (a "
        "placeholder, a blank frame) is kept but listed as suspicious in data_quality.csv",
    )
    suspicious_min_side: NonNegativeInt = Field(
        default=_MIN_IMAGE_SIZE,
        description="a photo with a side below this many pixels is kept but listed as "
        "suspicious in data_quality.csv; 0 = never",
    )
    max_cache_gb: PositiveFloat = Field(
        default=8.0,
        description="largest cache entry (decoded photos, backbone features) a run may "
        "build, in GB; it is held in memory whole, and must also fit the free disk",
    )
    allow_ungrouped: bool = Field(
        default=False,
        description="true: photos look like several views of the same objects but are "
        "distinct; the grouping checks warn instead of stopping",
    )

    @field_validator("filename_pattern")
    @classmethod
    def _pattern_names_the_sample(cls, pattern: str | None) -> str | None:
        if pattern is None:
            return None
        try:
            compiled = re.compile(pattern)
        except re.error as error:
            raise ValueError(f"is not a valid regular expression: {error}") from error
        if _SAMPLE_ID_GROUP not in compiled.groupindex:
            raise ValueError(
                f"needs a named group (?P<{_SAMPLE_ID_GROUP}>...); null makes every photo its "
                "own sample"
            )
        return pattern


class SplitSettings(Settings):
    """``split``: the shares of each class's physical samples held out, and the seed."""

    val_fraction: OpenFraction = Field(description="share of samples held out for validation")
    test_fraction: OpenFraction = Field(description="share of samples held out for testing")
    seed: Seed = Field(description="the split's random seed")
    folds: Annotated[int, Strict(), Field(ge=2, le=_MAX_FOLDS)] | None = Field(
        default=None,
        description="k: grouped, stratified k-fold cross-validation (every sample tested "
        "once; test_fraction is then unused); null = one train/val/test split",
    )

    @model_validator(mode="after")
    def _leaves_training_samples(self) -> SplitSettings:
        if self.val_fraction + self.test_fraction >= 1:
            raise ValueError(
                "val_fraction + test_fraction must be below 1 (the rest trains), got "
                f"{self.val_fraction} + {self.test_fraction}"
            )
        return self
