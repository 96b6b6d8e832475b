"""A factory of awkward image files, valid and broken, for decoding and ingestion tests.

Every file is tiny (at most 64 px a side) so that tests stay fast. ``write_image`` writes
one flat-coloured image, optionally with a differently coloured square marker in the
top-left corner so that rotations and transparency can be checked pixel by pixel.
``write_awkward_files`` writes one file per awkward case and says what decoding each
should give; ``AWKWARD_CONVERSIONS`` says which changes decoding notes for the valid ones.
"""

from __future__ import annotations

import io
import struct
import zlib
from collections.abc import Callable
from pathlib import Path

import numpy as np
from PIL import ExifTags, Image, ImageDraw, features

DEFAULT_SIZE = (48, 40)
# Non-square, so that EXIF orientation 6 visibly swaps width and height.
EXIF_STORED_SIZE = (48, 32)
EXIF_ROTATE_90_CW = 6
MARKER_SIZE = 8
JPEG_QUALITY = 95
DEFAULT_RGB = (200, 120, 40)
RED = (255, 0, 0)
BLUE = (0, 0, 255)
OPAQUE = 255
TRANSPARENT = 0
MAX_UINT16 = 2**16 - 1
MID_UINT16 = 2**15
# CMYK red: no cyan, full magenta and yellow, no black.
CMYK_RED = (0, 255, 255, 0)
NOISE_SEED = 0
SCRAMBLE_SEED = 1
# A "could not be found" card as photo sets collected from the web ship: dark text on a
# flat grey that sits on a 5-bit colour-bin edge (128), with sensor-like noise and JPEG.
PLACEHOLDER_SIZE = 128
PLACEHOLDER_GREY = 128
PLACEHOLDER_TEXT = "WE'RE SORRY,\nTHIS IMAGE COULD\nNOT BE FOUND."
PLACEHOLDER_NOISE_SIGMA = 3.0
PLACEHOLDER_JPEG_QUALITY = 60

# JPEG markers used to find where the entropy-coded body starts and ends.
JPEG_START_OF_SCAN = b"\xff\xda"
JPEG_END_OF_IMAGE = b"\xff\xd9"
JPEG_MARKER_LENGTH_BYTES = 2

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
PNG_BIT_DEPTH_16 = 16
PNG_COLOUR_TYPE_RGB = 2
PNG_NO_FILTER = b"\x00"
# Signature (8) + IHDR chunk (4 length + 4 type + 13 data + 4 CRC).
PNG_HEADER_BYTES = 33
GARBAGE_BYTES = 200

Color = float | tuple[int, ...] | tuple[float, ...]


def write_image(
    path: Path,
    *,
    mode: str = "RGB",
    size: tuple[int, int] = DEFAULT_SIZE,
    fmt: str | None = None,
    color: Color | None = None,
    exif_orientation: int | None = None,
    bits16: bool = False,
    marker_color: Color | None = None,
) -> Path:
    """Writes a flat-coloured image, optionally with a marker square in the top-left corner.

    Args:
        path: Where to write; parent folders are created. The suffix picks the format
            when ``fmt`` is None.
        mode: Pillow mode to write. ``"P"`` takes RGB or RGBA colours and writes a
            two-entry palette whose alpha (if any) becomes PNG transparency.
        size: ``(width, height)``.
        fmt: Pillow format name, e.g. ``"PNG"``; None infers it from the suffix.
        color: Fill colour in ``mode``'s units (16-bit units when ``bits16``); None uses
            an orange converted to ``mode``.
        exif_orientation: EXIF Orientation tag to store, e.g. 6 for "rotate 90° CW".
        bits16: Write 16 bits per sample, as a PNG; ``mode`` must be ``"L"`` or ``"RGB"``.
        marker_color: Colour of a ``MARKER_SIZE`` square at the top-left corner.

    Returns:
        ``path``.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    save_args: dict = {"format": fmt}
    if exif_orientation is not None:
        exif = Image.Exif()
        exif[ExifTags.Base.Orientation] = exif_orientation
        save_args["exif"] = exif
    if bits16 and mode == "RGB":
        # Pillow cannot write 48-bit RGB PNGs, so the chunks are assembled here.
        if exif_orientation is not None:
            raise ValueError("EXIF is not supported for hand-written 16-bit RGB PNGs")
        path.write_bytes(_png16_rgb_bytes(_pixels(size, color, marker_color, MID_UINT16)))
        return path
    if bits16:
        if mode != "L":
            raise ValueError(f"bits16 supports modes 'L' and 'RGB', not {mode!r}")
        image = Image.new("I;16", size, MID_UINT16 if color is None else color)
    elif mode == "P":
        image, transparency = _palette_image(size, color or DEFAULT_RGB, marker_color)
        if transparency is not None:
            save_args["transparency"] = transparency
    elif color is None:
        image = Image.new("RGB", size, DEFAULT_RGB).convert(mode)
    else:
        image = Image.new(mode, size, color)
    if marker_color is not None and mode != "P":
        image.paste(marker_color, _marker_box(size))
    if (fmt or path.suffix.lstrip(".")).upper() in {"JPEG", "JPG"}:
        save_args["quality"] = JPEG_QUALITY
    image.save(path, **save_args)
    return path


def write_awkward_files(folder: Path) -> dict[str, str | None]:
    """Writes one file per awkward case into ``folder`` (flat).

    Args:
        folder: Destination folder; created if missing.

    Returns:
        ``{file_name: expected}`` where ``expected`` is a substring of the
        ``ImageDecodeError`` reason, or None for a valid file that must decode to RGB.
    """
    folder.mkdir(parents=True, exist_ok=True)
    for name, (write, _) in _CASES.items():
        write(folder / name)
    return dict(AWKWARD_EXPECTATIONS)


def write_placeholder(path: Path, seed: int = NOISE_SEED) -> Path:
    """Writes a placeholder card: text on flat grey, noisy and JPEG-compressed.

    About 92 % of its pixels are the grey (as measured by ``photos.suspicious``), like
    the ants/bees set's ``train_imageNotFound.gif`` (92 %); no exact colour reaches 90 %.
    """
    card = Image.new("RGB", (PLACEHOLDER_SIZE, PLACEHOLDER_SIZE), (PLACEHOLDER_GREY,) * 3)
    ImageDraw.Draw(card).multiline_text((8, 30), PLACEHOLDER_TEXT, fill=(40, 40, 40))
    noise = np.random.default_rng(seed).normal(0, PLACEHOLDER_NOISE_SIGMA, (*card.size, 3))
    pixels = np.clip(np.asarray(card, dtype=float) + noise, 0, 255).astype(np.uint8)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(pixels).save(path, format="JPEG", quality=PLACEHOLDER_JPEG_QUALITY)
    return path


def noise_jpeg_bytes(size: tuple[int, int] = DEFAULT_SIZE, seed: int = NOISE_SEED) -> bytes:
    """Returns a real JPEG of random noise, so its compressed body is substantial."""
    width, height = size
    pixels = np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="JPEG", quality=JPEG_QUALITY)
    return buffer.getvalue()


def _marker_box(size: tuple[int, int]) -> tuple[int, int, int, int]:
    return (0, 0, min(MARKER_SIZE, size[0]), min(MARKER_SIZE, size[1]))


def _pixels(
    size: tuple[int, int], color: Color | None, marker_color: Color | None, default: int
) -> np.ndarray:
    """An ``(height, width, 3)`` array of ``color`` with the marker square painted."""
    width, height = size
    pixels = np.empty((height, width, 3), dtype=np.uint16)
    pixels[...] = (default,) * 3 if color is None else color
    if marker_color is not None:
        left, top, right, bottom = _marker_box(size)
        pixels[top:bottom, left:right] = marker_color
    return pixels


def _png_chunk(kind: bytes, payload: bytes) -> bytes:
    crc = zlib.crc32(kind + payload)
    return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", crc)


def _png16_rgb_bytes(pixels: np.ndarray) -> bytes:
    """Encodes ``(height, width, 3)`` 16-bit samples as a 48-bit RGB PNG."""
    height, width, _ = pixels.shape
    header = struct.pack(">IIBBBBB", width, height, PNG_BIT_DEPTH_16, PNG_COLOUR_TYPE_RGB, 0, 0, 0)
    rows = b"".join(PNG_NO_FILTER + row.astype(">u2").tobytes() for row in pixels)
    return (
        PNG_SIGNATURE
        + _png_chunk(b"IHDR", header)
        + _png_chunk(b"IDAT", zlib.compress(rows))
        + _png_chunk(b"IEND", b"")
    )


def _palette_image(
    size: tuple[int, int], color: Color, marker_color: Color | None
) -> tuple[Image.Image, bytes | None]:
    """A two-entry palette image (0 = fill, 1 = marker) and its per-entry alpha, if any."""
    entries = [tuple(color), tuple(marker_color or color)]
    image = Image.new("P", size, 0)
    image.putpalette([channel for entry in entries for channel in entry[:3]])
    if marker_color is not None:
        image.paste(1, _marker_box(size))
    alphas = [entry[3] if len(entry) > len(RED) else OPAQUE for entry in entries]
    return image, (bytes(alphas) if min(alphas) < OPAQUE else None)


def _write_truncated_jpeg(path: Path) -> None:
    jpeg = noise_jpeg_bytes()
    path.write_bytes(jpeg[: len(jpeg) // 2])


def _write_scrambled_jpeg(path: Path) -> None:
    """Keeps every header segment intact and shuffles the entropy-coded body bytes."""
    jpeg = noise_jpeg_bytes()
    scan = jpeg.index(JPEG_START_OF_SCAN)
    header_length = int.from_bytes(jpeg[scan + 2 : scan + 2 + JPEG_MARKER_LENGTH_BYTES], "big")
    body_start = scan + JPEG_MARKER_LENGTH_BYTES + header_length
    body = np.frombuffer(jpeg[body_start : -len(JPEG_END_OF_IMAGE)], dtype=np.uint8)
    shuffled = np.random.default_rng(SCRAMBLE_SEED).permutation(body).tobytes()
    path.write_bytes(jpeg[:body_start] + shuffled + JPEG_END_OF_IMAGE)


def _garbage(length: int) -> bytes:
    return np.random.default_rng(NOISE_SEED).integers(0, 256, length, dtype=np.uint8).tobytes()


def _write_corrupt_png(path: Path) -> None:
    """A valid signature and IHDR, then an IDAT chunk (correct CRC) of garbage."""
    valid = write_image(path)
    header = valid.read_bytes()[:PNG_HEADER_BYTES]
    path.write_bytes(
        header + _png_chunk(b"IDAT", _garbage(GARBAGE_BYTES)) + _png_chunk(b"IEND", b"")
    )


def _write_png_signature_then_garbage(path: Path) -> None:
    path.write_bytes(PNG_SIGNATURE + _garbage(GARBAGE_BYTES))


def _write_fake_heic(path: Path) -> None:
    # The start of an iPhone photo: an ISO-BMFF "ftyp" box with the "heic" brand.
    path.write_bytes(struct.pack(">I", 24) + b"ftypheic" + b"\x00" * 12)


_CASES: dict[str, tuple[Callable[[Path], object], str | None]] = {
    "good.jpg": (lambda p: write_image(p, marker_color=BLUE), None),
    "good.png": (lambda p: write_image(p, marker_color=BLUE), None),
    "grayscale.png": (lambda p: write_image(p, mode="L", color=90, marker_color=200), None),
    "rgba_transparent.png": (
        lambda p: write_image(
            p, mode="RGBA", color=(*RED, TRANSPARENT), marker_color=(*BLUE, OPAQUE)
        ),
        None,
    ),
    "palette_transparent.png": (
        lambda p: write_image(p, mode="P", color=(*RED, TRANSPARENT), marker_color=BLUE),
        None,
    ),
    "gray16.png": (
        lambda p: write_image(p, mode="L", bits16=True, color=MID_UINT16, marker_color=MAX_UINT16),
        None,
    ),
    "rgb16.png": (
        lambda p: write_image(
            p, bits16=True, color=(MAX_UINT16, MID_UINT16, 0), marker_color=(0, 0, MAX_UINT16)
        ),
        None,
    ),
    "cmyk.jpg": (lambda p: write_image(p, mode="CMYK", color=CMYK_RED), None),
    "exif_rotated.jpg": (
        lambda p: write_image(
            p,
            size=EXIF_STORED_SIZE,
            color=BLUE,
            marker_color=RED,
            exif_orientation=EXIF_ROTATE_90_CW,
        ),
        None,
    ),
    "tiny_1x1.png": (lambda p: write_image(p, size=(1, 1)), None),
    "empty.jpg": (lambda p: p.write_bytes(b""), "empty file"),
    "text_renamed.jpg": (lambda p: p.write_text("this is not a photo\n"), "not an image"),
    "notes.txt": (lambda p: p.write_text("shot list for saturday\n"), "not an image"),
    "truncated.jpg": (_write_truncated_jpeg, "truncated"),
    "corrupt.png": (_write_corrupt_png, "corrupt image"),
    "png_signature_then_garbage.png": (_write_png_signature_then_garbage, "corrupt image"),
    "scrambled.jpg": (_write_scrambled_jpeg, "corrupt image"),
    "iphone_photo.heic": (_write_fake_heic, "unsupported format"),
}
if features.check("webp"):
    _CASES["good.webp"] = (lambda p: write_image(p, marker_color=BLUE), None)

AWKWARD_EXPECTATIONS: dict[str, str | None] = {
    name: expected for name, (_, expected) in _CASES.items()
}

# The notes decoding gives each valid file that needed converting, in order; a valid
# file not listed here decodes as it is (plain RGB).
AWKWARD_CONVERSIONS: dict[str, tuple[str, ...]] = {
    "grayscale.png": ("grayscale expanded to RGB",),
    "rgba_transparent.png": ("RGBA composited on white",),
    "palette_transparent.png": ("palette converted to RGB", "transparency composited on white"),
    "gray16.png": ("16-bit scaled to 8-bit", "grayscale expanded to RGB"),
    "rgb16.png": ("16-bit scaled to 8-bit",),
    "cmyk.jpg": ("CMYK converted to RGB",),
    "exif_rotated.jpg": (f"EXIF orientation {EXIF_ROTATE_90_CW} applied",),
}
