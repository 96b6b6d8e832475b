"""The near-copy check: test photos whose nearest training photo shows the same object.

File names cannot reveal that two photos show one object under another angle; a
pretrained backbone's features can. For every test photo, the cosine similarity to its
nearest training photo is measured; the share of test photos above a similarity
threshold is the near-copy share. Distinct objects give a share near zero, photos of
the same objects split across train and test a share near one.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import pandas as pd
from sklearn.metrics.pairwise import cosine_similarity

from .errors import SampleGroupingError

logger = logging.getLogger(__name__)
_EXAMPLES = 3  # test photos named in the error message


@dataclass(frozen=True)
class NearCopyCheck:
    """The outcome of the near-copy check.

    Attributes:
        share: Share of test photos whose nearest training photo is a near-copy.
        near_copies: How many test photos those are.
        test_photos: How many test photos were checked.
        threshold: The cosine similarity above which two photos count as near-copies.
        max_share: The share above which the check fails.
        median_similarity: The median similarity of a test photo to its nearest
            training photo.
        examples: Up to three ``(test photo, nearest training photo, similarity)``.
    """

    share: float
    near_copies: int
    test_photos: int
    threshold: float
    max_share: float
    median_similarity: float
    examples: list[tuple[str, str, float]]

    def to_dict(self) -> dict[str, object]:
        """Plain data for a JSON report."""
        return asdict(self)


def nearest_training_similarity(
    features: np.ndarray, splits: Sequence[str]
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Each test photo's cosine similarity to its nearest training photo.

    Args:
        features: One feature vector per photo, ``(n_photos, n_features)``.
        splits: Each photo's split (``train``, ``val``, ``test`` or another).

    Returns:
        The test rows' positions, their nearest training rows' positions and the
        similarities, each of length ``n_test``.

    Raises:
        ValueError: If there is no training or no test photo, or the lengths differ.
    """
    splits = np.asarray(splits)
    if len(splits) != len(features):
        raise ValueError(f"{len(features)} feature vectors for {len(splits)} photos.")
    train, test = np.flatnonzero(splits == "train"), np.flatnonzero(splits == "test")
    if not len(train) or not len(test):
        raise ValueError("The near-copy check needs training and test photos.")
    similarity = cosine_similarity(features[test], features[train])
    nearest = similarity.argmax(axis=1)
    return test, train[nearest], similarity[np.arange(len(test)), nearest]


def near_copy_check(
    features: np.ndarray, split: pd.DataFrame, *, threshold: float, max_share: float
) -> NearCopyCheck:
    """Measures the share of test photos whose nearest training photo is a near-copy.

    Args:
        features: One feature vector per row of ``split``, in its order.
        split: The split table (``path`` and ``split`` columns).
        threshold: Cosine similarity above which two photos count as near-copies.
        max_share: The share above which :func:`guard_against_near_copies` stops the run.

    Returns:
        The check's outcome.
    """
    test, nearest, similarities = nearest_training_similarity(features, split["split"].tolist())
    paths = split["path"].to_numpy()
    is_copy = similarities > threshold
    ranked = np.argsort(-similarities, kind="stable")[:_EXAMPLES]
    return NearCopyCheck(
        share=float(is_copy.mean()),
        near_copies=int(is_copy.sum()),
        test_photos=len(test),
        threshold=threshold,
        max_share=max_share,
        median_similarity=float(np.median(similarities)),
        examples=[
            (str(paths[test[i]]), str(paths[nearest[i]]), round(float(similarities[i]), 4))
            for i in ranked
        ],
    )


def guard_against_near_copies(
    check: NearCopyCheck | None, grouping: Mapping[str, Any], *, allow: bool
) -> dict[str, Any]:
    """Adds the near-copy check to the grouping record, and stops a run that would leak.

    Args:
        check: The check's outcome; ``None`` when it could not run (features of random
            weights say nothing about near-copies).
        grouping: The grouping record of the ingestion (``statement`` says how the
            samples were formed).
        allow: ``raw_images.allow_ungrouped``: warn instead of stopping.

    Returns:
        The record with ``near_copy``: the check's figures, or ``{"checked": False}``.

    Raises:
        SampleGroupingError: When the share of test photos with a near-copy in training
            is above ``check.max_share`` and ``allow`` is false, saying the folder looks
            like several photos of the same objects and how to group them.
    """
    if check is None:
        logger.info("Near-copy check skipped: the frozen backbone has no pretrained weights.")
        return {**grouping, "near_copy": {"checked": False}}
    record = {**grouping, "near_copy": {"checked": True, **check.to_dict()}}
    logger.info(
        "Near-copy check: %d of %d test photos (%.1f %%) have a training photo with cosine "
        "similarity above %s (median nearest similarity %.3f).",
        check.near_copies,
        check.test_photos,
        100 * check.share,
        check.threshold,
        check.median_similarity,
    )
    if check.share <= check.max_share:
        return record
    pairs = "; ".join(f"{test} ≈ {train} ({sim:.3f})" for test, train, sim in check.examples)
    message = (
        f"{check.near_copies} of {check.test_photos} test photos "
        f"({100 * check.share:.0f} %, more than raw_images.max_near_copy_share = "
        f"{100 * check.max_share:.0f} %) have a near-copy in the training split (cosine "
        f"similarity of the frozen backbone's features above {check.threshold}), e.g. "
        f"{pairs}. The folder looks like several photos of the same objects. "
        f"{grouping.get('statement', '')} The same object would be on both sides of the "
        "split and test accuracy would be inflated."
    )
    if allow:
        logger.warning("%s raw_images.allow_ungrouped is true: going on.", message)
        return record
    raise SampleGroupingError(
        f"{message} Group the photos by object: a raw_images.filename_pattern with "
        "(?P<sample_id>...) and optionally (?P<angle>...) that matches your file names "
        "(e.g. '(?P<sample_id>.+)_a(?P<angle>\\d+-\\d+)' for mug7_a030-120.png), or a "
        "manifest.csv with a sample_id column. If the photos really are of distinct "
        "objects, set raw_images.allow_ungrouped: true."
    )


def combine_fold_checks(groupings: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """One grouping record for a cross-validation from its folds' records.

    Every photo is tested in one fold, so the near-copy counts add up over the folds to a
    check of the whole set; the median similarity is the median of the folds' medians.
    """
    first = dict(groupings[0])
    checks = [g.get("near_copy", {}) for g in groupings]
    if not all(check.get("checked") for check in checks):
        return {**first, "near_copy": {"checked": False}}
    near_copies = sum(int(c["near_copies"]) for c in checks)
    test_photos = sum(int(c["test_photos"]) for c in checks)
    examples = sorted(
        (tuple(e) for c in checks for e in c["examples"]), key=lambda e: e[2], reverse=True
    )
    return {
        **first,
        "near_copy": {
            **checks[0],
            "near_copies": near_copies,
            "test_photos": test_photos,
            "share": near_copies / test_photos if test_photos else 0.0,
            "median_similarity": float(np.median([c["median_similarity"] for c in checks])),
            "examples": [list(e) for e in examples[:3]],
            "folds": len(groupings),
        },
    }
