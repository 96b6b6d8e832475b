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

import functools
import logging
import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from transfer_study.config.demo import Appearance, DemoConfig, SandRanges, ViewRanges

from .noise import centred_grid, hsv_colour, smooth_noise, uniform, white_noise

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


@dataclass(frozen=True)
class _Fragment:
    """Intrinsic properties of one physical sample, fixed across its angles."""

    rgba: Image.Image  # albedo and silhouette (alpha) on the square canonical canvas
    size: float
    gloss: float
    translucency: float
    thickness: float


# --------------------------------------------------------------------------- random draws


def _rng(config: DemoConfig, stream: int, *key: int) -> np.random.Generator:
    return np.random.default_rng([config.seed, stream, *key])


def _label(config: DemoConfig, sample: int) -> str:
    """The class of a sample: each consecutive pair holds one of each, in a seeded order."""
    flip = int(_rng(config, _STREAM_CLASS, sample // 2).integers(2))
    return config.classes[(sample % 2) ^ flip]


def _is_ambiguous(config: DemoConfig, sample: int) -> bool:
    """Whether a sample is drawn from the other class's distribution than its label's."""
    start = _rng(config, _STREAM_AMBIGUITY).random()
    return (start + sample * _GOLDEN_FRACTION) % 1.0 < config.ambiguous_fraction


def _look(config: DemoConfig, sample: int) -> str:
    """The class whose distribution a sample's intrinsic properties are drawn from."""
    label = _label(config, sample)
    if not _is_ambiguous(config, sample):
        return label
    return next(name for name in config.classes if name != label)


# ------------------------------------------------------------------------------ intrinsic


def _outline(rng: np.random.Generator, look: Appearance) -> np.ndarray:
    """A closed outline of unit radius: sharp corners for shards, cut corners for blobs."""
    k = int(rng.integers(look.vertices[0], look.vertices[1] + 1))
    jitter = rng.uniform(-_VERTEX_ANGLE_JITTER, _VERTEX_ANGLE_JITTER, k)
    angles = 2 * np.pi * (np.arange(k) + jitter) / k + uniform(rng, (0, 2 * np.pi))
    radii = 1.0 + uniform(rng, look.radial_jitter) * rng.uniform(-1.0, 1.0, k)
    points = np.stack([np.cos(angles) * radii, np.sin(angles) * radii], axis=1)
    cut = 0.25 * uniform(rng, look.roundness)  # Chaikin's corner cutting: 0.25 is fully round
    for _ in range(_CHAIKIN_ITERATIONS if cut > 0 else 0):
        following = np.roll(points, -1, axis=0)
        points = np.stack(
            [(1 - cut) * points + cut * following, cut * points + (1 - cut) * following], axis=1
        ).reshape(-1, 2)
    stretch = math.sqrt(uniform(rng, look.elongation))
    points = points * np.array([stretch, 1 / stretch])
    return points / np.abs(points).max()


def _texture(rng: np.random.Generator, look: Appearance, canvas: int) -> np.ndarray:
    """The albedo of the fragment: base colour modulated by grain, mottle, bands, speckles."""
    weights = np.array([palette.weight for palette in look.palettes])
    palette = look.palettes[int(rng.choice(len(weights), p=weights / weights.sum()))]
    colour = hsv_colour(rng, palette.hue, palette.saturation, palette.value)
    x, y = centred_grid(canvas)
    phi = uniform(rng, (0, np.pi))
    frequency = uniform(rng, look.band_frequency) * 2 * np.pi / canvas
    wobble = _BAND_WOBBLE * smooth_noise(rng, canvas, _BAND_WOBBLE_CELLS)
    bands = np.sin(frequency * (x * math.cos(phi) + y * math.sin(phi)) + wobble)
    shade = (
        1.0
        + uniform(rng, look.grain) * rng.standard_normal((canvas, canvas), dtype=np.float32)
        + uniform(rng, look.mottling) * smooth_noise(rng, canvas, _MOTTLING_CELLS)
        + uniform(rng, look.banding) * bands
    )
    speckles = rng.random((canvas, canvas), dtype=np.float32) < uniform(rng, look.speckle)
    speckle_shade = rng.uniform(*_SPECKLE_SHADE, (canvas, canvas)).astype(np.float32)
    shade = np.where(speckles, speckle_shade, shade)
    # Each channel mottles a little on its own, as minerals and weathering do.
    tint = 1.0 + _CHANNEL_MOTTLING * uniform(rng, look.mottling) * rng.standard_normal(3)
    albedo = colour * tint.astype(np.float32) * shade[..., None]
    return np.clip(albedo * 255.0, 0, 255).astype(np.uint8)


def _mask(outline: np.ndarray, canvas: int) -> Image.Image:
    """The silhouette of ``outline`` on the canvas, with anti-aliased edges."""
    big = canvas * _OUTLINE_SUPERSAMPLING
    radius = 0.5 * big * (1 - _CANVAS_MARGIN)
    image = Image.new("L", (big, big), 0)
    ImageDraw.Draw(image).polygon((outline * radius + big / 2).ravel().tolist(), fill=255)
    return image.reduce(_OUTLINE_SUPERSAMPLING)


def _draw_fragment(config: DemoConfig, sample: int) -> _Fragment:
    """Draws the intrinsic properties of one sample from its own random stream."""
    rng = _rng(config, _STREAM_INTRINSIC, sample)
    look = config.appearance[_look(config, sample)]
    canvas = max(_MIN_CANVAS, round(config.image_size * _CANVAS_FRACTION))
    outline = _outline(rng, look)
    rgba = Image.fromarray(_texture(rng, look, canvas), mode="RGB").convert("RGBA")
    rgba.putalpha(_mask(outline, canvas))
    return _Fragment(
        rgba=rgba,
        size=uniform(rng, look.size),
        gloss=uniform(rng, look.gloss),
        translucency=uniform(rng, look.translucency),
        thickness=uniform(rng, look.thickness),
    )


# ----------------------------------------------------------------------------------- view


def _homography(
    rng: np.random.Generator,
    view: ViewRanges,
    canvas: int,
    centre: tuple[float, float],
    radius: float,
) -> np.ndarray:
    """Canvas -> photo: rotate, tilt the camera (keystone and foreshortening), place."""
    half = canvas / 2
    unit = 1 / (half * (1 - _CANVAS_MARGIN))
    to_unit = np.array([[unit, 0, -half * unit], [0, unit, -half * unit], [0, 0, 1]])
    theta = math.radians(uniform(rng, view.rotation_deg))
    cos_t, sin_t = math.cos(theta), math.sin(theta)
    rotate = np.array([[cos_t, -sin_t, 0], [sin_t, cos_t, 0], [0, 0, 1]])
    tilt, beta = uniform(rng, view.tilt), uniform(rng, (0, 2 * np.pi))
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


def _sand(rng: np.random.Generator, sand: SandRanges, size: int) -> np.ndarray:
    """A fresh patch of sand: tinted, mottled, rippled, grainy, with tiny debris."""
    colour = hsv_colour(rng, sand.hue, sand.saturation, sand.value)
    x, y = centred_grid(size)
    phi = uniform(rng, (0, np.pi))
    wavenumber = uniform(rng, _SAND_RIPPLES_PER_SIDE) * 2 * math.pi / size
    wobble = _SAND_RIPPLE_WOBBLE * smooth_noise(rng, size, _SAND_RIPPLE_WOBBLE_CELLS)
    ripples = np.sin((x * math.cos(phi) + y * math.sin(phi)) * wavenumber + wobble)
    shade = (
        1.0
        + uniform(rng, sand.mottling) * smooth_noise(rng, size, _SAND_MOTTLING_CELLS)
        + uniform(rng, sand.ripple) * ripples
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
    image = white_noise(rng, (size, size, 3), uniform(rng, sand.grain))
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
    view: ViewRanges,
    fragment: _Fragment,
    sand: np.ndarray,
    photo: Image.Image,
    centre: tuple[float, float],
    radius: float,
) -> np.ndarray:
    """Lights the scene from one side: shadow, shading, highlight, exposure (0..255 floats)."""
    size = sand.shape[0]
    azimuth = uniform(rng, (0, 2 * math.pi))
    lx, ly = math.cos(azimuth), math.sin(azimuth)
    exposure = 255 * uniform(rng, view.brightness)
    slope = uniform(rng, view.illumination_gradient) / size
    cast = uniform(rng, view.white_balance) * (1 if rng.random() < 0.5 else -1)
    white_balance = np.array([1 + cast, 1, 1 - cast], dtype=np.float32)
    x, y = centred_grid(size)
    light = exposure + (exposure * slope) * (x * lx + y * ly)
    # Thick fragments cast a longer shadow, away from the light.
    alpha = photo.getchannel("A")
    length = fragment.thickness * uniform(rng, view.shadow_length) * radius
    shadow = _shadow(alpha, (-lx * length, -ly * length), _SHADOW_SOFTNESS * radius)
    shadow *= -uniform(rng, view.shadow_strength)
    shadow += 1
    scene = sand * (light * shadow)[..., None]
    scene *= white_balance
    shading = uniform(rng, view.shading) * fragment.thickness
    sigma = uniform(rng, view.highlight_size) * radius * (_HIGHLIGHT_TIGHTENING - fragment.gloss)
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


def _render(config: DemoConfig, fragment: _Fragment, sample: int, angle: int) -> Image.Image:
    """Photographs ``fragment`` (sample ``sample``) from view ``angle`` of that sample."""
    rng = _rng(config, _STREAM_VIEW, sample, angle)
    view, size = config.view, config.image_size
    shift, direction = uniform(rng, view.position_jitter), uniform(rng, (0, 2 * np.pi))
    centre = (
        size * (0.5 + shift * math.cos(direction)),
        size * (0.5 + shift * math.sin(direction)),
    )
    radius = 0.5 * size * fragment.size * uniform(rng, view.scale)
    homography = _homography(rng, view, fragment.rgba.size[0], centre, radius)
    photo = _warp(fragment, homography, size)
    sand = _sand(rng, config.sand, size)
    scene = _light(rng, view, fragment, sand, photo, centre, radius)
    # +0.5 rounds to the nearest level when the cast to uint8 truncates.
    scene += white_noise(rng, scene.shape, 255 * uniform(rng, view.noise), mean=0.5)
    image = Image.fromarray(np.clip(scene, 0, 255, out=scene).astype(np.uint8), mode="RGB")
    blur = uniform(rng, view.blur)
    # A fractional box blur is a cheap stand-in for slight defocus.
    return image.filter(ImageFilter.BoxBlur(blur)) if blur > 0 else image


class _Renderer:
    """Renders the photos of one config, drawing a sample's intrinsics once for its angles.

    Still a pure function of ``(sample, angle)``: remembering the last fragment only saves
    time when the photos of a sample are rendered in a row, as a ``PartitionedDataset``
    saving its sorted partition ids does.
    """

    def __init__(self, config: DemoConfig) -> None:
        self._config = config
        self._last: tuple[int, _Fragment] | None = None

    def __call__(self, sample: int, angle: int) -> Image.Image:
        last = self._last
        if last is None or last[0] != sample:
            last = (sample, _draw_fragment(self._config, sample))
            self._last = last
        return _render(self._config, last[1], sample, angle)


def render_fragments(config: DemoConfig) -> dict[str, Callable[[], Image.Image]]:
    """Lays out the demo dataset of fragment photos as lazily rendered partitions.

    Args:
        config: The validated ``demo_data`` parameters.

    Returns:
        ``{"<class>/s<sample:04d>_a<angle:02d>": render}``, where ``render()`` returns that
        RGB photo, so that the photos can be rendered and saved one at a time.
    """
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
