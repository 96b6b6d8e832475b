"""Tests for decoding untrusted photo files into RGB and skipping system files."""

from __future__ import annotations

import dataclasses
import io
import struct
from pathlib import Path

import numpy as np
import pytest
from PIL import ExifTags, Image, ImageFile

from tests.helpers.image_files import (
    AWKWARD_EXPECTATIONS,
    BLUE,
    CMYK_RED,
    DEFAULT_SIZE,
    EXIF_STORED_SIZE,
    MARKER_SIZE,
    MAX_UINT16,
    MID_UINT16,
    RED,
    noise_jpeg_bytes,
    write_awkward_files,
    write_image,
)
from transfer_study import images
from transfer_study.images import (
    DecodedImage,
    ImageDecodeError,
    decode_rgb,
    is_hidden_or_system_file,
)

VALID_CASES = sorted(name for name, reason in AWKWARD_EXPECTATIONS.items() if reason is None)
BAD_CASES = sorted((name, reason) for name, reason in AWKWARD_EXPECTATIONS.items() if reason)
EXPECTED_SIZES = {
    "exif_rotated.jpg": (EXIF_STORED_SIZE[1], EXIF_STORED_SIZE[0]),
    "tiny_1x1.png": (1, 1),
}
WHITE = (255, 255, 255)
# JPEG is lossy: flat colours come back within a few levels.
JPEG_TOLERANCE = 6
# A pixel well inside the top-left marker square, away from JPEG block edges.
INSIDE_MARKER = MARKER_SIZE // 2
LARGE_JPEG_SIZE = (512, 400)
DRAFT_SIZE = 100


@pytest.fixture
def awkward(tmp_path: Path) -> Path:
    """A folder holding every awkward case from ``tests.helpers.image_files``."""
    folder = tmp_path / "awkward"
    assert write_awkward_files(folder) == AWKWARD_EXPECTATIONS
    return folder


def decode_file(path: Path, **kwargs) -> DecodedImage:
    return decode_rgb(path.read_bytes(), **kwargs)


def assert_close(actual: tuple[int, ...], expected: tuple[int, ...], tolerance: int = 0) -> None:
    assert np.abs(np.subtract(actual, expected)).max() <= tolerance, (actual, expected)


def far_corner(image: Image.Image) -> tuple[int, int]:
    return image.width - 1, image.height - 1


@pytest.mark.parametrize("name", VALID_CASES)
def test_valid_awkward_file_decodes_to_fully_loaded_rgb_of_expected_size(
    awkward: Path, name: str
) -> None:
    decoded = decode_file(awkward / name)

    assert decoded.image.mode == "RGB"
    assert decoded.image.size == EXPECTED_SIZES.get(name, DEFAULT_SIZE)
    pixels = np.asarray(decoded.image)
    assert pixels.dtype == np.uint8
    assert pixels.shape == (decoded.image.height, decoded.image.width, 3)


@pytest.mark.parametrize(("name", "reason"), BAD_CASES)
def test_bad_awkward_file_raises_decode_error_with_reason(
    awkward: Path, name: str, reason: str
) -> None:
    with pytest.raises(ImageDecodeError, match=reason):
        decode_file(awkward / name)


def test_decode_error_is_a_value_error_with_a_one_line_reason(awkward: Path) -> None:
    with pytest.raises(ValueError) as caught:
        decode_file(awkward / "scrambled.jpg")

    assert isinstance(caught.value, ImageDecodeError)
    assert "\n" not in str(caught.value)
    assert len(str(caught.value)) <= images.MAX_REASON_CHARS


def test_plain_rgb_files_report_format_mode_and_no_conversions(awkward: Path) -> None:
    jpeg = decode_file(awkward / "good.jpg")
    png = decode_file(awkward / "good.png")

    assert (jpeg.source_format, jpeg.source_mode, jpeg.conversions) == ("JPEG", "RGB", ())
    assert (png.source_format, png.source_mode, png.conversions) == ("PNG", "RGB", ())
    assert_close(png.image.getpixel((0, 0)), BLUE)


def test_decoded_image_is_frozen_and_usable_after_decoding(awkward: Path) -> None:
    decoded = decode_file(awkward / "good.png")

    with pytest.raises(dataclasses.FrozenInstanceError):
        decoded.source_mode = "L"  # type: ignore[misc]
    assert decoded.image.resize((4, 4)).size == (4, 4)


def test_exif_orientation_6_swaps_size_and_moves_marked_corner_to_top_right(
    awkward: Path,
) -> None:
    decoded = decode_file(awkward / "exif_rotated.jpg")
    image = decoded.image

    assert decoded.conversions == ("EXIF orientation 6 applied",)
    assert image.size == (EXIF_STORED_SIZE[1], EXIF_STORED_SIZE[0])
    # Orientation 6 means "rotate 90° clockwise to display": stored top-left -> top-right.
    top_right = (image.width - 1 - INSIDE_MARKER, INSIDE_MARKER)
    assert_close(image.getpixel(top_right), RED, JPEG_TOLERANCE)
    assert_close(image.getpixel((INSIDE_MARKER, INSIDE_MARKER)), BLUE, JPEG_TOLERANCE)
    # The tag is gone, so nothing downstream rotates the image a second time.
    assert image.getexif().get(ExifTags.Base.Orientation) in (None, 1)


def test_image_without_orientation_tag_is_not_transposed(tmp_path: Path) -> None:
    path = write_image(tmp_path / "upright.jpg", size=EXIF_STORED_SIZE, marker_color=RED)

    decoded = decode_file(path)

    assert decoded.image.size == EXIF_STORED_SIZE
    assert decoded.conversions == ()


def test_fully_transparent_red_becomes_white_and_opaque_marker_is_kept(awkward: Path) -> None:
    decoded = decode_file(awkward / "rgba_transparent.png")

    assert decoded.source_mode == "RGBA"
    assert decoded.conversions == ("RGBA composited on white",)
    assert decoded.image.getpixel(far_corner(decoded.image)) == WHITE
    assert decoded.image.getpixel((0, 0)) == BLUE


def test_half_transparent_pixel_is_blended_with_white(tmp_path: Path) -> None:
    path = write_image(tmp_path / "half.png", mode="RGBA", color=(0, 0, 0, 128))

    pixel = decode_file(path).image.getpixel((0, 0))

    assert_close(pixel, (127, 127, 127), tolerance=1)


def test_opaque_alpha_channel_is_dropped_without_changing_colours(tmp_path: Path) -> None:
    path = write_image(tmp_path / "opaque.png", mode="RGBA", color=(*RED, 255))

    decoded = decode_file(path)

    assert decoded.conversions == ("opaque alpha channel dropped",)
    assert decoded.image.getpixel((0, 0)) == RED


def test_palette_with_transparency_is_composited_on_white(awkward: Path) -> None:
    decoded = decode_file(awkward / "palette_transparent.png")

    assert decoded.source_mode == "P"
    assert decoded.conversions == ("palette converted to RGB", "transparency composited on white")
    assert decoded.image.getpixel(far_corner(decoded.image)) == WHITE
    assert decoded.image.getpixel((0, 0)) == BLUE


def test_palette_without_transparency_is_converted_to_rgb(tmp_path: Path) -> None:
    path = write_image(tmp_path / "palette.png", mode="P", color=RED, marker_color=BLUE)

    decoded = decode_file(path)

    assert decoded.conversions == ("palette converted to RGB",)
    assert decoded.image.getpixel(far_corner(decoded.image)) == RED


def test_grayscale_is_expanded_to_three_equal_channels(awkward: Path) -> None:
    decoded = decode_file(awkward / "grayscale.png")

    assert decoded.source_mode == "L"
    assert decoded.conversions == ("grayscale expanded to RGB",)
    assert decoded.image.getpixel((0, 0)) == (200, 200, 200)
    assert decoded.image.getpixel(far_corner(decoded.image)) == (90, 90, 90)


def test_16bit_grayscale_is_scaled_by_bit_depth_not_clipped(awkward: Path) -> None:
    decoded = decode_file(awkward / "gray16.png")

    assert decoded.source_mode == "I;16"
    assert decoded.conversions == ("16-bit scaled to 8-bit", "grayscale expanded to RGB")
    assert decoded.image.getpixel((0, 0)) == WHITE  # 65535 -> 255
    assert decoded.image.getpixel(far_corner(decoded.image)) == (128, 128, 128)  # 32768


def test_16bit_rgb_png_is_reduced_to_8bit_and_noted(awkward: Path) -> None:
    decoded = decode_file(awkward / "rgb16.png")

    # Pillow 13 opens 48-bit PNGs as "RGB", keeping each sample's high byte.
    assert decoded.source_mode == "RGB"
    assert decoded.conversions == ("16-bit scaled to 8-bit",)
    assert decoded.image.getpixel((0, 0)) == BLUE
    assert decoded.image.getpixel(far_corner(decoded.image)) == (255, 128, 0)


def test_32bit_integer_image_holding_16bit_values_is_scaled_by_16_bits(tmp_path: Path) -> None:
    path = write_image(tmp_path / "int32.tif", mode="I", color=MID_UINT16, marker_color=MAX_UINT16)

    decoded = decode_file(path)

    assert decoded.source_mode == "I"
    assert decoded.conversions == ("16-bit scaled to 8-bit", "grayscale expanded to RGB")
    assert decoded.image.getpixel((0, 0)) == WHITE
    assert decoded.image.getpixel(far_corner(decoded.image)) == (128, 128, 128)


def test_32bit_integer_image_beyond_16bit_is_scaled_by_31_bits(tmp_path: Path) -> None:
    path = write_image(tmp_path / "int32.tif", mode="I", color=2**30, marker_color=2**31 - 1)

    decoded = decode_file(path)

    assert decoded.conversions[0] == "32-bit scaled to 8-bit"
    assert decoded.image.getpixel((0, 0)) == WHITE
    assert decoded.image.getpixel(far_corner(decoded.image)) == (128, 128, 128)


def test_float_image_in_unit_range_is_scaled_to_255(tmp_path: Path) -> None:
    path = write_image(tmp_path / "float.tif", mode="F", color=0.5, marker_color=1.0)

    decoded = decode_file(path)

    assert decoded.source_mode == "F"
    assert decoded.conversions[0] == "32-bit float scaled to 8-bit"
    assert decoded.image.getpixel((0, 0)) == WHITE
    assert decoded.image.getpixel(far_corner(decoded.image)) == (128, 128, 128)


def test_float_image_outside_unit_range_is_stretched(tmp_path: Path) -> None:
    path = write_image(tmp_path / "float.tif", mode="F", color=-10.0, marker_color=30.0)

    decoded = decode_file(path)

    assert decoded.conversions[0].startswith("32-bit float stretched to 8-bit")
    assert decoded.image.getpixel((0, 0)) == WHITE
    assert decoded.image.getpixel(far_corner(decoded.image)) == (0, 0, 0)


def test_cmyk_jpeg_is_converted_to_rgb(awkward: Path) -> None:
    decoded = decode_file(awkward / "cmyk.jpg")

    assert (decoded.source_format, decoded.source_mode) == ("JPEG", "CMYK")
    assert decoded.conversions == ("CMYK converted to RGB",)
    assert_close(decoded.image.getpixel((0, 0)), RED, JPEG_TOLERANCE)


@pytest.mark.parametrize(
    ("mode", "color", "note"),
    [
        ("CMYK", CMYK_RED, "CMYK converted to RGB"),
        ("YCbCr", (76, 85, 255), "YCbCr converted to RGB"),
        ("LAB", (138, 208, 195), "LAB converted to RGB"),
    ],
)
def test_other_colour_spaces_in_tiff_are_converted_to_rgb(
    tmp_path: Path, mode: str, color: tuple[int, ...], note: str
) -> None:
    path = write_image(tmp_path / f"{mode}.tif", mode=mode, color=color)

    decoded = decode_file(path)

    assert decoded.source_mode == mode
    assert decoded.conversions == (note,)
    red, green, blue = decoded.image.getpixel((0, 0))
    assert red > 200 and green < 60 and blue < 60


def test_bilevel_and_grey_alpha_images_become_rgb_on_white(tmp_path: Path) -> None:
    bilevel = write_image(tmp_path / "bilevel.png", mode="1", color=1, marker_color=0)
    grey_alpha = write_image(tmp_path / "la.png", mode="LA", color=(0, 0), marker_color=(0, 255))

    bilevel_decoded = decode_file(bilevel)
    grey_alpha_decoded = decode_file(grey_alpha)

    assert bilevel_decoded.conversions == ("grayscale expanded to RGB",)
    assert bilevel_decoded.image.getpixel((0, 0)) == (0, 0, 0)
    assert bilevel_decoded.image.getpixel(far_corner(bilevel_decoded.image)) == WHITE
    assert grey_alpha_decoded.conversions == ("grayscale expanded to RGB", "LA composited on white")
    assert grey_alpha_decoded.image.getpixel((0, 0)) == (0, 0, 0)
    assert grey_alpha_decoded.image.getpixel(far_corner(grey_alpha_decoded.image)) == WHITE


def test_hsv_image_is_converted_to_rgb(monkeypatch: pytest.MonkeyPatch) -> None:
    # No file format stores HSV, so Pillow's opener is made to return an HSV image.
    hsv = Image.new("HSV", DEFAULT_SIZE, (0, 255, 255))
    monkeypatch.setattr(images.Image, "open", lambda _: hsv)

    decoded = decode_rgb(b"stands in for a file")

    assert decoded.conversions == ("HSV converted to RGB",)
    assert decoded.image.getpixel((0, 0)) == RED


@pytest.mark.parametrize("fmt", ["JPEG", "PNG"])
def test_truncated_file_raises_even_if_load_truncated_images_was_enabled_elsewhere(
    monkeypatch: pytest.MonkeyPatch, fmt: str
) -> None:
    buffer = io.BytesIO()
    Image.open(io.BytesIO(noise_jpeg_bytes())).save(buffer, format=fmt)
    truncated = buffer.getvalue()[: len(buffer.getvalue()) // 2]
    monkeypatch.setattr(ImageFile, "LOAD_TRUNCATED_IMAGES", True)

    with pytest.raises(ImageDecodeError, match="truncated image data"):
        decode_rgb(truncated)

    assert ImageFile.LOAD_TRUNCATED_IMAGES is True


def test_load_truncated_images_flag_is_restored_after_a_successful_decode(
    awkward: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(ImageFile, "LOAD_TRUNCATED_IMAGES", True)

    decode_file(awkward / "good.jpg")

    assert ImageFile.LOAD_TRUNCATED_IMAGES is True


def test_draft_size_decodes_large_jpeg_smaller_but_not_below_draft_size(tmp_path: Path) -> None:
    path = tmp_path / "large.jpg"
    path.write_bytes(noise_jpeg_bytes(LARGE_JPEG_SIZE))

    full = decode_file(path)
    drafted = decode_file(path, draft_size=DRAFT_SIZE)

    assert full.image.size == LARGE_JPEG_SIZE
    assert drafted.image.width < LARGE_JPEG_SIZE[0]
    assert min(drafted.image.size) >= DRAFT_SIZE
    assert drafted.image.mode == "RGB"
    assert drafted.conversions == ("JPEG decoded at reduced size 128x100 (from 512x400)",)


def test_draft_size_is_ignored_for_non_jpeg_files(awkward: Path) -> None:
    decoded = decode_file(awkward / "good.png", draft_size=MARKER_SIZE)

    assert decoded.image.size == DEFAULT_SIZE
    assert decoded.conversions == ()


def test_non_positive_draft_size_is_a_caller_error_not_a_decode_error(awkward: Path) -> None:
    with pytest.raises(ValueError, match="draft_size") as caught:
        decode_file(awkward / "good.jpg", draft_size=0)

    assert not isinstance(caught.value, ImageDecodeError)


@pytest.mark.parametrize(
    "max_pixels",
    [100, 1000],  # 1920 pixels is over twice the first (Pillow's error), once the second
)
def test_decompression_bomb_raises_decode_error_naming_the_limit(
    awkward: Path, monkeypatch: pytest.MonkeyPatch, max_pixels: int
) -> None:
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", max_pixels)

    with pytest.raises(ImageDecodeError, match="image too large") as caught:
        decode_file(awkward / "good.png")

    assert "1,920 pixels" in str(caught.value)
    assert f"limit {max_pixels:,} pixels" in str(caught.value)


@pytest.mark.parametrize(
    "error",
    [struct.error("unpack requires a buffer"), KeyError("tag"), RuntimeError("unexpected")],
)
def test_any_exception_from_pillow_becomes_decode_error(
    monkeypatch: pytest.MonkeyPatch, error: Exception
) -> None:
    def raise_error(_: object) -> None:
        raise error

    monkeypatch.setattr(images.Image, "open", raise_error)

    with pytest.raises(ImageDecodeError, match="corrupt image") as caught:
        decode_rgb(b"not important")

    assert caught.value.__cause__ is error


@pytest.mark.parametrize(
    "path",
    [
        ".DS_Store",
        "cats/.DS_Store",
        "cats/._IMG_0001.jpg",
        ".ipynb_checkpoints/photo-checkpoint.jpg",
        "dogs/Thumbs.db",
        "dogs/thumbs.db",
        "desktop.ini",
        "__MACOSX/cats/IMG_0001.jpg",
        "cats\\.hidden\\photo.jpg",
        "@eaDir/IMG_0001.jpg/SYNOPHOTO_THUMB_M.jpg",
    ],
)
def test_hidden_and_system_files_are_recognised(path: str) -> None:
    assert is_hidden_or_system_file(path)


@pytest.mark.parametrize(
    "path",
    [
        "cats/IMG_0001.jpg",
        "./cats/IMG_0001.jpg",
        "../photos/dogs/dog.png",
        "dogs/my.photo.jpeg",
        "thumbs/db.jpg",
        "MACOSX/photo.jpg",
        "cats\\IMG_0002.JPG",
    ],
)
def test_ordinary_photo_paths_are_not_hidden_or_system(path: str) -> None:
    assert not is_hidden_or_system_file(path)
