"""Split a photo table into train/val/test by physical sample, stratified by class."""

from __future__ import annotations

import logging

import pandas as pd
from sklearn.model_selection import train_test_split

from transfer_study.config import SplitSettings
from transfer_study.photos.errors import SplitError
from transfer_study.photos.folds import FOLD_COLUMN, assign_folds, fold_split

logger = logging.getLogger(__name__)

SPLITS = ("train", "val", "test")
SPLIT_COLUMNS = ["path", "label", "sample_id", "angle", "split", "sha256"]
# Below this many test samples in a class, a single split's interval is wide: suggest folds.
SMALL_TEST_SAMPLES_PER_CLASS = 30


def _check_class_sizes(samples: pd.DataFrame, path: str) -> None:
    counts = samples["label"].value_counts().sort_index().to_dict()  # plain ints
    if len(counts) < 2:
        raise SplitError(
            f"Found {len(counts)} class(es) with usable photos in '{path}' "
            f"({counts}); a classifier needs at least two. Put each class in its own "
            "sub-folder (or label them in manifest.csv), and see "
            "data/08_reporting/data_quality.csv for files that were excluded."
        )
    too_small = {label: n for label, n in counts.items() if n < len(SPLITS)}
    if too_small:
        raise SplitError(
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
        raise SplitError(
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

    With ``settings.folds`` (k-fold cross-validation), every photo also gets the fold in
    which it is tested (``fold`` column) and the train/val/test roles are the first
    fold's: each fold's own roles come from ``photos.folds.fold_split``.

    Args:
        image_index: One row per usable photo (``path,label,sample_id,angle,sha256``).
        settings: ``val_fraction``, ``test_fraction``, ``seed`` and ``folds``.
        folder: The photo folder, named in errors.

    Returns:
        The split (``SPLIT_COLUMNS``, and ``fold`` with folds) and a class × split table
        of sample and photo counts (one per fold, in a ``fold`` column, with folds).

    Raises:
        SplitError: (a ``ValueError``) With fewer than two classes, a class too small to
            reach every split (or fold), or fractions the data cannot satisfy.
    """
    samples = image_index.groupby("sample_id", as_index=False)["label"].first()
    _check_class_sizes(samples, folder)
    if settings.folds:
        return _split_into_folds(image_index, settings, folder)
    samples["split"] = _assign_splits(samples, settings)
    split = image_index.merge(samples[["sample_id", "split"]], on="sample_id", validate="m:1")
    summary = _summarise(split)
    _check_every_split_has_every_class(summary)
    logger.info(
        "Split by physical sample (seed %s):\n%s", settings.seed, summary.to_string(index=False)
    )
    _suggest_folds_for_a_small_test_split(summary)
    return split[SPLIT_COLUMNS].sort_values(["split", "path"], ignore_index=True), summary


def _check_every_split_has_every_class(summary: pd.DataFrame) -> None:
    missing = summary[[f"samples_{name}" for name in SPLITS]].eq(0).any(axis=1)
    if missing.any():
        raise SplitError(
            f"Class(es) {summary.loc[missing, 'label'].tolist()} would be missing from a split "
            f"with these fractions:\n{summary.to_string(index=False)}\nAdd samples of those "
            "classes or change split.val_fraction / split.test_fraction."
        )


def _suggest_folds_for_a_small_test_split(summary: pd.DataFrame) -> None:
    smallest = int(summary["samples_test"].min())
    if smallest < SMALL_TEST_SAMPLES_PER_CLASS:
        logger.warning(
            "The test split holds only %d physical samples of its smallest class (fewer than "
            "%d): its accuracy interval will be wide and one sample moves it by several "
            "points. Grouped k-fold cross-validation tests every sample once: set "
            "split.folds: 5 in conf/local/parameters.yml (it costs five studies).",
            smallest,
            SMALL_TEST_SAMPLES_PER_CLASS,
        )


def _split_into_folds(
    image_index: pd.DataFrame, settings: SplitSettings, folder: str
) -> tuple[pd.DataFrame, pd.DataFrame]:
    photos = image_index.sort_values("path", ignore_index=True)
    photos[FOLD_COLUMN] = assign_folds(photos, settings.folds, settings.seed, folder=folder)
    photos["split"] = "train"
    summaries = []
    for fold in range(settings.folds):
        roles = fold_split(photos, fold, val_fraction=settings.val_fraction, seed=settings.seed)
        summaries.append(_summarise(roles).assign(fold=fold))
        if fold == 0:
            first = roles
    summary = pd.concat(summaries, ignore_index=True)
    logger.info(
        "Grouped %d-fold cross-validation by physical sample (seed %s):\n%s",
        settings.folds,
        settings.seed,
        summary.to_string(index=False),
    )
    return first[[*SPLIT_COLUMNS, FOLD_COLUMN]], summary
