"""``study``: which variants ``kedro run`` trains and compares."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field, field_validator

from .base import Settings, VariantName


class StudySettings(Settings):
    """``study``: the variants of the comparison.

    The list shapes the pipeline (one namespace per variant), so it is read from the
    configuration files when the pipeline is built; a run whose ``--params`` say otherwise
    is refused (``transfer_study.pipelines.configured``).
    """

    variants: Annotated[list[VariantName], Field(min_length=1)] = Field(
        description="variants trained and compared by `kedro run`, in any order"
    )

    @field_validator("variants")
    @classmethod
    def _no_repeats(cls, variants: list[str]) -> list[str]:
        repeated = sorted({v for v in variants if variants.count(v) > 1})
        if repeated:
            raise ValueError(f"each variant once; repeated: {', '.join(repeated)}")
        return variants
