"""Splitting by physical sample: no leakage, stratified, reproducible, clear errors."""

from __future__ import annotations

import pandas as pd
import pytest

from transfer_study.config import RawImagesSettings, SplitSettings
from transfer_study.photos.errors import SplitError
from transfer_study.pipelines.data_processing.nodes import split_by_sample

SPLIT_PARAMS = SplitSettings(val_fraction=0.2, test_fraction=0.2, seed=7)
RAW_PARAMS = RawImagesSettings(
    path="photos",
    manifest=None,
    filename_pattern=None,
    classes=None,
    check_draft_size=None,
)


def _index(samples_per_class: dict[str, int], n_angles: int) -> pd.DataFrame:
    rows, sample = [], 0
    for label, n_samples in samples_per_class.items():
        for _ in range(n_samples):
            for angle in range(n_angles):
                rows.append(
                    {
                        "path": f"{label}/s{sample:04d}_a{angle:02d}.jpg",
                        "label": label,
                        "sample_id": f"s{sample:04d}",
                        "angle": angle,
                        "sha256": f"{sample:04d}{angle:02d}",
                    }
                )
            sample += 1
    return pd.DataFrame(rows)


def test_split_keeps_all_angles_of_a_sample_together():
    split, _ = split_by_sample(
        _index({"plastic": 60, "natural": 40}, n_angles=10), SPLIT_PARAMS, RAW_PARAMS
    )
    splits_per_sample = split.groupby("sample_id")["split"].nunique()
    assert (splits_per_sample == 1).all()
    assert len(split) == 1000
    assert set(split.columns) >= {"path", "label", "sample_id", "angle", "split"}


def test_split_is_stratified_by_class():
    split, summary = split_by_sample(
        _index({"plastic": 60, "natural": 40}, 3), SPLIT_PARAMS, RAW_PARAMS
    )
    samples = split.drop_duplicates("sample_id")
    for name, expected in [("test", 0.2), ("val", 0.2), ("train", 0.6)]:
        shares = samples[samples["split"] == name]["label"].value_counts(normalize=True)
        assert shares["plastic"] == pytest.approx(0.6, abs=0.05), name
        assert (samples["split"] == name).mean() == pytest.approx(expected, abs=0.03)
    row = summary.set_index("label").loc["plastic"]
    assert row["samples_train"] + row["samples_val"] + row["samples_test"] == 60
    assert row["photos_test"] == 3 * row["samples_test"]


def test_split_is_identical_for_a_fixed_seed_and_differs_for_another():
    index = _index({"a": 30, "b": 30}, 2)
    first, _ = split_by_sample(index, SPLIT_PARAMS, RAW_PARAMS)
    again, _ = split_by_sample(index.sample(frac=1, random_state=1), SPLIT_PARAMS, RAW_PARAMS)
    other, _ = split_by_sample(
        index, SplitSettings(val_fraction=0.2, test_fraction=0.2, seed=8), RAW_PARAMS
    )
    pd.testing.assert_frame_equal(first, again)
    test_samples = set(first.loc[first["split"] == "test", "sample_id"])
    assert test_samples != set(other.loc[other["split"] == "test", "sample_id"])


def test_split_refuses_a_single_class_naming_its_count_as_a_plain_number():
    # A user error (kedro run shows it without a traceback); no NumPy repr in it.
    with pytest.raises(SplitError, match=r"\(\{'only': 10\}\); a classifier needs at least two"):
        split_by_sample(_index({"only": 10}, 2), SPLIT_PARAMS, RAW_PARAMS)


def test_split_refuses_a_class_with_too_few_samples():
    with pytest.raises(SplitError, match=r"\{'rare': 2\}.*fewer than 3 physical samples"):
        split_by_sample(_index({"common": 20, "rare": 2}, 4), SPLIT_PARAMS, RAW_PARAMS)


def test_split_refuses_fractions_that_leave_a_class_out_of_a_split():
    with pytest.raises(SplitError, match=r"missing from a split|Cannot split"):
        split_by_sample(
            _index({"common": 40, "rare": 3}, 1),
            SplitSettings(val_fraction=0.05, test_fraction=0.05, seed=1),
            RAW_PARAMS,
        )


@pytest.mark.parametrize("fractions", [(0.0, 0.2), (0.5, 0.5), (0.2, 1.2)])
def test_split_refuses_impossible_fractions(fractions):
    # The split's parameters cannot even be built: the run stops before the split.
    val, test = fractions
    with pytest.raises(ValueError, match=r"greater than 0|less than 1|must be below 1"):
        SplitSettings(val_fraction=val, test_fraction=test, seed=1)
