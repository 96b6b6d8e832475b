"""The near-copy statistic on synthetic features: copies across the split are caught."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from transfer_study.photos.errors import SampleGroupingError
from transfer_study.photos.near_copies import (
    guard_against_near_copies,
    near_copy_check,
    nearest_training_similarity,
)

N_OBJECTS, N_FEATURES = 40, 64


def _objects(rng: np.random.Generator) -> np.ndarray:
    return rng.normal(size=(N_OBJECTS, N_FEATURES))


def _split(n: int, rng: np.random.Generator) -> pd.DataFrame:
    splits = rng.permutation(["train"] * (n * 3 // 5) + ["test"] * (n - n * 3 // 5))
    return pd.DataFrame({"path": [f"p{i}.jpg" for i in range(n)], "split": splits})


def test_views_of_the_same_objects_on_both_sides_of_the_split_give_a_high_share():
    rng = np.random.default_rng(0)
    objects = _objects(rng)
    # 4 views per object: the object's vector plus a little noise, split photo by photo.
    views = np.repeat(objects, 4, axis=0) + 0.1 * rng.normal(size=(4 * N_OBJECTS, N_FEATURES))
    check = near_copy_check(views, _split(len(views), rng), threshold=0.9, max_share=0.05)
    assert check.share > 0.8
    with pytest.raises(SampleGroupingError, match=r"several photos of the same objects"):
        guard_against_near_copies(check, {"statement": "One sample per photo."}, allow=False)


def test_distinct_objects_give_a_low_share_and_pass():
    rng = np.random.default_rng(1)
    objects = _objects(rng)
    check = near_copy_check(objects, _split(N_OBJECTS, rng), threshold=0.9, max_share=0.05)
    assert check.share == 0
    record = guard_against_near_copies(check, {"method": "one per photo"}, allow=False)
    assert record["near_copy"]["share"] == 0 and record["method"] == "one per photo"


def test_allow_ungrouped_turns_the_stop_into_a_warning():
    rng = np.random.default_rng(2)
    views = np.repeat(_objects(rng), 2, axis=0)
    check = near_copy_check(views, _split(len(views), rng), threshold=0.9, max_share=0.05)
    assert check.share > 0.5
    record = guard_against_near_copies(check, {}, allow=True)
    assert record["near_copy"]["checked"] is True


def test_nearest_training_photo_is_found_by_cosine_similarity():
    features = np.array([[1.0, 0.0], [0.0, 1.0], [10.0, 0.5], [0.1, 1.0]])
    test, nearest, similarity = nearest_training_similarity(
        features, ["train", "train", "test", "test"]
    )
    assert test.tolist() == [2, 3] and nearest.tolist() == [0, 1]
    assert similarity[0] == pytest.approx(10 / np.hypot(10, 0.5))


def test_the_check_is_skipped_without_pretrained_features():
    record = guard_against_near_copies(None, {"method": "x"}, allow=False)
    assert record["near_copy"] == {"checked": False}
