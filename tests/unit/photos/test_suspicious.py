"""Placeholder and degenerate photos: how "one colour" is measured, and the reasons given."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tests.helpers.image_files import write_placeholder
from tests.helpers.photos import write_photo
from transfer_study.images import decode_rgb
from transfer_study.photos.suspicious import one_colour_share, suspicion

THRESHOLDS = {"max_one_colour_share": 0.90, "min_side": 32}


def _decoded(path: Path) -> Image.Image:
    return decode_rgb(path.read_bytes()).image


def test_a_noisy_jpeg_placeholder_card_counts_as_one_colour(tmp_path: Path):
    image = _decoded(write_placeholder(tmp_path / "imageNotFound.jpg"))
    pixels = np.asarray(image).reshape(-1, 3)
    _, exact_counts = np.unique(pixels, axis=0, return_counts=True)
    assert exact_counts.max() / len(pixels) < 0.75  # noise hides it from an exact count
    assert one_colour_share(image) >= 0.90


@pytest.mark.parametrize("grey", [0, 127, 128, 255])
def test_a_blank_frame_is_all_one_colour_even_on_a_colour_bin_edge(grey: int):
    assert one_colour_share(Image.new("RGB", (300, 200), (grey,) * 3)) == 1.0


def test_a_photo_is_not_one_colour(tmp_path: Path):
    assert one_colour_share(_decoded(write_photo(tmp_path / "noise.jpg", seed=1, size=64))) < 0.2


def test_an_object_on_a_plain_background_is_not_one_colour():
    """A white-background product shot whose object fills a fifth of the frame."""
    rng = np.random.default_rng(0)
    pixels = np.full((200, 200, 3), 250, dtype=np.uint8)
    pixels[55:145, 55:145] = rng.integers(40, 200, (90, 90, 3), dtype=np.uint8)
    assert one_colour_share(Image.fromarray(pixels)) < 0.85


def test_a_small_object_on_rippled_sand_is_not_one_colour():
    """Like the demo's fragments: a low-contrast texture must not pass for a flat card
    (a tolerance of 16 levels instead of 8 put this at 0.97)."""
    rng = np.random.default_rng(0)
    y, x = np.mgrid[0:200, 0:200]
    sand = 170 + 8 * np.sin(x / 9.0 + y / 23.0) + rng.normal(0, 4, (200, 200))
    pixels = sand[..., None] * np.array([1.0, 0.93, 0.75])
    pixels[80:120, 85:115] = (60, 60, 200)  # a blue fragment, 3 % of the frame
    assert one_colour_share(Image.fromarray(pixels.clip(0, 255).astype(np.uint8))) < 0.85


def test_suspicion_gives_each_reason_with_its_parameter(tmp_path: Path):
    placeholder = _decoded(write_placeholder(tmp_path / "card.jpg"))
    reason = suspicion(placeholder, placeholder.size, **THRESHOLDS)
    assert reason is not None
    assert "one colour" in reason and "suspicious_one_colour_share = 0.90" in reason
    tiny = _decoded(write_photo(tmp_path / "tiny.jpg", seed=2, size=16))
    reason = suspicion(tiny, (16, 12), **THRESHOLDS)
    assert reason == "only 16x12 pixels (below raw_images.suspicious_min_side = 32)"
    blank = Image.new("RGB", (8, 8))
    assert suspicion(blank, blank.size, **THRESHOLDS).count("; ") == 1  # both reasons


def test_an_ordinary_photo_is_not_suspicious_and_the_thresholds_are_the_parameters(
    tmp_path: Path,
):
    photo = _decoded(write_photo(tmp_path / "photo.jpg", seed=3, size=32))
    assert suspicion(photo, photo.size, **THRESHOLDS) is None
    placeholder = _decoded(write_placeholder(tmp_path / "card.jpg"))
    assert suspicion(placeholder, placeholder.size, max_one_colour_share=1.0, min_side=0) is None
    assert suspicion(photo, photo.size, max_one_colour_share=0.9, min_side=33) is not None
