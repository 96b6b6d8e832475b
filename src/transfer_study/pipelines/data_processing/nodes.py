"""Nodes that turn a photo folder into a checked, split, decoded-once dataset."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import Any

import pandas as pd
from sklearn.model_selection import train_test_split

from transfer_study.models.preprocessing import (
    Preprocessing,
    pretrained_preprocessing,
    scaled_to_input_size,
)
from transfer_study.training.image_cache import decode_images, image_cache_key

from .ingestion import ingest

logger = logging.getLogger(__name__)

SPLITS = ("train", "val", "test")
SPLIT_COLUMNS = ["path", "label", "sample_id", "angle", "split", "sha256"]


def ingest_images(
    raw_images: Mapping[str, Callable[[], bytes]], params: Mapping[str, Any]
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Reads the photo folder's layout and decodes every photo once to check it.

    Labels come from ``manifest.csv`` when the folder has one, otherwise from the class
    sub-folders. Sample id and angle come from the manifest or from
    ``params["filename_pattern"]`` (named groups ``sample_id`` and ``angle``, matched on
    the file name without extension); a photo with neither is its own sample.

    Args:
        raw_images: Lazy loaders of every file's bytes, by path relative to the folder.
        params: The ``raw_images`` parameters.

    Returns:
        The image index (one row per usable photo) and the data-quality report (one row
        per excluded or converted file, with the reason).

    Raises:
        DataLayoutError: For a manifest that escapes the folder, lacks labels or uses
            unknown labels, and for a sample id with photos under two labels.
    """
    return ingest(raw_images, params)


def _check_class_sizes(samples: pd.DataFrame, path: str) -> None:
    counts = samples["label"].value_counts().sort_index()
    if len(counts) < 2:
        raise ValueError(
            f"Found {len(counts)} class(es) with usable photos in '{path}' "
            f"({dict(counts)}); a classifier needs at least two. Put each class in its own "
            "sub-folder (or label them in manifest.csv), and see "
            "data/08_reporting/data_quality.csv for files that were excluded."
        )
    too_small = {label: int(n) for label, n in counts.items() if n < len(SPLITS)}
    if too_small:
        raise ValueError(
            f"Class(es) {too_small} have fewer than {len(SPLITS)} physical samples; each class "
            "needs at least one sample in each of train, val and test. Add photos of more "
            "samples, or drop the class (raw_images.classes)."
        )


def _assign_splits(samples: pd.DataFrame, params: Mapping[str, Any]) -> pd.Series:
    """Stratified split of samples (not photos), so no sample straddles two splits."""
    val_fraction, test_fraction = float(params["val_fraction"]), float(params["test_fraction"])
    if not (0 < val_fraction < 1 and 0 < test_fraction < 1 and val_fraction + test_fraction < 1):
        raise ValueError(
            "split.val_fraction and split.test_fraction must be in (0, 1) and sum to less "
            f"than 1; got {val_fraction} and {test_fraction}."
        )
    seed = int(params["seed"])
    try:
        rest, test = train_test_split(
            samples, test_size=test_fraction, stratify=samples["label"], random_state=seed
        )
        _, val = train_test_split(
            rest,
            test_size=val_fraction / (1 - test_fraction),
            stratify=rest["label"],
            random_state=seed,
        )
    except ValueError as error:
        raise ValueError(
            f"Cannot split {len(samples)} samples into train/val/test with val_fraction="
            f"{val_fraction} and test_fraction={test_fraction}: {error}. Add samples or "
            "raise the fractions."
        ) from error
    assignment = pd.Series("train", index=samples.index)
    assignment[val.index] = "val"
    assignment[test.index] = "test"
    return assignment


def _summarise(split: pd.DataFrame) -> pd.DataFrame:
    samples = split.groupby(["label", "split"])["sample_id"].nunique().unstack(fill_value=0)
    photos = split.groupby(["label", "split"]).size().unstack(fill_value=0)
    summary = pd.concat({"samples": samples, "photos": photos}, axis=1)
    summary.columns = [f"{kind}_{name}" for kind, name in summary.columns]
    ordered = [f"{kind}_{name}" for kind in ("samples", "photos") for name in SPLITS]
    return summary.reindex(columns=ordered, fill_value=0).reset_index()


def split_by_sample(
    image_index: pd.DataFrame, params: Mapping[str, Any], raw_images_params: Mapping[str, Any]
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Splits photos into train/val/test by physical sample, stratified by class.

    Args:
        image_index: One row per usable photo (``ingest_images``' output).
        params: The ``split`` parameters: ``val_fraction``, ``test_fraction``, ``seed``.
        raw_images_params: The ``raw_images`` parameters, to name the folder in errors.

    Returns:
        The split (``path,label,sample_id,angle,split,sha256``) and a class × split table
        of sample and photo counts.

    Raises:
        ValueError: With fewer than two classes, a class too small to reach every split,
            or fractions the data cannot satisfy.
    """
    samples = image_index.groupby("sample_id", as_index=False)["label"].first()
    _check_class_sizes(samples, str(raw_images_params.get("path")))
    samples["split"] = _assign_splits(samples, params)
    split = image_index.merge(samples[["sample_id", "split"]], on="sample_id", validate="m:1")
    summary = _summarise(split)
    missing = summary[[f"samples_{name}" for name in SPLITS]].eq(0).any(axis=1)
    if missing.any():
        raise ValueError(
            f"Class(es) {summary.loc[missing, 'label'].tolist()} would be missing from a split "
            f"with these fractions:\n{summary.to_string(index=False)}\nAdd samples of those "
            "classes or change split.val_fraction / split.test_fraction."
        )
    logger.info(
        "Split by physical sample (seed %s):\n%s", params["seed"], summary.to_string(index=False)
    )
    return split[SPLIT_COLUMNS].sort_values(["split", "path"], ignore_index=True), summary


def resolve_preprocessing(params: Mapping[str, Any]) -> dict[str, Any]:
    """Finds the input size and normalisation of the chosen backbone's weights.

    Args:
        params: The ``model`` parameters: ``backbone`` and ``image_size`` (``null`` for
            the weights' native size).

    Returns:
        ``Preprocessing`` as a dict, saved so that every later step and every saved model
        uses the same values.
    """
    native = pretrained_preprocessing(params["backbone"])
    preprocessing = scaled_to_input_size(native, params.get("image_size"))
    logger.info("Preprocessing for %s: %s", params["backbone"], preprocessing)
    return preprocessing.to_dict()


def cache_decoded_images(
    raw_images: Mapping[str, Callable[[], bytes]],
    split: pd.DataFrame,
    preprocessing: Mapping[str, Any],
) -> dict[str, Callable[[], dict]]:
    """Decodes, converts and resizes every photo of the split once, into the cache.

    The work is returned as a lazy function under the cache key; the cache dataset
    calls it only when no entry with that key exists yet.

    Args:
        raw_images: Lazy loaders of every file's bytes.
        split: The split table; its photos are cached in its row order.
        preprocessing: ``resolve_preprocessing``' output.

    Returns:
        ``{cache_key: function returning {"images": uint8 tensor, "paths": list}}``.
    """
    settings = Preprocessing.from_dict(preprocessing)
    key = image_cache_key(split, settings)
    paths = split["path"].tolist()
    return {key: lambda: decode_images(paths, raw_images, settings)}
