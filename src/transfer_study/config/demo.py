"""The configuration of the demo-photo renderer: ``params:demo_data`` as pydantic models.

Every ``[low, high]`` interval is a 2-tuple whose ends lie within the range the renderer
accepts for it, with ``low <= high``.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import AfterValidator, Field, Strict, ValidationInfo, field_validator

from .base import PositiveFloat, Seed, Settings

# Partition ids are zero-padded to 4 and 2 digits, so the counts must stay below these.
_MAX_SAMPLES = 10_000
_MAX_ANGLES = 100
_MIN_IMAGE_SIZE = 32
_MAX_IMAGE_SIZE = 4096
_MAX_AMBIGUOUS_FRACTION = 0.49  # at one half the classes would be indistinguishable

Interval = tuple[float, float]


def _ordered(interval: tuple) -> tuple:
    if interval[0] > interval[1]:
        raise ValueError(f"must have low <= high, got [{interval[0]}, {interval[1]}]")
    return interval


def _interval(lo: float, hi: float) -> object:
    """A ``[low, high]`` pair of numbers in ``[lo, hi]``."""
    end = Annotated[float, Strict(), Field(ge=lo, le=hi)]
    return Annotated[tuple[end, end], AfterValidator(_ordered)]


def _int_interval(lo: int, hi: int) -> object:
    """A ``[low, high]`` pair of integers in ``[lo, hi]``."""
    end = Annotated[int, Strict(), Field(ge=lo, le=hi)]
    return Annotated[tuple[end, end], AfterValidator(_ordered)]


_Unit = _interval(0.0, 1.0)
_Hue = _interval(0.0, 360.0)
_Factor = _interval(0.1, 3.0)


class Palette(Settings):
    """One family of colours of a class, in HSV (hue in degrees)."""

    weight: PositiveFloat = Field(description="relative frequency of the family")
    hue: _Hue
    saturation: _Unit
    value: _Unit


class Appearance(Settings):
    """Distribution of the intrinsic properties of one class's fragments."""

    palettes: Annotated[tuple[Palette, ...], Field(min_length=1)]
    size: _interval(0.05, 1.0)
    vertices: _int_interval(3, 64)
    roundness: _Unit
    radial_jitter: _interval(0.0, 0.9)
    elongation: _interval(1.0, 10.0)
    grain: _Unit
    speckle: _Unit
    mottling: _Unit
    banding: _Unit
    band_frequency: _interval(0.0, 32.0)
    gloss: _Unit
    translucency: _interval(0.0, 0.95)
    thickness: _Unit


class ViewRanges(Settings):
    """Distribution of what changes between the angles of one sample."""

    rotation_deg: _interval(-360.0, 360.0)
    scale: _Factor
    tilt: _interval(0.0, 0.9)
    position_jitter: _interval(0.0, 0.4)
    brightness: _Factor
    illumination_gradient: _Unit
    shading: _Unit
    highlight_size: _interval(0.01, 2.0)
    shadow_length: _interval(0.0, 2.0)
    shadow_strength: _Unit
    white_balance: _interval(0.0, 0.5)
    blur: _interval(0.0, 5.0)
    noise: _interval(0.0, 0.5)


class SandRanges(Settings):
    """Distribution of the sand background, drawn afresh for every photo."""

    hue: _Hue
    saturation: _Unit
    value: _Unit
    grain: _Unit
    mottling: _Unit
    ripple: _Unit
    debris_count: _int_interval(0, 50)
    debris_size: _interval(0.0, 0.5)


class DemoConfig(Settings):
    """``demo_data``: the counts, classes and distributions of the demo photos."""

    n_samples: Annotated[int, Strict(), Field(ge=2, le=_MAX_SAMPLES)] = Field(
        description="physical fragments, half of each class (even)"
    )
    n_angles: Annotated[int, Strict(), Field(ge=1, le=_MAX_ANGLES)] = Field(
        description="photos per fragment"
    )
    image_size: Annotated[int, Strict(), Field(ge=_MIN_IMAGE_SIZE, le=_MAX_IMAGE_SIZE)] = Field(
        description="side of the square photos, pixels"
    )
    seed: Seed = Field(description="each photo depends only on (seed, sample, angle)")
    classes: tuple[str, str] = Field(description="exactly two distinct class names")
    ambiguous_fraction: Annotated[float, Strict(), Field(ge=0.0, le=_MAX_AMBIGUOUS_FRACTION)] = (
        Field(description="share of samples that look like the other class")
    )
    appearance: dict[str, Appearance] = Field(description="intrinsic properties per class")
    view: ViewRanges = Field(description="what changes between the angles of a sample")
    sand: SandRanges = Field(description="the sand background")

    @field_validator("n_samples")
    @classmethod
    def _even(cls, n_samples: int) -> int:
        if n_samples % 2:
            raise ValueError(f"must be even to split evenly into two classes, got {n_samples}")
        return n_samples

    @field_validator("classes")
    @classmethod
    def _distinct_file_names(cls, classes: tuple[str, str]) -> tuple[str, str]:
        if not all(name.strip() for name in classes) or classes[0] == classes[1]:
            raise ValueError(f"must be two distinct, non-blank class names, got {list(classes)}")
        if any("/" in name or "\\" in name for name in classes):
            raise ValueError(f"must not contain path separators, got {list(classes)}")
        return classes

    @field_validator("appearance")
    @classmethod
    def _one_per_class(
        cls, appearance: dict[str, Appearance], info: ValidationInfo
    ) -> dict[str, Appearance]:
        classes = info.data.get("classes")
        if classes is None:  # classes are invalid and reported on their own
            return appearance
        missing = sorted(set(classes) - set(appearance))
        unknown = sorted(set(appearance) - set(classes))
        if missing or unknown:
            raise ValueError(
                f"must have one entry per class of {list(classes)}: missing {missing}, "
                f"not a class {unknown}"
            )
        return appearance
