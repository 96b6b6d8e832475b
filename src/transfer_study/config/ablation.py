"""``data_size_ablation``: the grid of training-set sizes, its overrides and its report."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated, Any

from pydantic import BeforeValidator, Field

from .base import (
    NonNegativeFloat,
    OpenFraction,
    PositiveFloat,
    PositiveInt,
    Seed,
    Settings,
    VariantName,
)
from .grid import ClusterSettings
from .training import VariantOverrides


def _as_list(value: Any) -> Any:
    """A single value in a grid axis counts as a one-element list."""
    if isinstance(value, Sequence) and not isinstance(value, str):
        return value
    return [value]


_Axis = Annotated[list[PositiveInt], BeforeValidator(_as_list), Field(min_length=1)]


class ReportSettings(Settings):
    """``data_size_ablation.report``: the learning curve's intervals and the verdict."""

    tolerance: Annotated[NonNegativeFloat, Field(le=1)] = Field(
        description="a smaller budget is enough when the upper bound of its loss against "
        "the largest budget is below this (a fraction of the headline metric)"
    )
    confidence: OpenFraction = Field(
        description="one-sided level of the non-inferiority bounds; level of the other intervals"
    )
    bootstrap_resamples: PositiveInt = Field(
        description="two-level bootstrap resamples (also the learning curve's refits)"
    )
    bootstrap_seed: Seed = Field(description="the bootstrap's seed")
    extrapolate_to: list[PositiveFloat] = Field(
        description="power-law predictions at these multiples of the largest size"
    )


class AblationGrid(Settings):
    """The cells: every combination of samples, angles and seeds."""

    n_samples: _Axis = Field(description="training samples per cell, all classes together")
    n_angles: _Axis = Field(description="photos per training sample")
    seeds: Annotated[list[Seed], BeforeValidator(_as_list), Field(min_length=1)] = Field(
        description="each seed draws other subsets and another initialisation"
    )
    clamp: bool = Field(description="use what exists when a cell asks for more")


class AblationSettings(AblationGrid):
    """``data_size_ablation``: the grid, which variants it trains, and the report."""

    variants: Annotated[list[VariantName], Field(min_length=1)] = Field(
        description="variants trained in every cell"
    )
    training_overrides: dict[VariantName, VariantOverrides] = Field(
        description="per variant, settings that replace the study's in the ablation"
    )
    report: ReportSettings = Field(description="the report's settings")
    cluster: ClusterSettings = Field(
        description="the Dask cluster of transfer_study.grid.DaskGridRunner (unused otherwise)"
    )
