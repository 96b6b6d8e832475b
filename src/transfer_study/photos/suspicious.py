"""Placeholder and degenerate photos: kept, but listed for a person to look at.

Photo sets collected from the web ship placeholders: the PyTorch tutorial's ants/bees set
has ``train_imageNotFound.gif``, a 300×300 "we're sorry, this image could not be found"
card that trains as an ant. Such a file decodes fine, so nothing else catches it. A
photo that is almost all one colour, or only a few pixels a side, is therefore listed in
``data_quality.csv`` as ``suspicious`` with the reason. It is not excluded: a real photo
can be mostly one colour (a small object on a plain background, a clear sky), and only a
person can tell.
"""

from __future__ import annotations

import numpy as np
from PIL import Image

SUSPICIOUS_STATUS = "suspicious"

# The share is measured on a copy box-averaged down to at most this many pixels a side:
# averaging removes the JPEG and sensor noise that would otherwise scatter a flat area
# over many colours, and the measure costs next to nothing beside the decode.
_MEASURE_SIDE = 64
# Colours are binned 8 levels wide (5 bits a channel) to find the dominant one.
_BIN_SHIFT = 3
_BITS = 8 - _BIN_SHIFT
# A pixel is "that colour" within this many levels in every channel of the dominant bin's
# median: a flat area split by a bin edge (128 ± noise) still counts whole. Measured on
# 398 ants/bees and 800 demo photos: the placeholder scores 0.92, the next photo 0.85
# (a wider tolerance of 16 brought small fragments on sand to 0.94).
_TOLERANCE = 8


def one_colour_share(image: Image.Image) -> float:
    """The share of an RGB image's pixels that are, within noise, its most common colour.

    Args:
        image: An ``"RGB"`` image.

    Returns:
        A share in ``(0, 1]``: about 0.92 for a text-on-grey placeholder, 1.0 for a
        blank frame, 0.1-0.85 for photos.
    """
    scale = _MEASURE_SIDE / max(image.size)
    if scale < 1:
        size = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
        image = image.resize(size, Image.Resampling.BOX, reducing_gap=2.0)
    pixels = np.asarray(image, dtype=np.int32).reshape(-1, 3)
    codes = ((pixels >> _BIN_SHIFT) << np.array([2 * _BITS, _BITS, 0])).sum(axis=1)
    dominant = np.median(pixels[codes == np.bincount(codes).argmax()], axis=0)
    return float((np.abs(pixels - dominant).max(axis=1) <= _TOLERANCE).mean())


def suspicion(
    image: Image.Image, stored_size: tuple[int, int], *, max_one_colour_share: float, min_side: int
) -> str | None:
    """Why a decoded photo looks like a placeholder or a degenerate file, if it does.

    Args:
        image: The decoded ``"RGB"`` image (possibly decoded at reduced size).
        stored_size: ``(width, height)`` stored in the file.
        max_one_colour_share: ``raw_images.suspicious_one_colour_share``.
        min_side: ``raw_images.suspicious_min_side``.

    Returns:
        The reason for ``data_quality.csv``, or ``None`` for an ordinary photo.
    """
    reasons = []
    if min(stored_size) < min_side:
        reasons.append(
            f"only {stored_size[0]}x{stored_size[1]} pixels (below "
            f"raw_images.suspicious_min_side = {min_side})"
        )
    share = one_colour_share(image)
    if share >= max_one_colour_share:
        reasons.append(
            f"{100 * share:.0f} % of its pixels are one colour (raw_images."
            f"suspicious_one_colour_share = {max_one_colour_share:.2f}): a placeholder or "
            "blank frame?"
        )
    return "; ".join(reasons) or None
