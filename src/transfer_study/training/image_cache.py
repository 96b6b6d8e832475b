"""The decoded-image cache: every photo decoded, converted and resized exactly once.

Training reads ``uint8`` tensors from here and never decodes a JPEG per epoch. The cache
is keyed by a fingerprint of the photos' bytes and the resize settings, so it stays valid
across runs, pipelines and ablation cells, and a change of data or size gets a new entry.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from functools import partial

import pandas as pd
import torch
from tqdm.auto import tqdm

from transfer_study.models.preprocessing import Preprocessing
from transfer_study.models.transforms import decode_resized
from transfer_study.training.cache_budget import CacheBuild, decoded_images_bytes

# Bump when the way images are decoded or resized changes, so old caches are not reused.
CACHE_FORMAT_VERSION = 1


def image_cache_key(images: pd.DataFrame, preprocessing: Preprocessing) -> str:
    """Names the cache entry for these photos at this size.

    Args:
        images: Table with ``path`` and ``sha256`` columns (the split or image index).
        preprocessing: Decides the cached size and resampling filter.

    Returns:
        ``"<size>px-<digest>"``, stable for the same files and settings.
    """
    content = {
        "version": CACHE_FORMAT_VERSION,
        "size": preprocessing.resize_size,
        "interpolation": preprocessing.interpolation,
        "files": sorted(zip(images["path"], images["sha256"], strict=True)),
    }
    digest = hashlib.sha256(json.dumps(content).encode()).hexdigest()[:16]
    return f"{preprocessing.resize_size}px-{digest}"


def decode_images(
    paths: list[str],
    raw_images: Mapping[str, Callable[[], bytes]],
    preprocessing: Preprocessing,
) -> dict[str, object]:
    """Decodes photos into one ``uint8`` tensor of shape ``(N, 3, S, S)``.

    Args:
        paths: Photos to decode, in the order of the returned tensor.
        raw_images: Lazy loaders of every photo's bytes, by relative path.
        preprocessing: Gives ``S`` (``resize_size``) and the resampling filter.

    Returns:
        ``{"images": tensor, "paths": paths}``.
    """
    size = preprocessing.resize_size
    images = torch.empty((len(paths), 3, size, size), dtype=torch.uint8)

    def decode_into(position: int) -> None:
        images[position] = decode_resized(
            raw_images[paths[position]](), preprocessing=preprocessing
        )

    # Pillow releases the GIL while decoding and resizing, so threads use every core.
    with ThreadPoolExecutor(max_workers=os.cpu_count() or 1) as pool:
        list(
            tqdm(
                pool.map(decode_into, range(len(paths))),
                total=len(paths),
                desc="Decoding photos once",
                unit="img",
            )
        )
    return {"images": images, "paths": list(paths)}


def decoding_build(
    paths: list[str],
    raw_images: Mapping[str, Callable[[], bytes]],
    preprocessing: Preprocessing,
    max_bytes: int | None = None,
) -> CacheBuild:
    """``decode_images`` as a cache entry's build, refused before decoding if too big.

    Args:
        paths: Photos to decode, in the order of the cached tensor.
        raw_images: Lazy loaders of every photo's bytes, by relative path.
        preprocessing: Gives the cached size (``resize_size``) and the filter.
        max_bytes: The memory cap (``raw_images.max_cache_gb``); ``None``: none.

    Returns:
        The build, whose estimate is ``len(paths) × 3 × resize_size²`` bytes.
    """
    side = preprocessing.resize_size
    return CacheBuild(
        build=partial(decode_images, paths, raw_images, preprocessing),
        estimate=partial(decoded_images_bytes, len(paths), side),
        max_bytes=max_bytes,
        what=f"the decoded-image cache of {len(paths)} photos at {side} px",
        advice=(
            f"a smaller model.image_size (photos are cached at {side} px, and the size grows "
            "with its square), fewer photos or classes (raw_images.classes)"
        ),
    )


def select_image_cache(
    decoded_images: Mapping[str, Callable[[], dict]],
    images: pd.DataFrame,
    preprocessing: Preprocessing,
) -> dict[str, object]:
    """Loads the cache entry for these photos, as written by ``cache_decoded_images``.

    Args:
        decoded_images: The cache's partitions (lazy loaders by key).
        images: The split table the cache was built from.
        preprocessing: The preprocessing the cache was built with.

    Returns:
        ``{"images": tensor, "paths": list}``.

    Raises:
        KeyError: If the cache has no entry for these photos and settings.
    """
    key = image_cache_key(images, preprocessing)
    if key not in decoded_images:
        raise KeyError(
            f"No decoded-image cache '{key}' for this split and size: run the "
            "'cache_decoded_images_node' first (a plain `kedro run` does)."
        )
    return decoded_images[key]()
