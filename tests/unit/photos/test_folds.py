"""Grouped, stratified k-fold cross-validation (``photos.folds``) and the split's fold mode."""

from __future__ import annotations

import logging

import pandas as pd
import pytest

from transfer_study.config import ParameterError, SplitSettings
from transfer_study.photos.errors import SplitError
from transfer_study.photos.folds import assign_folds, fold_split
from transfer_study.photos.splitting import SMALL_TEST_SAMPLES_PER_CLASS, split_photos_by_sample
from transfer_study.pipelines.configured import refuse_changed_folds


def _photos(samples_per_class: dict[str, int], angles: int = 3) -> pd.DataFrame:
    rows = [
        {
            "path": f"{label}/{label}{sample:03d}_a{angle}.jpg",
            "label": label,
            "sample_id": f"{label}{sample:03d}",
            "angle": str(angle),
            "sha256": f"{label}{sample}{angle}",
        }
        for label, n in samples_per_class.items()
        for sample in range(n)
        for angle in range(angles)
    ]
    return pd.DataFrame(rows)


def _settings(**values) -> SplitSettings:
    return SplitSettings(**{"val_fraction": 0.15, "test_fraction": 0.25, "seed": 7, **values})


def test_every_sample_is_tested_in_exactly_one_fold_with_all_its_photos():
    photos = _photos({"ant": 14, "bee": 10})
    fold = assign_folds(photos, 4, seed=0)
    assert sorted(fold.unique()) == [0, 1, 2, 3]
    assert (photos.assign(fold=fold).groupby("sample_id")["fold"].nunique() == 1).all()


def test_folds_are_stratified_by_class():
    photos = _photos({"ant": 20, "bee": 10})
    folds = photos.assign(fold=assign_folds(photos, 5, seed=3))
    per_fold = folds.groupby(["fold", "label"])["sample_id"].nunique().unstack()
    assert per_fold["ant"].tolist() == [4] * 5
    assert per_fold["bee"].tolist() == [2] * 5


def test_the_fold_seed_changes_which_samples_share_a_fold():
    photos = _photos({"ant": 12, "bee": 12})
    assert not assign_folds(photos, 3, seed=0).equals(assign_folds(photos, 3, seed=1))


def test_a_class_with_too_few_samples_for_the_folds_is_refused_with_what_to_do():
    with pytest.raises(SplitError, match=r"at least 6 physical samples per class.*'bee': 5"):
        assign_folds(_photos({"ant": 12, "bee": 5}), 5, seed=0)


def test_a_fold_tests_its_samples_and_validates_on_samples_of_the_other_folds():
    photos = _photos({"ant": 12, "bee": 12})
    split = photos.assign(fold=assign_folds(photos, 3, seed=0), split="train")
    for fold in range(3):
        roles = fold_split(split, fold, val_fraction=0.15, seed=7)
        assert roles["path"].tolist() == split["path"].tolist()  # same rows, same order
        assert (roles.loc[roles["split"] == "test", "fold"] == fold).all()
        assert (roles.loc[split["fold"] == fold, "split"] == "test").all()
        assert (roles.groupby("sample_id")["split"].nunique() == 1).all()
        val_samples = roles.loc[roles["split"] == "val"].groupby("label")["sample_id"].nunique()
        # 15 % of 24 samples ≈ 4, taken from the 16 this fold trains on, per class half.
        assert val_samples.tolist() == [2, 2]


def test_split_with_folds_keeps_the_fold_and_the_first_folds_roles():
    photos = _photos({"ant": 12, "bee": 9})
    split, summary = split_photos_by_sample(photos, _settings(folds=3), folder="photos")
    assert "fold" in split and set(split["fold"]) == {0, 1, 2}
    assert (split.loc[split["split"] == "test", "fold"] == 0).all()
    assert sorted(summary["fold"].unique()) == [0, 1, 2]
    # Every sample is tested once over the folds.
    assert summary["samples_test"].sum() == 21


def test_a_small_test_split_gets_a_warning_that_suggests_folds(caplog):
    small = _photos({"ant": 20, "bee": 20})
    with caplog.at_level(logging.WARNING):
        split_photos_by_sample(small, _settings(), folder="photos")
    assert "split.folds: 5" in caplog.text

    caplog.clear()
    per_class = 4 * SMALL_TEST_SAMPLES_PER_CLASS + 4  # a quarter of it is ≥ 30 tested
    with caplog.at_level(logging.WARNING):
        split_photos_by_sample(
            _photos({"ant": per_class, "bee": per_class}, angles=1), _settings(), folder="x"
        )
    assert "split.folds" not in caplog.text


def test_folds_changed_from_what_the_pipeline_was_built_with_are_refused():
    refuse_changed_folds(5, 5)
    refuse_changed_folds(None, None)
    with pytest.raises(ParameterError, match=r"conf/local/parameters\.yml"):
        refuse_changed_folds(None, 5)


def test_folds_are_whole_numbers_of_at_least_two():
    with pytest.raises(ValueError):
        _settings(folds=1)
    assert _settings(folds=2).folds == 2
    assert _settings().folds is None
