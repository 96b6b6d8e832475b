"""The coverage guard: how file names group photos into samples, and when a run stops."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.helpers.photos import write_photo, write_photo_folder
from transfer_study.config import RawImagesSettings
from transfer_study.datasets import PhotoFolderDataset
from transfer_study.photos.errors import SampleGroupingError
from transfer_study.photos.grouping import (
    ONE_PER_PHOTO,
    PATTERN,
    grouped_name_examples,
    grouping_summary,
)
from transfer_study.photos.ingestion import ingest

PATTERN_TEXT = r"^(?P<sample_id>.+)_a(?P<angle>\d+)$"
PARAMS = {
    "path": "photos",
    "manifest": "manifest.csv",
    "filename_pattern": PATTERN_TEXT,
    "classes": None,
    "check_draft_size": None,
}


def _ingest(folder: Path, **overrides):
    settings = RawImagesSettings(**{**PARAMS, **overrides})
    return ingest(PhotoFolderDataset(path=str(folder)).load(), settings)


def _loose_photos(root: Path, names: dict[str, list[str]]) -> Path:
    seed = 90_000  # far from write_photo_folder's seeds: no byte-identical copies
    for label, stems in names.items():
        for stem in stems:
            seed += 1
            write_photo(root / label / f"{stem}.jpg", seed=seed)
    return root


def test_a_pattern_that_matches_every_name_groups_every_photo(tmp_path):
    _, quality, grouping = _ingest(write_photo_folder(tmp_path, {"cat": 3, "dog": 3}, 2))
    assert grouping["method"] == PATTERN
    assert (grouping["photos"], grouping["samples"]) == (12, 6)
    assert grouping["ungrouped_photos"] == 0
    assert quality.empty


def test_photos_the_pattern_misses_under_the_share_are_their_own_ungrouped_samples(tmp_path):
    folder = write_photo_folder(tmp_path, {"cat": 6, "dog": 6}, 2)  # 24 grouped photos
    _loose_photos(folder, {"cat": ["IMG_0001"], "dog": ["IMG_0002"]})  # 2 of 26: 7.7 %
    index, quality, grouping = _ingest(folder)
    ungrouped = quality[quality["status"] == "ungrouped"]
    assert sorted(ungrouped["path"]) == ["cat/IMG_0001.jpg", "dog/IMG_0002.jpg"]
    assert ungrouped["reason"].str.contains(PATTERN_TEXT, regex=False).all()
    assert grouping["method"] == PATTERN
    assert grouping["ungrouped_share"] == pytest.approx(2 / 26, abs=1e-4)
    assert index.set_index("path").loc["cat/IMG_0001.jpg", "sample_id"] == "cat/IMG_0001.jpg"
    assert grouping["samples"] == 12 + 2


def test_photos_the_pattern_misses_over_the_share_stop_the_run_with_what_to_do(tmp_path):
    folder = write_photo_folder(tmp_path, {"cat": 2, "dog": 2}, 2)  # 8 grouped photos
    _loose_photos(folder, {"cat": ["IMG_0001", "IMG_0003"], "dog": ["IMG_0002"]})  # 3 of 11
    with pytest.raises(SampleGroupingError) as raised:
        _ingest(folder)
    message = str(raised.value)
    assert "cat/IMG_0001.jpg" in message
    assert PATTERN_TEXT in message
    assert "max_ungrouped_share" in message
    assert "(?P<sample_id>...)" in message and "manifest.csv" in message
    assert "filename_pattern: null" in message
    # A larger allowance lets the same folder through.
    _, quality, _ = _ingest(folder, max_ungrouped_share=0.5)
    assert (quality["status"] == "ungrouped").sum() == 3


def test_a_pattern_that_matches_no_name_means_one_sample_per_photo_and_says_so(tmp_path):
    folder = _loose_photos(
        tmp_path,
        {"ants": ["0013035", "5650366_e22b7e1065", "swiss-army-ant"], "bees": ["2962405283"]},
    )
    index, quality, grouping = _ingest(folder)
    assert grouping["method"] == ONE_PER_PHOTO
    assert "matches no file name" in grouping["statement"]
    assert "its own sample" in grouping["statement"]
    assert index["sample_id"].nunique() == len(index) == 4
    assert quality.empty  # one per photo is a reading, not a fault per photo


def test_names_that_look_like_several_views_per_object_are_not_read_one_per_photo(tmp_path):
    names = {
        "plastic": [f"frag{s}_a030-{z:03d}" for s in (1, 2, 3) for z in (0, 120)],
        "natural": [f"frag{s}_a030-{z:03d}" for s in (4, 5, 6) for z in (0, 120)],
    }
    folder = _loose_photos(tmp_path, names)
    with pytest.raises(SampleGroupingError, match=r"look like several photos.*allow_ungrouped"):
        _ingest(folder)
    _, _, grouping = _ingest(folder, allow_ungrouped=True)
    assert grouping["method"] == ONE_PER_PHOTO
    index, _, _ = _ingest(folder, filename_pattern=r"(?P<sample_id>.+)_a(?P<angle>\d+-\d+)")
    assert index["sample_id"].nunique() == 6


def test_one_name_prefix_per_class_does_not_look_like_views_of_one_object():
    paths = [f"{label}/{label}_{i}.jpg" for label in ("cat", "dog", "cow") for i in range(5)]
    labels = [path.split("/")[0] for path in paths]
    assert grouped_name_examples(paths, labels) == []
    unrelated = [f"ants/train_{i}_{i * 7919:x}.jpg" for i in range(10)]
    assert grouped_name_examples(unrelated, ["ants"] * 10) == []


def test_a_null_pattern_is_one_sample_per_photo_without_any_check(tmp_path):
    folder = _loose_photos(tmp_path, {"cat": ["m1_x", "m1_y"], "dog": ["m2_x", "m2_y"]})
    _, _, grouping = _ingest(folder, filename_pattern=None)
    assert grouping["method"] == ONE_PER_PHOTO
    assert "filename_pattern is null" in grouping["statement"]


def test_the_summary_states_how_samples_were_formed_and_the_near_copy_share():
    record = {
        "method": ONE_PER_PHOTO,
        "statement": "Every photo is its own sample (the pattern matches no file name).",
        "photos": 398,
        "samples": 398,
        "near_copy": {"checked": True, "near_copies": 0, "test_photos": 100}
        | {"share": 0.0, "threshold": 0.9},
    }
    summary = grouping_summary(record)
    assert summary.startswith("**Samples.** Every photo is its own sample")
    assert "398 photos of 398 samples" in summary
    assert "0 of 100 test photos (0.0 %)" in summary
    skipped = grouping_summary(record | {"near_copy": {"checked": False}})
    assert "not run" in skipped


def test_the_grouping_summary_goes_under_a_reports_title_or_at_its_top():
    from tests.helpers.grouping import GROUPING
    from transfer_study.photos.grouping import with_grouping_summary

    titled = with_grouping_summary("# How much data?\n\nbody", GROUPING).split("\n")
    assert titled[0] == "# How much data?" and titled[2].startswith("**Samples.**")
    untitled = with_grouping_summary("## Results\n\nbody", GROUPING).split("\n")
    assert untitled[0].startswith("**Samples.**") and untitled[2] == "## Results"
