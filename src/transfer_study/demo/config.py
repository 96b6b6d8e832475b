"""The configuration of the demo-photo renderer: its schema and a hand-written validator.

``parse_demo_config`` turns the raw ``demo_data`` parameters into a frozen ``DemoConfig``,
checking every key and every ``[low, high]`` interval against its admissible range.
"""

from __future__ import annotations

import dataclasses
import typing
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Annotated, Any, NamedTuple

# Partition ids are zero-padded to 4 and 2 digits, so the counts must stay below these.
_MAX_SAMPLES = 10_000
_MAX_ANGLES = 100
_MIN_IMAGE_SIZE = 32
_MAX_IMAGE_SIZE = 4096

Interval = tuple[float, float]


class _Bounds(NamedTuple):
    """Where both ends of a ``[low, high]`` parameter must lie."""

    lo: float
    hi: float
    integer: bool = False


# Interval parameters, annotated with their admissible range for validation.
_Unit = Annotated[Interval, _Bounds(0.0, 1.0)]
_Hue = Annotated[Interval, _Bounds(0.0, 360.0)]
_Factor = Annotated[Interval, _Bounds(0.1, 3.0)]


@dataclass(frozen=True)
class Palette:
    """One family of colours of a class, in HSV (hue in degrees)."""

    weight: float
    hue: _Hue
    saturation: _Unit
    value: _Unit


@dataclass(frozen=True)
class Appearance:
    """Distribution of the intrinsic properties of one class's fragments."""

    palettes: tuple[Palette, ...]
    size: Annotated[Interval, _Bounds(0.05, 1.0)]
    vertices: Annotated[Interval, _Bounds(3, 64, integer=True)]
    roundness: _Unit
    radial_jitter: Annotated[Interval, _Bounds(0.0, 0.9)]
    elongation: Annotated[Interval, _Bounds(1.0, 10.0)]
    grain: _Unit
    speckle: _Unit
    mottling: _Unit
    banding: _Unit
    band_frequency: Annotated[Interval, _Bounds(0.0, 32.0)]
    gloss: _Unit
    translucency: Annotated[Interval, _Bounds(0.0, 0.95)]
    thickness: _Unit


@dataclass(frozen=True)
class ViewRanges:
    """Distribution of what changes between the angles of one sample."""

    rotation_deg: Annotated[Interval, _Bounds(-360.0, 360.0)]
    scale: _Factor
    tilt: Annotated[Interval, _Bounds(0.0, 0.9)]
    position_jitter: Annotated[Interval, _Bounds(0.0, 0.4)]
    brightness: _Factor
    illumination_gradient: _Unit
    shading: _Unit
    highlight_size: Annotated[Interval, _Bounds(0.01, 2.0)]
    shadow_length: Annotated[Interval, _Bounds(0.0, 2.0)]
    shadow_strength: _Unit
    white_balance: Annotated[Interval, _Bounds(0.0, 0.5)]
    blur: Annotated[Interval, _Bounds(0.0, 5.0)]
    noise: Annotated[Interval, _Bounds(0.0, 0.5)]


@dataclass(frozen=True)
class SandRanges:
    """Distribution of the sand background, drawn afresh for every photo."""

    hue: _Hue
    saturation: _Unit
    value: _Unit
    grain: _Unit
    mottling: _Unit
    ripple: _Unit
    debris_count: Annotated[Interval, _Bounds(0, 50, integer=True)]
    debris_size: Annotated[Interval, _Bounds(0.0, 0.5)]


@dataclass(frozen=True)
class DemoConfig:
    """The validated ``demo_data`` parameters."""

    n_samples: int
    n_angles: int
    image_size: int
    seed: int
    classes: tuple[str, str]
    ambiguous_fraction: float
    appearance: dict[str, Appearance]
    view: ViewRanges
    sand: SandRanges


# ----------------------------------------------------------------------------- validation


def _fail(path: str, message: str) -> ValueError:
    return ValueError(f"demo_data.{path} {message}")


def _mapping(value: Any, path: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise _fail(path, f"must be a mapping, got {type(value).__name__}")
    return value


def _check_keys(mapping: Mapping[str, Any], expected: set[str], path: str) -> None:
    missing = sorted(expected - set(mapping))
    unknown = sorted(map(str, set(mapping) - expected))
    if missing:
        raise _fail(path, f"is missing key(s): {', '.join(missing)}")
    if unknown:
        raise _fail(path, f"has unknown key(s): {', '.join(unknown)}")


def _number(value: Any, path: str, lo: float, hi: float, *, integer: bool = False) -> Any:
    kinds = (int,) if integer else (int, float)
    if isinstance(value, bool) or not isinstance(value, kinds):
        raise _fail(path, f"must be {'an integer' if integer else 'a number'}, got {value!r}")
    if not lo <= value <= hi:
        raise _fail(path, f"must lie in [{lo}, {hi}], got {value}")
    return value


def _parse_interval(value: Any, path: str, bounds: _Bounds) -> Interval:
    if not isinstance(value, list | tuple) or len(value) != 2:
        raise _fail(path, f"must be a [low, high] pair, got {value!r}")
    low, high = (
        _number(end, f"{path}[{i}]", bounds.lo, bounds.hi, integer=bounds.integer)
        for i, end in enumerate(value)
    )
    if low > high:
        raise _fail(path, f"must have low <= high, got {list(value)}")
    return (low, high)


def _parse_ranges(cls: type, raw: Any, path: str, **parsed: Any) -> Any:
    """Builds dataclass ``cls`` from ``raw``, validating every ``_Bounds``-annotated field."""
    mapping = _mapping(raw, path)
    _check_keys(mapping, {f.name for f in dataclasses.fields(cls)}, path)
    hints = typing.get_type_hints(cls, include_extras=True)
    for name, hint in hints.items():
        if name not in parsed:
            parsed[name] = _parse_interval(mapping[name], f"{path}.{name}", hint.__metadata__[0])
    return cls(**parsed)


def _parse_palettes(raw: Any, path: str) -> tuple[Palette, ...]:
    if not isinstance(raw, list | tuple) or not raw:
        raise _fail(path, f"must be a non-empty list of palettes, got {raw!r}")
    palettes = []
    for i, item in enumerate(raw):
        item_path = f"{path}[{i}]"
        weight = _number(_mapping(item, item_path).get("weight"), f"{item_path}.weight", 0, 1e9)
        if weight <= 0:
            raise _fail(f"{item_path}.weight", f"must be positive, got {weight}")
        palettes.append(_parse_ranges(Palette, item, item_path, weight=weight))
    return tuple(palettes)


def _parse_classes(raw: Any) -> tuple[str, str]:
    if (
        not isinstance(raw, list | tuple)
        or len(raw) != 2
        or not all(isinstance(name, str) and name.strip() for name in raw)
        or raw[0] == raw[1]
    ):
        raise _fail("classes", f"must be exactly two distinct class names, got {raw!r}")
    if any("/" in name or "\\" in name for name in raw):
        raise _fail("classes", f"must not contain path separators, got {raw!r}")
    return (raw[0], raw[1])


def parse_demo_config(params: Any) -> DemoConfig:
    """Validates ``params:demo_data``.

    Args:
        params: The raw parameter mapping.

    Returns:
        The validated configuration.

    Raises:
        ValueError: When a key is missing, unknown or out of range.
    """
    params = _mapping(params, "(root)")
    _check_keys(params, {f.name for f in dataclasses.fields(DemoConfig)}, "(root)")
    n_samples = _number(params["n_samples"], "n_samples", 2, _MAX_SAMPLES, integer=True)
    if n_samples % 2:
        raise _fail("n_samples", f"must be even to split evenly into two classes, got {n_samples}")
    classes = _parse_classes(params["classes"])
    appearance_raw = _mapping(params["appearance"], "appearance")
    _check_keys(appearance_raw, set(classes), "appearance")
    appearance = {}
    for name in classes:
        path = f"appearance.{name}"
        raw = _mapping(appearance_raw[name], path)
        palettes = _parse_palettes(raw.get("palettes"), f"{path}.palettes")
        appearance[name] = _parse_ranges(Appearance, raw, path, palettes=palettes)
    return DemoConfig(
        n_samples=n_samples,
        n_angles=_number(params["n_angles"], "n_angles", 1, _MAX_ANGLES, integer=True),
        image_size=_number(
            params["image_size"], "image_size", _MIN_IMAGE_SIZE, _MAX_IMAGE_SIZE, integer=True
        ),
        seed=_number(params["seed"], "seed", 0, 2**63 - 1, integer=True),
        classes=classes,
        ambiguous_fraction=float(
            _number(params["ambiguous_fraction"], "ambiguous_fraction", 0.0, 0.49)
        ),
        appearance=appearance,
        view=_parse_ranges(ViewRanges, params["view"], "view"),
        sand=_parse_ranges(SandRanges, params["sand"], "sand"),
    )
