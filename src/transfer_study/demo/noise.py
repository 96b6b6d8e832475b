"""Random draws and noise fields of the demo-photo renderer, from a given generator."""

from __future__ import annotations

import colorsys
import functools
import math

import numpy as np

from transfer_study.config.demo import Interval

_UNIFORM_TO_UNIT_STD = math.sqrt(12.0)
# Gaussian interpolation averages neighbouring cells; this gain restores a spread of ~0.8 sd.
_SMOOTH_NOISE_GAIN = 1.6
_SMOOTH_NOISE_WIDTH = 0.6  # interpolation kernel sd, in cells


def uniform(rng: np.random.Generator, interval: Interval) -> float:
    # Scaling rng.random() is 4x faster than rng.uniform() for one number.
    return interval[0] + (interval[1] - interval[0]) * rng.random()


def hsv_colour(rng: np.random.Generator, hue: Interval, sat: Interval, val: Interval) -> np.ndarray:
    """An RGB colour (float32, 0..1) drawn uniformly in an HSV box."""
    h, s, v = uniform(rng, hue) / 360.0 % 1.0, uniform(rng, sat), uniform(rng, val)
    return np.asarray(colorsys.hsv_to_rgb(h, s, v), dtype=np.float32)


@functools.lru_cache(maxsize=8)
def centred_grid(size: int) -> tuple[np.ndarray, np.ndarray]:
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


def smooth_noise(rng: np.random.Generator, size: int, cells: int) -> np.ndarray:
    """Zero-mean noise (sd ~0.8) that varies smoothly over ``size / cells`` pixels."""
    spread = _upsampling(size, cells)
    coarse = rng.standard_normal((cells, cells), dtype=np.float32) * _SMOOTH_NOISE_GAIN
    return spread @ coarse @ spread.T  # Gaussian interpolation as two small matmuls


def white_noise(
    rng: np.random.Generator, shape: tuple[int, ...], std: float, mean: float = 0.0
) -> np.ndarray:
    """Per-pixel uniform noise of standard deviation ``std``, from raw random bytes."""
    step = std * _UNIFORM_TO_UNIT_STD / 256  # 256 even levels span sqrt(12) sd
    levels = np.frombuffer(rng.bytes(math.prod(shape)), dtype=np.uint8).reshape(shape)
    noise = levels.astype(np.float32)
    noise *= step
    noise += mean - 127.5 * step
    return noise
