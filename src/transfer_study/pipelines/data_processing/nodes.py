"""Nodes that turn a photo folder into a checked, split, decoded-once dataset."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import Any

import pandas as pd

from transfer_study.config import ModelSettings, RawImagesSettings, SplitSettings
from transfer_study.models.preprocessing import Preprocessing, preprocessing_for
from transfer_study.photos.ingestion import ingest
from transfer_study.photos.splitting import split_photos_by_sample
from transfer_study.pipelines.configured import refuse_changed_folds
from transfer_study.training.cache_budget import BYTES_PER_GB, CacheBuild
from transfer_study.training.image_cache import decoding_build, image_cache_key

logger = logging.getLogger(__name__)


def ingest_images(
    raw_images: Mapping[str, Callable[[], bytes]], params: RawImagesSettings
) -> tuple[pd.DataFrame, pd.DataFrame, dict[str, Any]]:
    """Reads the photo folder's layout and decodes every photo once to check it.

    Labels come from ``manifest.csv`` when the folder has one, otherwise from the class
    sub-folders. Sample id and angle come from the manifest or from
    ``params.filename_pattern`` (named groups ``sample_id`` and ``angle``, matched on the
    file name without extension, counted per class folder unless
    ``params.sample_ids_per_class`` is false); a photo with neither is its own sample. A
    pattern that groups only some photos is refused above ``params.max_ungrouped_share``
    of them. A photo mostly one colour or tiny is kept and listed as suspicious.

    Args:
        raw_images: Lazy loaders of every file's bytes, by path relative to the folder.
        params: The ``raw_images`` parameters.

    Returns:
        The image index (one row per usable photo), the data-quality report (one row
        per excluded, converted, ungrouped or suspicious file, with the reason) and the
        grouping record (how the samples were formed, with counts).

    Raises:
        DataLayoutError: For a manifest that escapes the folder, lacks labels or uses
            unknown labels, and for a sample id with photos under two labels.
        SampleGroupingError: For a grouping that would put photos of one object on both
            sides of the split (see ``photos.grouping``).
    """
    return ingest(raw_images, params)


def split_by_sample(
    image_index: pd.DataFrame,
    params: SplitSettings,
    raw_images_params: RawImagesSettings,
    pipeline_folds: int | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Splits photos into train/val/test by physical sample, stratified by class.

    Args:
        image_index: One row per usable photo (``ingest_images``' output).
        params: The ``split`` parameters: ``val_fraction``, ``test_fraction``, ``seed``,
            ``folds``.
        raw_images_params: The ``raw_images`` parameters, to name the folder in errors.
        pipeline_folds: The ``split.folds`` the pipeline was built with (bound by it).

    Returns:
        The split (``path,label,sample_id,angle,split,sha256``, and with folds the
        ``fold`` each photo is tested in) and a class × split table of sample and photo
        counts (per fold, with folds).

    Raises:
        ValueError: With fewer than two classes, a class too small to reach every split
            or fold, fractions the data cannot satisfy, or ``split.folds`` changed with
            ``--params``.
    """
    refuse_changed_folds(pipeline_folds, params.folds)
    return split_photos_by_sample(image_index, params, folder=raw_images_params.path)


def resolve_preprocessing(params: ModelSettings, image_index: pd.DataFrame) -> dict[str, Any]:
    """Finds the input size and normalisation of the chosen backbone's weights.

    Args:
        params: The ``model`` parameters: ``backbone`` and ``image_size`` (``auto``: the
            weights' native size, capped at the photos' median shorter side).
        image_index: The usable photos, with the ``width`` and ``height`` of their files.

    Returns:
        ``Preprocessing`` as a dict, saved so that every later step and every saved model
        uses the same values.
    """
    shorter_sides = image_index[["width", "height"]].min(axis=1).tolist()
    preprocessing = preprocessing_for(params.backbone, params.image_size, shorter_sides)
    logger.info(
        "Preprocessing for %s (image_size: %s): %s",
        params.backbone,
        params.image_size,
        preprocessing,
    )
    return preprocessing.to_dict()


def cache_decoded_images(
    raw_images: Mapping[str, Callable[[], bytes]],
    split: pd.DataFrame,
    preprocessing: Mapping[str, Any],
    params: RawImagesSettings,
) -> dict[str, CacheBuild]:
    """Decodes, converts and resizes every photo of the split once, into the cache.

    The work is returned as a lazy build under the cache key; the cache dataset calls it
    only when no entry with that key exists yet, after checking that its estimated size
    (photos × 3 × resize size²) fits the free disk. The build itself refuses a size over
    ``params.max_cache_gb`` before decoding anything.

    Args:
        raw_images: Lazy loaders of every file's bytes.
        split: The split table; its photos are cached in its row order.
        preprocessing: ``resolve_preprocessing``' output.
        params: The ``raw_images`` parameters (``max_cache_gb``).

    Returns:
        ``{cache_key: build returning {"images": uint8 tensor, "paths": list}}``.
    """
    settings = Preprocessing.from_dict(preprocessing)
    key = image_cache_key(split, settings)
    max_bytes = round(params.max_cache_gb * BYTES_PER_GB)
    return {key: decoding_build(split["path"].tolist(), raw_images, settings, max_bytes)}
