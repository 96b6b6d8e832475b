"""Deterministic renderer of demo photos: small beach fragments (plastic or natural) on sand.

Every physical *sample* has intrinsic properties (outline, size, colour, texture, gloss,
translucency, thickness) drawn once from its class's distribution; its *angles* only change
the view (rotation, camera tilt, scale, position, lighting, a fresh patch of sand). A share
of samples is ambiguous: labelled with one class but drawn from the other class's
distribution, so that no classifier can reach 100 %.

Randomness is keyed, never sequential: the intrinsic properties of sample ``i`` come from
``(seed, i)`` and the view of its angle ``a`` from ``(seed, i, a)``, so any single image is
reproducible on its own, whatever ``n_samples`` or ``n_angles``. Photos are returned as
lazy callables, rendered one at a time when the ``PartitionedDataset`` saves them.
"""

from __future__ import annotations

import colorsys
import dataclasses
import functools
import logging
import math
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Annotated, Any, NamedTuple

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

logger = logging.getLogger(__name__)

# Stream tags keep the random streams apart. They lead the key because SeedSequence pads
# with zeros: a bare (seed, i) would collide with (seed, i, 0).
_STREAM_CLASS = 0
_STREAM_INTRINSIC = 1
_STREAM_VIEW = 2
_STREAM_AMBIGUITY = 3

# Ambiguous samples follow a golden-ratio (Weyl) sequence from a seeded start: the first n
# samples hold fraction * n of them, +-2, where independent coin flips would give +-8 (2 sd)
# at 200 samples. Which sample is ambiguous still never depends on n_samples.
_GOLDEN_FRACTION = (math.sqrt(5.0) - 1.0) / 2.0

# Partition ids are zero-padded to 4 and 2 digits, so the counts must stay below these.
_MAX_SAMPLES = 10_000
_MAX_ANGLES = 100
_MIN_IMAGE_SIZE = 32
_MAX_IMAGE_SIZE = 4096

# The fragment is textured on a canvas of half the photo's side (it covers less than that
# in the photo, so little detail is lost) with its outline drawn 2x supersampled.
_CANVAS_FRACTION = 0.5
_MIN_CANVAS = 16
_CANVAS_MARGIN = 0.04
_OUTLINE_SUPERSAMPLING = 2
_CHAIKIN_ITERATIONS = 3
_VERTEX_ANGLE_JITTER = 0.35  # of the even spacing: corners never swap order

# Rendering internals: how textures look, not how the classes differ.
_BAND_WOBBLE = 1.5  # radians: wood grain and shell ridges meander
_BAND_WOBBLE_CELLS = 4
_MOTTLING_CELLS = 5
_CHANNEL_MOTTLING = 0.5  # share of the mottling that tints channels apart
_SPECKLE_SHADE = (0.3, 1.8)  # speckles are dark or light grains
_SAND_MOTTLING_CELLS = 6
_SAND_RIPPLES_PER_SIDE = (3.0, 7.0)
_SAND_RIPPLE_WOBBLE = 2.0
_SAND_RIPPLE_WOBBLE_CELLS = 3
_DEBRIS_SHADE = (0.45, 1.4)  # tiny shells and pebbles: darker or lighter sand
_HIGHLIGHT_OFFSET = 0.4  # of the radius, towards the light
_HIGHLIGHT_TIGHTENING = 1.2  # highlight width scales with (this - gloss)
_SHADOW_SOFTNESS = 0.15  # blur radius as a share of the fragment radius
_SHADOW_DOWNSCALE = 4  # soft shadows are blurred at 1/4 resolution: same look, 10x cheaper
_UNIFORM_TO_UNIT_STD = math.sqrt(12.0)
# Gaussian interpolation averages neighbouring cells; this gain restores a spread of ~0.8 sd.
_SMOOTH_NOISE_GAIN = 1.6
_SMOOTH_NOISE_WIDTH = 0.6  # interpolation kernel sd, in cells

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
class _Palette:
    """One family of colours of a class, in HSV (hue in degrees)."""

    weight: float
    hue: _Hue
    saturation: _Unit
    value: _Unit


@dataclass(frozen=True)
class _Appearance:
    """Distribution of the intrinsic properties of one class's fragments."""

    palettes: tuple[_Palette, ...]
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
class _ViewRanges:
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
class _SandRanges:
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
class _Config:
    """Validated ``params:demo_data``."""

    n_samples: int
    n_angles: int
    image_size: int
    seed: int
    classes: tuple[str, str]
    ambiguous_fraction: float
    appearance: dict[str, _Appearance]
    view: _ViewRanges
    sand: _SandRanges


@dataclass(frozen=True)
class _Fragment:
    """Intrinsic properties of one physical sample, fixed across its angles."""

    rgba: Image.Image  # albedo and silhouette (alpha) on the square canonical canvas
    size: float
    gloss: float
    translucency: float
    thickness: float


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


def _parse_palettes(raw: Any, path: str) -> tuple[_Palette, ...]:
    if not isinstance(raw, list | tuple) or not raw:
        raise _fail(path, f"must be a non-empty list of palettes, got {raw!r}")
    palettes = []
    for i, item in enumerate(raw):
        item_path = f"{path}[{i}]"
        weight = _number(_mapping(item, item_path).get("weight"), f"{item_path}.weight", 0, 1e9)
        if weight <= 0:
            raise _fail(f"{item_path}.weight", f"must be positive, got {weight}")
        palettes.append(_parse_ranges(_Palette, item, item_path, weight=weight))
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


def _parse_config(params: Any) -> _Config:
    """Validates ``params:demo_data``.

    Args:
        params: The raw parameter mapping.

    Returns:
        The validated configuration.

    Raises:
        ValueError: When a key is missing, unknown or out of range.
    """
    params = _mapping(params, "(root)")
    _check_keys(params, {f.name for f in dataclasses.fields(_Config)}, "(root)")
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
        appearance[name] = _parse_ranges(_Appearance, raw, path, palettes=palettes)
    return _Config(
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
        view=_parse_ranges(_ViewRanges, params["view"], "view"),
        sand=_parse_ranges(_SandRanges, params["sand"], "sand"),
    )


# --------------------------------------------------------------------------- random draws


def _rng(config: _Config, stream: int, *key: int) -> np.random.Generator:
    return np.random.default_rng([config.seed, stream, *key])


def _uniform(rng: np.random.Generator, interval: Interval) -> float:
    # Scaling rng.random() is 4x faster than rng.uniform() for one number.
    return interval[0] + (interval[1] - interval[0]) * rng.random()


def _colour(rng: np.random.Generator, hue: Interval, sat: Interval, val: Interval) -> np.ndarray:
    """An RGB colour (float32, 0..1) drawn uniformly in an HSV box."""
    h, s, v = _uniform(rng, hue) / 360.0 % 1.0, _uniform(rng, sat), _uniform(rng, val)
    return np.asarray(colorsys.hsv_to_rgb(h, s, v), dtype=np.float32)


def _label(config: _Config, sample: int) -> str:
    """The class of a sample: each consecutive pair holds one of each, in a seeded order."""
    flip = int(_rng(config, _STREAM_CLASS, sample // 2).integers(2))
    return config.classes[(sample % 2) ^ flip]


def _is_ambiguous(config: _Config, sample: int) -> bool:
    """Whether a sample is drawn from the other class's distribution than its label's."""
    start = _rng(config, _STREAM_AMBIGUITY).random()
    return (start + sample * _GOLDEN_FRACTION) % 1.0 < config.ambiguous_fraction


def _look(config: _Config, sample: int) -> str:
    """The class whose distribution a sample's intrinsic properties are drawn from."""
    label = _label(config, sample)
    if not _is_ambiguous(config, sample):
        return label
    return next(name for name in config.classes if name != label)


@functools.lru_cache(maxsize=8)
def _centred_grid(size: int) -> tuple[np.ndarray, np.ndarray]:
    """Pixel-centre coordinates ``(x, y)`` of a square image, relative to its centre."""
    coords = np.arange(size, dtype=np.float32) + (0.5 - size / 2)
    x, y = np.meshgrid(coords, coords)
    x.setflags(write=False)
    y.setflags(write=False)
    return x, y


@functools.lru_cache(maxsize=32)
def _upsampling(size: int, cells: int) -> np.ndarray:
    """``(size, cells)`` weights that spread ``cells`` values smoothly over ``size`` pixels."""
    positions = (np.arange(size) + 0.5) * cells / size - 0.5
    weights = np.exp(
        -0.5 * ((positions[:, None] - np.arange(cells)[None, :]) / _SMOOTH_NOISE_WIDTH) ** 2
    )
    weights = (weights / weights.sum(axis=1, keepdims=True)).astype(np.float32)
    weights.setflags(write=False)
    return weights


def _smooth_noise(rng: np.random.Generator, size: int, cells: int) -> np.ndarray:
    """Zero-mean noise (sd ~0.8) that varies smoothly over ``size / cells`` pixels."""
    spread = _upsampling(size, cells)
    coarse = rng.standard_normal((cells, cells), dtype=np.float32) * _SMOOTH_NOISE_GAIN
    return spread @ coarse @ spread.T  # Gaussian interpolation as two small matmuls


def _white_noise(
    rng: np.random.Generator, shape: tuple[int, ...], std: float, mean: float = 0.0
) -> np.ndarray:
    """Per-pixel uniform noise of standard deviation ``std``, from raw random bytes."""
    step = std * _UNIFORM_TO_UNIT_STD / 256  # 256 even levels span sqrt(12) sd
    levels = np.frombuffer(rng.bytes(math.prod(shape)), dtype=np.uint8).reshape(shape)
    noise = levels.astype(np.float32)
    noise *= step
    noise += mean - 127.5 * step
    return noise


# ------------------------------------------------------------------------------ intrinsic


def _outline(rng: np.random.Generator, look: _Appearance) -> np.ndarray:
    """A closed outline of unit radius: sharp corners for shards, cut corners for blobs."""
    k = int(rng.integers(look.vertices[0], look.vertices[1] + 1))
    jitter = rng.uniform(-_VERTEX_ANGLE_JITTER, _VERTEX_ANGLE_JITTER, k)
    angles = 2 * np.pi * (np.arange(k) + jitter) / k + _uniform(rng, (0, 2 * np.pi))
    radii = 1.0 + _uniform(rng, look.radial_jitter) * rng.uniform(-1.0, 1.0, k)
    points = np.stack([np.cos(angles) * radii, np.sin(angles) * radii], axis=1)
    cut = 0.25 * _uniform(rng, look.roundness)  # Chaikin's corner cutting: 0.25 is fully round
    for _ in range(_CHAIKIN_ITERATIONS if cut > 0 else 0):
        following = np.roll(points, -1, axis=0)
        points = np.stack(
            [(1 - cut) * points + cut * following, cut * points + (1 - cut) * following], axis=1
        ).reshape(-1, 2)
    stretch = math.sqrt(_uniform(rng, look.elongation))
    points = points * np.array([stretch, 1 / stretch])
    return points / np.abs(points).max()


def _texture(rng: np.random.Generator, look: _Appearance, canvas: int) -> np.ndarray:
    """The albedo of the fragment: base colour modulated by grain, mottle, bands, speckles."""
    weights = np.array([palette.weight for palette in look.palettes])
    palette = look.palettes[int(rng.choice(len(weights), p=weights / weights.sum()))]
    colour = _colour(rng, palette.hue, palette.saturation, palette.value)
    x, y = _centred_grid(canvas)
    phi = _uniform(rng, (0, np.pi))
    frequency = _uniform(rng, look.band_frequency) * 2 * np.pi / canvas
    wobble = _BAND_WOBBLE * _smooth_noise(rng, canvas, _BAND_WOBBLE_CELLS)
    bands = np.sin(frequency * (x * math.cos(phi) + y * math.sin(phi)) + wobble)
    shade = (
        1.0
        + _uniform(rng, look.grain) * rng.standard_normal((canvas, canvas), dtype=np.float32)
        + _uniform(rng, look.mottling) * _smooth_noise(rng, canvas, _MOTTLING_CELLS)
        + _uniform(rng, look.banding) * bands
    )
    speckles = rng.random((canvas, canvas), dtype=np.float32) < _uniform(rng, look.speckle)
    speckle_shade = rng.uniform(*_SPECKLE_SHADE, (canvas, canvas)).astype(np.float32)
    shade = np.where(speckles, speckle_shade, shade)
    # Each channel mottles a little on its own, as minerals and weathering do.
    tint = 1.0 + _CHANNEL_MOTTLING * _uniform(rng, look.mottling) * rng.standard_normal(3)
    albedo = colour * tint.astype(np.float32) * shade[..., None]
    return np.clip(albedo * 255.0, 0, 255).astype(np.uint8)


def _mask(outline: np.ndarray, canvas: int) -> Image.Image:
    """The silhouette of ``outline`` on the canvas, with anti-aliased edges."""
    big = canvas * _OUTLINE_SUPERSAMPLING
    radius = 0.5 * big * (1 - _CANVAS_MARGIN)
    image = Image.new("L", (big, big), 0)
    ImageDraw.Draw(image).polygon((outline * radius + big / 2).ravel().tolist(), fill=255)
    return image.reduce(_OUTLINE_SUPERSAMPLING)


def _draw_fragment(config: _Config, sample: int) -> _Fragment:
    """Draws the intrinsic properties of one sample from its own random stream."""
    rng = _rng(config, _STREAM_INTRINSIC, sample)
    look = config.appearance[_look(config, sample)]
    canvas = max(_MIN_CANVAS, round(config.image_size * _CANVAS_FRACTION))
    outline = _outline(rng, look)
    rgba = Image.fromarray(_texture(rng, look, canvas), mode="RGB").convert("RGBA")
    rgba.putalpha(_mask(outline, canvas))
    return _Fragment(
        rgba=rgba,
        size=_uniform(rng, look.size),
        gloss=_uniform(rng, look.gloss),
        translucency=_uniform(rng, look.translucency),
        thickness=_uniform(rng, look.thickness),
    )


# ----------------------------------------------------------------------------------- view


def _homography(
    rng: np.random.Generator,
    view: _ViewRanges,
    canvas: int,
    centre: tuple[float, float],
    radius: float,
) -> np.ndarray:
    """Canvas -> photo: rotate, tilt the camera (keystone and foreshortening), place."""
    half = canvas / 2
    unit = 1 / (half * (1 - _CANVAS_MARGIN))
    to_unit = np.array([[unit, 0, -half * unit], [0, unit, -half * unit], [0, 0, 1]])
    theta = math.radians(_uniform(rng, view.rotation_deg))
    cos_t, sin_t = math.cos(theta), math.sin(theta)
    rotate = np.array([[cos_t, -sin_t, 0], [sin_t, cos_t, 0], [0, 0, 1]])
    tilt, beta = _uniform(rng, view.tilt), _uniform(rng, (0, 2 * np.pi))
    cos_b, sin_b = math.cos(beta), math.sin(beta)
    along = np.array([[cos_b, sin_b, 0], [-sin_b, cos_b, 0], [0, 0, 1]])
    keystone = np.array([[1 - 0.5 * tilt, 0, 0], [0, 1, 0], [tilt, 0, 1]])
    place = np.array([[radius, 0, centre[0]], [0, radius, centre[1]], [0, 0, 1]])
    return place @ along.T @ keystone @ along @ rotate @ to_unit


def _warp(fragment: _Fragment, homography: np.ndarray, size: int) -> Image.Image:
    """Photographs the fragment: an RGBA photo, transparent where the fragment is not."""
    inverse = np.linalg.inv(homography)  # PIL maps photo pixels back to the canvas
    coefficients = (inverse / inverse[2, 2]).ravel()[:8].tolist()
    return fragment.rgba.transform((size, size), Image.PERSPECTIVE, coefficients, Image.BILINEAR)


def _sand(rng: np.random.Generator, sand: _SandRanges, size: int) -> np.ndarray:
    """A fresh patch of sand: tinted, mottled, rippled, grainy, with tiny debris."""
    colour = _colour(rng, sand.hue, sand.saturation, sand.value)
    x, y = _centred_grid(size)
    phi = _uniform(rng, (0, np.pi))
    wavenumber = _uniform(rng, _SAND_RIPPLES_PER_SIDE) * 2 * math.pi / size
    wobble = _SAND_RIPPLE_WOBBLE * _smooth_noise(rng, size, _SAND_RIPPLE_WOBBLE_CELLS)
    ripples = np.sin((x * math.cos(phi) + y * math.sin(phi)) * wavenumber + wobble)
    shade = (
        1.0
        + _uniform(rng, sand.mottling) * _smooth_noise(rng, size, _SAND_MOTTLING_CELLS)
        + _uniform(rng, sand.ripple) * ripples
    )
    n_debris = int(rng.integers(sand.debris_count[0], sand.debris_count[1] + 1))
    if n_debris:
        labels = Image.new("L", (size, size), 0)
        draw = ImageDraw.Draw(labels)
        for k in range(1, n_debris + 1):
            cx, cy = rng.uniform(0, size, 2)
            rx, ry = rng.uniform(*sand.debris_size, 2) * size / 2 + 0.5
            draw.ellipse([cx - rx, cy - ry, cx + rx, cy + ry], fill=k)
        shades = rng.uniform(*_DEBRIS_SHADE, n_debris)
        shade *= np.concatenate([[1.0], shades]).astype(np.float32)[np.asarray(labels)]
    image = _white_noise(rng, (size, size, 3), _uniform(rng, sand.grain))
    image += shade[..., None]
    image *= colour
    return image


def _shadow(alpha: Image.Image, offset: tuple[float, float], softness: float) -> np.ndarray:
    """The soft shadow (0..1) of the fragment whose coverage is ``alpha``, moved by ``offset``."""
    small = alpha.reduce(_SHADOW_DOWNSCALE)
    ratio = small.size[0] / alpha.size[0]
    # PIL's affine maps output to input pixels, so a move by +offset reads from -offset.
    move = (1, 0, -offset[0] * ratio, 0, 1, -offset[1] * ratio)
    shadow = (
        small.transform(small.size, Image.AFFINE, move, Image.BILINEAR)
        .filter(ImageFilter.GaussianBlur(max(0.5, softness * ratio)))
        .resize(alpha.size, Image.BILINEAR)
    )
    return np.asarray(shadow, dtype=np.float32) * (1 / 255)


def _light(
    rng: np.random.Generator,
    view: _ViewRanges,
    fragment: _Fragment,
    sand: np.ndarray,
    photo: Image.Image,
    centre: tuple[float, float],
    radius: float,
) -> np.ndarray:
    """Lights the scene from one side: shadow, shading, highlight, exposure (0..255 floats)."""
    size = sand.shape[0]
    azimuth = _uniform(rng, (0, 2 * math.pi))
    lx, ly = math.cos(azimuth), math.sin(azimuth)
    exposure = 255 * _uniform(rng, view.brightness)
    slope = _uniform(rng, view.illumination_gradient) / size
    cast = _uniform(rng, view.white_balance) * (1 if rng.random() < 0.5 else -1)
    white_balance = np.array([1 + cast, 1, 1 - cast], dtype=np.float32)
    x, y = _centred_grid(size)
    light = exposure + (exposure * slope) * (x * lx + y * ly)
    # Thick fragments cast a longer shadow, away from the light.
    alpha = photo.getchannel("A")
    length = fragment.thickness * _uniform(rng, view.shadow_length) * radius
    shadow = _shadow(alpha, (-lx * length, -ly * length), _SHADOW_SOFTNESS * radius)
    shadow *= -_uniform(rng, view.shadow_strength)
    shadow += 1
    scene = sand * (light * shadow)[..., None]
    scene *= white_balance
    shading = _uniform(rng, view.shading) * fragment.thickness
    sigma = _uniform(rng, view.highlight_size) * radius * (_HIGHLIGHT_TIGHTENING - fragment.gloss)
    bbox = alpha.getbbox()
    if bbox is None:  # the fragment left the photo
        return scene
    # Only the fragment's bounding box needs the surface model.
    left, top, right, bottom = bbox
    box = np.s_[top:bottom, left:right]
    pixels = np.asarray(photo.crop(bbox), dtype=np.float32) * (1 / 255)
    colour, cover = pixels[..., :3], pixels[..., 3:]
    bx, by = x[box] + (size / 2 - centre[0]), y[box] + (size / 2 - centre[1])
    # A rounded fragment is brighter on the side facing the light.
    towards = np.clip((bx * lx + by * ly) * (1 / radius), -1, 1)
    surface = colour * (1 + shading * towards)[..., None]
    # Gloss: a white highlight off-centre towards the light, tighter when glossier.
    hx, hy = bx - _HIGHLIGHT_OFFSET * radius * lx, by - _HIGHLIGHT_OFFSET * radius * ly
    highlight = fragment.gloss * np.exp((hx * hx + hy * hy) * (-0.5 / sigma**2))
    surface += (1 - surface) * highlight[..., None]
    surface *= light[box][..., None] * white_balance
    # A translucent film tints the sand under it rather than hiding it.
    opacity = cover * (1 - fragment.translucency)
    under = scene[box] * (1 - cover + colour * cover)
    scene[box] = under + (surface - under) * opacity
    return scene


def _render(config: _Config, fragment: _Fragment, sample: int, angle: int) -> Image.Image:
    """Photographs ``fragment`` (sample ``sample``) from view ``angle`` of that sample."""
    rng = _rng(config, _STREAM_VIEW, sample, angle)
    view, size = config.view, config.image_size
    shift, direction = _uniform(rng, view.position_jitter), _uniform(rng, (0, 2 * np.pi))
    centre = (
        size * (0.5 + shift * math.cos(direction)),
        size * (0.5 + shift * math.sin(direction)),
    )
    radius = 0.5 * size * fragment.size * _uniform(rng, view.scale)
    homography = _homography(rng, view, fragment.rgba.size[0], centre, radius)
    photo = _warp(fragment, homography, size)
    sand = _sand(rng, config.sand, size)
    scene = _light(rng, view, fragment, sand, photo, centre, radius)
    # +0.5 rounds to the nearest level when the cast to uint8 truncates.
    scene += _white_noise(rng, scene.shape, 255 * _uniform(rng, view.noise), mean=0.5)
    image = Image.fromarray(np.clip(scene, 0, 255, out=scene).astype(np.uint8), mode="RGB")
    blur = _uniform(rng, view.blur)
    # A fractional box blur is a cheap stand-in for slight defocus.
    return image.filter(ImageFilter.BoxBlur(blur)) if blur > 0 else image


class _Renderer:
    """Renders the photos of one config, drawing a sample's intrinsics once for its angles.

    Still a pure function of ``(sample, angle)``: remembering the last fragment only saves
    time when the photos of a sample are rendered in a row, as a ``PartitionedDataset``
    saving its sorted partition ids does.
    """

    def __init__(self, config: _Config) -> None:
        self._config = config
        self._last: tuple[int, _Fragment] | None = None

    def __call__(self, sample: int, angle: int) -> Image.Image:
        last = self._last
        if last is None or last[0] != sample:
            last = (sample, _draw_fragment(self._config, sample))
            self._last = last
        return _render(self._config, last[1], sample, angle)


# ----------------------------------------------------------------------------------- node


def generate_demo_fragments(params: dict[str, Any]) -> dict[str, Callable[[], Image.Image]]:
    """Lays out the demo dataset of fragment photos as lazily rendered partitions.

    Args:
        params: ``params:demo_data``: counts, image size, seed, class names, the share of
            ambiguous samples, each class's appearance and the ranges of view and sand.

    Returns:
        ``{"<class>/s<sample:04d>_a<angle:02d>": render}``, where ``render()`` returns that
        RGB photo, so that a ``PartitionedDataset`` renders and saves them one at a time.

    Raises:
        ValueError: When the parameters are missing, unknown or out of range.
    """
    config = _parse_config(params)
    renderer = _Renderer(config)
    partitions: dict[str, Callable[[], Image.Image]] = {}
    n_ambiguous = 0
    for sample in range(config.n_samples):
        label = _label(config, sample)
        n_ambiguous += _is_ambiguous(config, sample)
        for angle in range(config.n_angles):
            partitions[f"{label}/s{sample:04d}_a{angle:02d}"] = functools.partial(
                renderer, sample, angle
            )
    logger.info(
        "Laid out %d demo photos: %d samples x %d angles at %d px, %d samples ambiguous.",
        len(partitions),
        config.n_samples,
        config.n_angles,
        config.image_size,
        n_ambiguous,
    )
    return partitions
