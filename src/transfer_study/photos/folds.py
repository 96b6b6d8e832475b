"""Grouped, stratified k-fold cross-validation: every physical sample is tested once.

For photo sets too small for one held-out test split to say much (a few dozen samples
per class), ``split.folds: k`` tests each sample in one of ``k`` folds and trains on the
others. The folds come from scikit-learn's ``StratifiedGroupKFold`` (samples are the
groups, so all photos of one sample share a fold); within each fold, the validation
samples are drawn from that fold's training samples by the same stratified, grouped
split as the single-split study (``photos.splitting``).
"""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd
from sklearn.model_selection import StratifiedGroupKFold, train_test_split

from .errors import SplitError

logger = logging.getLogger(__name__)

FOLD_COLUMN = "fold"


def _check_fold_sizes(samples: pd.DataFrame, folds: int, folder: str) -> None:
    # Each fold tests at least one sample of every class and keeps two to train and
    # validate on: k + 1 samples per class at the least.
    counts = samples["label"].value_counts().sort_index().to_dict()  # plain ints
    too_small = {label: n for label, n in counts.items() if n < folds + 1}
    if too_small:
        raise SplitError(
            f"split.folds = {folds} needs at least {folds + 1} physical samples per class "
            f"(one tested in each fold, others to train and validate on), but class(es) "
            f"{too_small} in '{folder}' have fewer. Use fewer folds or add samples."
        )


def assign_folds(
    photos: pd.DataFrame, folds: int, seed: int, *, folder: str = "the photo folder"
) -> pd.Series:
    """The fold in which each photo is tested, stratified by class, grouped by sample.

    Args:
        photos: One row per photo with ``label`` and ``sample_id``.
        folds: ``k``, at least 2.
        seed: Shuffles the samples before they are dealt into folds.
        folder: Named in errors.

    Returns:
        The fold index (``0`` … ``k − 1``) per photo, on ``photos``' index.

    Raises:
        SplitError: (a ``ValueError``) If a class has fewer than ``k + 1`` physical samples.
    """
    samples = photos.groupby("sample_id", as_index=False)["label"].first()
    _check_fold_sizes(samples, folds, folder)
    splitter = StratifiedGroupKFold(n_splits=folds, shuffle=True, random_state=seed)
    fold = pd.Series(-1, index=photos.index, dtype=int)
    labels, groups = photos["label"].to_numpy(), photos["sample_id"].to_numpy()
    for index, (_, tested) in enumerate(splitter.split(np.zeros(len(photos)), labels, groups)):
        fold.iloc[tested] = index
    return fold


def fold_split(split: pd.DataFrame, fold: int, *, val_fraction: float, seed: int) -> pd.DataFrame:
    """The train/val/test roles of one fold: its samples test, the others train and validate.

    Args:
        split: The study's split table with a ``fold`` column (``assign_folds``).
        fold: The fold whose samples are tested.
        val_fraction: Share of *all* samples used for validation, drawn stratified by class
            from the fold's training samples (as in the single-split study).
        seed: The split's seed; the fold's inner split uses ``seed + fold``.

    Returns:
        ``split`` with the same rows in the same order and its ``split`` column set for
        this fold.

    Raises:
        SplitError: (a ``ValueError``) If the fold's training samples cannot give every
            class a validation and a training sample.
    """
    folds = int(split[FOLD_COLUMN].max()) + 1
    tested = split[FOLD_COLUMN] == fold
    rest = split.loc[~tested].groupby("sample_id", as_index=False)["label"].first()
    # val_fraction of all samples, taken from the (k − 1)/k that this fold trains on.
    share = min(val_fraction * folds / (folds - 1), 0.5)
    try:
        _, val = train_test_split(
            rest, test_size=share, stratify=rest["label"], random_state=seed + fold
        )
    except ValueError as error:
        raise SplitError(
            f"Cannot draw validation samples for fold {fold} (val_fraction={val_fraction}, "
            f"{len(rest)} training samples): {error}. Add samples, use fewer folds or raise "
            "split.val_fraction."
        ) from error
    roles = pd.Series("train", index=split.index)
    roles[split["sample_id"].isin(val["sample_id"])] = "val"
    roles[tested] = "test"
    result = split.copy()
    result["split"] = roles
    counts = result.groupby("label")["split"].agg(lambda s: set(s))
    incomplete = sorted(label for label, seen in counts.items() if {"train", "val"} - seen)
    if incomplete:
        raise SplitError(
            f"Fold {fold} leaves class(es) {incomplete} without a training or validation "
            "sample. Add samples of those classes, use fewer folds or raise "
            "split.val_fraction."
        )
    return result


def warn_that_the_ablation_uses_the_first_fold(split: pd.DataFrame) -> None:
    """Says, when the split has folds, that the data-size ablation does not use them."""
    if FOLD_COLUMN in split.columns:
        # Each cell already trains once per seed; once per fold as well would multiply
        # the grid by k for a learning curve that one fixed test split answers.
        logger.warning(
            "split.folds is set: the ablation's cells train and test on the first fold's "
            "split; cross-validation applies to the study (kedro run), not to the ablation."
        )
