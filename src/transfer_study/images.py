"""Decoding users' photo files safely into fully loaded RGB images.

Users point the project at a folder of their own photos, so every file is untrusted:
it may be empty, not an image, truncated, corrupt, a decompression bomb, or a valid
image in an awkward mode (16-bit, CMYK, palette with transparency, EXIF-rotated).
``decode_rgb`` either returns an RGB image plus notes on what was changed, or raises
``ImageDecodeError`` whose message is a short reason fit for a report column.
"""

from __future__ import annotations

import io
import logging
import re
import struct
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np
from PIL import ExifTags, Image, ImageFile, ImageOps, UnidentifiedImageError

logger = logging.getLogger(__name__)

MAX_UINT8 = 255
MAX_UINT16 = 2**16 - 1
MAX_INT32 = 2**31 - 1
WHITE_RGBA = (MAX_UINT8, MAX_UINT8, MAX_UINT8, MAX_UINT8)

# Reasons longer than this are cut so that a report column stays readable.
MAX_REASON_CHARS = 160

# EXIF orientations 2-8 flip and/or rotate; 1 is "as stored", anything else is invalid.
TRANSPOSING_ORIENTATIONS = range(2, 9)

# Pillow opens JPEG-family files under these format names; MPO is a multi-picture JPEG.
JPEG_FORMATS = frozenset({"JPEG", "MPO"})

SIXTEEN_BIT_GRAY_MODES = frozenset({"I;16", "I;16L", "I;16B", "I;16N"})
ALPHA_MODES = frozenset({"RGBA", "RGBa", "LA", "La", "PA"})

NOTE_16BIT = "16-bit scaled to 8-bit"
NOTE_GRAYSCALE = "grayscale expanded to RGB"
NOTE_PALETTE = "palette converted to RGB"
# Notes for modes that Pillow converts to RGB directly (RGB itself needs nothing).
MODE_NOTES = {
    "1": NOTE_GRAYSCALE,
    "L": NOTE_GRAYSCALE,
    "LA": NOTE_GRAYSCALE,
    "La": NOTE_GRAYSCALE,
    "P": NOTE_PALETTE,
    "PA": NOTE_PALETTE,
    "CMYK": "CMYK converted to RGB",
    "YCbCr": "YCbCr converted to RGB",
    "LAB": "LAB converted to RGB",
    "HSV": "HSV converted to RGB",
}

REASON_EMPTY = "empty file (0 bytes)"
REASON_NOT_AN_IMAGE = "not an image (format not recognised)"
REASON_TRUNCATED = "truncated image data"

# Magic numbers of formats Pillow reads: when Pillow cannot identify a file that starts
# with one of these, the file is a damaged image rather than "not an image".
KNOWN_SIGNATURES = {
    b"\x89PNG\r\n\x1a\n": "PNG",
    b"\xff\xd8\xff": "JPEG",
    b"GIF87a": "GIF",
    b"GIF89a": "GIF",
    b"II*\x00": "TIFF",
    b"MM\x00*": "TIFF",
}
RIFF_SIGNATURE = b"RIFF"
WEBP_FOURCC = b"WEBP"
WEBP_FOURCC_OFFSET = 8
# ISO base media files ("....ftypheic") put the brand after a 4-byte box size.
FTYP_OFFSET = 4
FTYP_BOX = b"ftyp"
HEIF_BRANDS = frozenset({b"heic", b"heix", b"hevc", b"hevx", b"heim", b"heis", b"mif1", b"msf1"})
REASON_HEIF = "unsupported format (HEIC/HEIF; export the photo as JPEG)"

# Pillow's decompression-bomb message: "Image size (N pixels) exceeds limit of ...".
BOMB_PIXELS_PATTERN = re.compile(r"\((\d+) pixels\)")

# Exception types Pillow documents or is known to raise on malformed bytes.
PILLOW_DECODE_ERRORS = (
    OSError,
    SyntaxError,
    ValueError,
    struct.error,
    EOFError,
    IndexError,
    KeyError,
    TypeError,
    ZeroDivisionError,
)

# Names that are never photos: OS metadata files and thumbnail / trash folders.
SYSTEM_FILE_NAMES = frozenset(
    {
        "thumbs.db",
        "ehthumbs.db",
        "desktop.ini",
        "__macosx",
        "@eadir",
        "$recycle.bin",
        "system volume information",
    }
)
HIDDEN_PREFIX = "."
CURRENT_OR_PARENT_DIR = frozenset({".", ".."})
PATH_SEPARATORS = re.compile(r"[\\/]")

# LOAD_TRUNCATED_IMAGES is process-global. Only when someone else switched it on do
# decodes turn it off for their duration, one at a time; otherwise they run in parallel
# threads (Pillow releases the GIL while decoding).
_STRICT_DECODING_LOCK = threading.Lock()


class ImageDecodeError(ValueError):
    """A file that cannot be used as a photo; ``str(err)`` is a short human reason."""


@dataclass(frozen=True)
class DecodedImage:
    """A photo decoded to RGB, with what the file held and what was changed.

    Attributes:
        image: The fully loaded ``"RGB"`` image, EXIF orientation applied.
        source_format: Pillow's format name for the file, e.g. ``"JPEG"``.
        source_mode: Pillow's mode for the file as opened, e.g. ``"RGBA"`` or ``"I;16"``.
        conversions: Human notes on each change made, e.g. ``"RGBA composited on
            white"``; empty when the file was already plain, upright RGB.
        source_size: ``(width, height)`` stored in the file, before any draft reduction.
    """

    image: Image.Image
    source_format: str
    source_mode: str
    conversions: tuple[str, ...]
    source_size: tuple[int, int] = (0, 0)


def decode_rgb(data: bytes, *, draft_size: int | None = None) -> DecodedImage:
    """Fully decodes an image file's bytes into an upright RGB image.

    Truncated files are rejected even when ``ImageFile.LOAD_TRUNCATED_IMAGES`` was
    enabled elsewhere (the caller's value is restored), and images above Pillow's
    ``Image.MAX_IMAGE_PIXELS`` are rejected as decompression bombs.

    Args:
        data: The raw bytes of the file.
        draft_size: If given and the file is a JPEG, decode with the largest DCT reduction
            (1/2, 1/4, 1/8) that keeps both sides at least this many pixels; ignored
            for other formats.

    Returns:
        The decoded image with its source format, source mode and conversion notes.

    Raises:
        ImageDecodeError: If the bytes are not a usable image; the message says why.
        ValueError: If ``draft_size`` is not a positive integer.
    """
    if draft_size is not None and draft_size < 1:
        raise ValueError(f"draft_size must be a positive number of pixels, got {draft_size}")
    if not data:
        raise ImageDecodeError(REASON_EMPTY)
    try:
        with _strict_decoding(), Image.open(io.BytesIO(data)) as opened:
            source_format = opened.format or "unknown"
            source_mode = opened.mode
            source_size = opened.size
            _check_pixel_count(opened)
            notes = _apply_draft(opened, draft_size) if draft_size else []
            samples_were_16bit = _has_16bit_samples(opened)
            opened.load()
            # exif_transpose always returns a copy, so the result outlives ``opened``.
            upright, orientation_notes = _apply_exif_orientation(opened)
        rgb, mode_notes = _to_rgb(upright, samples_were_16bit=samples_were_16bit)
    except ImageDecodeError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise ImageDecodeError(_bomb_reason(exc)) from exc
    except UnidentifiedImageError as exc:
        raise ImageDecodeError(_unidentified_reason(data)) from exc
    except PILLOW_DECODE_ERRORS as exc:
        raise ImageDecodeError(_error_reason(exc)) from exc
    except Exception as exc:
        # Pillow's pure-Python parsers can raise other types on hostile bytes; one bad
        # user file must not stop ingestion, but log it in case it is a bug here.
        logger.warning("Unexpected %s while decoding an image", type(exc).__name__, exc_info=True)
        raise ImageDecodeError(_shorten(f"corrupt image: {type(exc).__name__}: {exc}")) from exc
    return DecodedImage(
        image=rgb,
        source_format=source_format,
        source_mode=source_mode,
        conversions=tuple(notes + orientation_notes + mode_notes),
        source_size=source_size,
    )


def is_hidden_or_system_file(relative_path: str) -> bool:
    """Tells whether a path names OS metadata rather than a photo, to skip silently.

    Args:
        relative_path: Path relative to the photo folder, with ``/`` or ``\\``
            separators.

    Returns:
        True if any component is hidden (starts with ``"."``, which covers
        ``.DS_Store``, AppleDouble ``._name.jpg`` files and ``.ipynb_checkpoints``) or
        is a known system name such as ``Thumbs.db``, ``desktop.ini`` or ``__MACOSX``.
    """
    for part in PATH_SEPARATORS.split(relative_path):
        if not part or part in CURRENT_OR_PARENT_DIR:
            continue
        if part.startswith(HIDDEN_PREFIX) or part.lower() in SYSTEM_FILE_NAMES:
            return True
    return False


@contextmanager
def _strict_decoding() -> Iterator[None]:
    """Makes truncated data raise, restoring a caller's ``LOAD_TRUNCATED_IMAGES``."""
    if not ImageFile.LOAD_TRUNCATED_IMAGES:
        yield
        return
    with _STRICT_DECODING_LOCK:
        previous = ImageFile.LOAD_TRUNCATED_IMAGES
        ImageFile.LOAD_TRUNCATED_IMAGES = False
        try:
            yield
        finally:
            ImageFile.LOAD_TRUNCATED_IMAGES = previous


def _check_pixel_count(image: Image.Image) -> None:
    """Rejects images over ``Image.MAX_IMAGE_PIXELS``.

    Pillow only warns between 1× and 2× the limit; promoting that warning to an error
    would need the process-global warnings filter, so the size is checked here.
    """
    limit = Image.MAX_IMAGE_PIXELS
    pixels = image.size[0] * image.size[1]
    if limit and pixels > limit:
        raise Image.DecompressionBombError(f"Image size ({pixels} pixels) exceeds limit")


def _apply_draft(image: Image.Image, draft_size: int) -> list[str]:
    """Asks the JPEG decoder for a reduced DCT scale; returns a note if size changed."""
    if image.format not in JPEG_FORMATS:
        return []
    original_size = image.size
    image.draft("RGB", (draft_size, draft_size))
    if image.size == original_size:
        return []
    reduced, original = _size_text(image.size), _size_text(original_size)
    return [f"JPEG decoded at reduced size {reduced} (from {original})"]


def _has_16bit_samples(image: Image.Image) -> bool:
    """Tells whether the file stores 16-bit samples, read from the decoder's raw mode.

    Pillow opens 16-bit RGB(A) and grey+alpha PNGs as 8-bit modes and keeps only the high
    byte while decoding, so the mode alone does not reveal the reduction.
    """
    # Images built in memory rather than opened from a file have no tiles.
    for tile in getattr(image, "tile", ()):
        args = tile.args
        rawmode = args[0] if isinstance(args, tuple) and args else args
        if isinstance(rawmode, str) and ";16" in rawmode:
            return True
    return False


def _apply_exif_orientation(image: Image.Image) -> tuple[Image.Image, list[str]]:
    """Returns an upright copy of the image and a note when EXIF asked for a transpose."""
    orientation = image.getexif().get(ExifTags.Base.Orientation)
    upright = ImageOps.exif_transpose(image)
    if orientation in TRANSPOSING_ORIENTATIONS:
        return upright, [f"EXIF orientation {orientation} applied"]
    return upright, []


def _to_rgb(image: Image.Image, *, samples_were_16bit: bool) -> tuple[Image.Image, list[str]]:
    """Converts any Pillow mode to RGB, noting each change made."""
    notes: list[str] = []
    if image.mode in SIXTEEN_BIT_GRAY_MODES or image.mode == "I":
        image, note = _integer_gray_to_l(image)
        notes.append(note)
    elif image.mode == "F":
        image, note = _float_gray_to_l(image)
        notes.append(note)
    elif samples_were_16bit:
        notes.append(NOTE_16BIT)

    mode = image.mode
    if mode in MODE_NOTES:
        notes.append(MODE_NOTES[mode])
    try:
        if mode in ALPHA_MODES or "transparency" in image.info:
            image, alpha_note = _flatten_alpha(image, label=mode if mode in ALPHA_MODES else None)
            notes.append(alpha_note)
            return image, notes
        if mode == "RGB":
            return image, notes
        if mode not in MODE_NOTES:
            notes.append(f"{mode} converted to RGB")
        return image.convert("RGB"), notes
    except ValueError as exc:
        # Pillow raises ValueError for conversions it does not implement.
        raise ImageDecodeError(f"unsupported image mode {mode}") from exc


def _flatten_alpha(image: Image.Image, *, label: str | None) -> tuple[Image.Image, str]:
    """Composites the image on white, so that transparent pixels' hidden colours vanish."""
    rgba = image.convert("RGBA")
    lowest_alpha, _ = rgba.getchannel("A").getextrema()
    if lowest_alpha == MAX_UINT8:
        return rgba.convert("RGB"), "opaque alpha channel dropped"
    background = Image.new("RGBA", rgba.size, WHITE_RGBA)
    flattened = Image.alpha_composite(background, rgba).convert("RGB")
    return flattened, f"{label or 'transparency'} composited on white"


def _integer_gray_to_l(image: Image.Image) -> tuple[Image.Image, str]:
    """Scales 16-bit (or wider) integer greys to 8 bits by their bit depth, not clipping.

    Pillow's own ``convert("L")`` clips, turning every value above 255 white.
    """
    values = np.asarray(image).astype(np.int64)
    if image.mode == "I" and (values.min() < 0 or values.max() > MAX_UINT16):
        # Values that do not fit 16 bits come from a 32-bit signed container.
        return _scaled_l(np.clip(values, 0, None), MAX_INT32), "32-bit scaled to 8-bit"
    return _scaled_l(values, MAX_UINT16), NOTE_16BIT


def _float_gray_to_l(image: Image.Image) -> tuple[Image.Image, str]:
    """Maps float greys to 8 bits: ``[0, 1]`` by convention, other ranges stretched."""
    values = np.nan_to_num(np.asarray(image, dtype=np.float64), nan=0.0, posinf=0.0, neginf=0.0)
    low, high = float(values.min()), float(values.max())
    if low >= 0.0 and high <= 1.0:
        unit = values
        note = "32-bit float scaled to 8-bit"
    else:
        unit = (values - low) / (high - low) if high > low else np.zeros_like(values)
        note = f"32-bit float stretched to 8-bit (range {low:g} to {high:g})"
    pixels = np.rint(unit * MAX_UINT8).astype(np.uint8)
    return Image.fromarray(pixels, mode="L"), note


def _scaled_l(values: np.ndarray, max_value: int) -> Image.Image:
    """Rounds ``values * 255 / max_value`` in integers, so the top value maps to 255."""
    pixels = (values * MAX_UINT8 + max_value // 2) // max_value
    return Image.fromarray(pixels.astype(np.uint8), mode="L")


def _bomb_reason(exc: Exception) -> str:
    match = BOMB_PIXELS_PATTERN.search(str(exc))
    pixels = f"{int(match.group(1)):,} pixels" if match else "pixel count over the limit"
    limit = Image.MAX_IMAGE_PIXELS
    limit_text = f"{limit:,} pixels" if limit else "Pillow's limit"
    return f"image too large ({pixels}; decompression-bomb limit {limit_text})"


def _unidentified_reason(data: bytes) -> str:
    """Tells a damaged image (known magic number) from a file that is no image at all."""
    if data[FTYP_OFFSET : FTYP_OFFSET + len(FTYP_BOX)] == FTYP_BOX:
        brand_start = FTYP_OFFSET + len(FTYP_BOX)
        if data[brand_start : brand_start + len(FTYP_BOX)] in HEIF_BRANDS:
            return REASON_HEIF
    format_name = next(
        (name for signature, name in KNOWN_SIGNATURES.items() if data.startswith(signature)),
        None,
    )
    is_webp = data.startswith(RIFF_SIGNATURE) and (
        data[WEBP_FOURCC_OFFSET : WEBP_FOURCC_OFFSET + len(WEBP_FOURCC)] == WEBP_FOURCC
    )
    if is_webp:
        format_name = "WEBP"
    if format_name:
        return f"corrupt image: {format_name} signature present but the file cannot be parsed"
    return REASON_NOT_AN_IMAGE


def _error_reason(exc: BaseException) -> str:
    message = " ".join(str(exc).split()) or type(exc).__name__
    if "truncated" in message.lower():
        return REASON_TRUNCATED
    return _shorten(f"corrupt image: {message}")


def _shorten(reason: str) -> str:
    return reason if len(reason) <= MAX_REASON_CHARS else reason[: MAX_REASON_CHARS - 1] + "…"


def _size_text(size: tuple[int, int]) -> str:
    return f"{size[0]}x{size[1]}"
