"""Split a photo table into train/val/test by physical sample, stratified by class."""

from __future__ import annotations

import logging

import pandas as pd
from sklearn.model_selection import train_test_split

from transfer_study.config import SplitSettings

logger = logging.getLogger(__name__)

SPLITS = ("train", "val", "test")
SPLIT_COLUMNS = ["path", "label", "sample_id", "angle", "split", "sha256"]


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


def _assign_splits(samples: pd.DataFrame, settings: SplitSettings) -> pd.Series:
    """Stratified split of samples (not photos), so no sample straddles two splits.

    ``SplitSettings`` guarantees fractions in (0, 1) that sum to less than 1.
    """
    val_fraction, test_fraction = settings.val_fraction, settings.test_fraction
    seed = settings.seed
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


def split_photos_by_sample(
    image_index: pd.DataFrame, settings: SplitSettings, *, folder: str
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Splits photos into train/val/test by physical sample, stratified by class.

    Args:
        image_index: One row per usable photo (``path,label,sample_id,angle,sha256``).
        settings: ``val_fraction``, ``test_fraction`` and ``seed``.
        folder: The photo folder, named in errors.

    Returns:
        The split (``SPLIT_COLUMNS``) and a class × split table of sample and photo counts.

    Raises:
        ValueError: With fewer than two classes, a class too small to reach every split,
            or fractions the data cannot satisfy.
    """
    samples = image_index.groupby("sample_id", as_index=False)["label"].first()
    _check_class_sizes(samples, folder)
    samples["split"] = _assign_splits(samples, settings)
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
        "Split by physical sample (seed %s):\n%s", settings.seed, summary.to_string(index=False)
    )
    return split[SPLIT_COLUMNS].sort_values(["split", "path"], ignore_index=True), summary
