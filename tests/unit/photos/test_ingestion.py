"""Ingestion: folder and manifest layouts, sample ids, bad files, duplicates, clear errors."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from tests.helpers.image_files import (
    AWKWARD_CONVERSIONS,
    AWKWARD_EXPECTATIONS,
    write_awkward_files,
    write_placeholder,
)
from tests.helpers.photos import write_photo, write_photo_folder
from transfer_study.config import RawImagesSettings, SplitSettings
from transfer_study.datasets import PhotoFolderDataset
from transfer_study.photos.ingestion import DataLayoutError
from transfer_study.pipelines.data_processing.nodes import ingest_images, split_by_sample

AWKWARD_FOLDER = "things"
PARAMS = {
    "path": "photos",
    "manifest": "manifest.csv",
    "filename_pattern": r"^(?P<sample_id>.+)_a(?P<angle>\d+)$",
    "classes": None,
    "check_draft_size": None,
}


def _ingest_with_grouping(
    folder: Path, **overrides
) -> tuple[pd.DataFrame, pd.DataFrame, dict[str, Any]]:
    settings = RawImagesSettings(**{**PARAMS, **overrides})
    return ingest_images(PhotoFolderDataset(path=str(folder)).load(), settings)


def _ingest(folder: Path, **overrides) -> tuple[pd.DataFrame, pd.DataFrame]:
    index, quality, _ = _ingest_with_grouping(folder, **overrides)
    return index, quality


def test_class_folders_give_labels_sample_ids_and_angles(photo_folder):
    index, quality = _ingest(photo_folder({"cat": 3, "dog": 4}, n_angles=3))
    assert len(index) == 21
    assert set(index["label"]) == {"cat", "dog"}
    assert index["sample_id"].nunique() == 7
    row = index.set_index("path").loc["dog/s0004_a02.jpg"]
    assert (row["label"], row["sample_id"], row["angle"]) == ("dog", "dog/s0004", "02")
    assert index["sha256"].str.len().eq(64).all()
    assert quality.empty


def test_without_a_pattern_every_photo_is_its_own_sample(photo_folder):
    index, _ = _ingest(photo_folder({"cat": 2, "dog": 2}, n_angles=2), filename_pattern=None)
    assert index["sample_id"].nunique() == len(index) == 8


def _numbered_per_class(root: Path, labels: tuple[str, ...], n_samples: int) -> Path:
    """``<label>/s000_a00.jpg`` …: the same numbering in every class folder, distinct bytes."""
    for offset, label in enumerate(labels):
        for sample in range(n_samples):
            for angle in range(2):
                seed = 1000 * offset + 10 * sample + angle
                write_photo(root / label / f"s{sample:03d}_a{angle:02d}.jpg", seed=seed)
    return root


def test_sample_numbering_that_restarts_in_every_class_folder_gives_samples_per_class(tmp_path):
    folder = _numbered_per_class(tmp_path, ("red", "blue"), n_samples=5)
    index, quality = _ingest(folder)
    assert quality.empty
    row = index.set_index("path").loc["blue/s000_a01.jpg"]
    assert (row["sample_id"], row["angle"]) == ("blue/s000", "01")
    assert index["sample_id"].nunique() == 10
    split, _ = split_by_sample(
        index,
        SplitSettings(val_fraction=0.2, test_fraction=0.2, seed=1),
        RawImagesSettings(**PARAMS),
    )
    assert split.groupby("sample_id")["split"].nunique().eq(1).all()
    assert split.groupby("sample_id")["label"].nunique().eq(1).all()
    assert split.groupby("sample_id").size().eq(2).all()  # both angles, one class


def test_folder_wide_sample_ids_are_one_parameter_away_and_refuse_an_id_under_two_labels(
    tmp_path,
):
    write_photo(tmp_path / "cat" / "001_a1.jpg", seed=1)
    write_photo(tmp_path / "dog" / "001_a1.jpg", seed=2)
    with pytest.raises(DataLayoutError, match=r"more than one label.*sample_ids_per_class: true"):
        _ingest(tmp_path, sample_ids_per_class=False)
    index, _ = _ingest(tmp_path)
    assert sorted(index["sample_id"]) == ["cat/001", "dog/001"]


def test_a_manifests_sample_ids_stay_folder_wide(tmp_path):
    for i in range(3):
        write_photo(tmp_path / "any" / f"img{i}_a0.jpg", seed=i)
    _write_manifest(
        tmp_path,
        "path,label,sample_id\nany/img0_a0.jpg,cat,frag1\nany/img1_a0.jpg,cat,frag2\n"
        "any/img2_a0.jpg,dog,frag1\n",
    )
    with pytest.raises(DataLayoutError, match=r"'frag1'.*manifest.csv gives one sample_id"):
        _ingest(tmp_path)
    _write_manifest(tmp_path, "path,label\nany/img0_a0.jpg,cat\nany/img2_a0.jpg,dog\n")
    index, _ = _ingest(tmp_path)  # no sample_id column: ids from the names, per label
    assert sorted(index["sample_id"]) == ["cat/img0", "dog/img2"]


def test_a_photo_filed_byte_identical_under_two_labels_is_reported_and_dropped(tmp_path, caplog):
    folder = _numbered_per_class(tmp_path, ("red", "blue"), n_samples=2)
    shutil.copy(folder / "red" / "s001_a00.jpg", folder / "blue" / "s001_a00.jpg")
    with caplog.at_level("WARNING", logger="transfer_study.photos.duplicates"):
        index, quality = _ingest(folder)
    reasons = quality.set_index("path")["reason"]
    for path in ("red/s001_a00.jpg", "blue/s001_a00.jpg"):
        assert "byte-identical" in reasons[path] and "different labels" in reasons[path]
        assert path not in set(index["path"])
    assert "blue/s001_a00.jpg" in caplog.text and "labelling" in caplog.text


@pytest.fixture(scope="module")
def awkward_ingested(tmp_path_factory: pytest.TempPathFactory) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The image index and data-quality report of every awkward file beside good photos."""
    root = tmp_path_factory.mktemp("awkward")
    write_awkward_files(root / AWKWARD_FOLDER)
    write_photo_folder(root, {"other": 3})
    return _ingest(root, filename_pattern=None)  # the awkward names group nothing


@pytest.mark.parametrize("name", sorted(AWKWARD_EXPECTATIONS))
def test_each_awkward_file_is_kept_converted_or_excluded_with_its_own_quality_row(
    awkward_ingested: tuple[pd.DataFrame, pd.DataFrame], name: str
):
    index, quality = awkward_ingested
    path = f"{AWKWARD_FOLDER}/{name}"
    # The awkward files are flat colours: also listed as suspicious, tested on their own.
    rows = quality[(quality["path"] == path) & (quality["status"] != "suspicious")]
    excluded_because = AWKWARD_EXPECTATIONS[name]
    if excluded_because is None and name not in AWKWARD_CONVERSIONS:
        assert rows.empty, rows.to_dict("records")
        assert path in set(index["path"])
        return
    assert len(rows) == 1, rows.to_dict("records")
    row = rows.iloc[0]
    assert row["label"] == AWKWARD_FOLDER
    if excluded_because is None:
        assert row["status"] == "converted"
        assert row["reason"] == "; ".join(AWKWARD_CONVERSIONS[name])
        assert path in set(index["path"])
    else:
        assert row["status"] == "excluded"
        assert excluded_because.lower() in row["reason"].lower(), row["reason"]
        assert path not in set(index["path"])


def test_only_excluded_and_converted_files_get_a_quality_row(
    awkward_ingested: tuple[pd.DataFrame, pd.DataFrame],
):
    _, quality = awkward_ingested
    quality = quality[quality["status"] != "suspicious"]
    reported = {
        f"{AWKWARD_FOLDER}/{name}"
        for name, excluded_because in AWKWARD_EXPECTATIONS.items()
        if excluded_because is not None or name in AWKWARD_CONVERSIONS
    }
    assert sorted(quality["path"]) == sorted(reported)
    assert list(quality.columns) == ["path", "label", "status", "reason"]


def test_flat_and_tiny_awkward_files_are_kept_and_listed_as_suspicious(
    awkward_ingested: tuple[pd.DataFrame, pd.DataFrame],
):
    index, quality = awkward_ingested
    suspicious = quality[quality["status"] == "suspicious"].set_index("path")["reason"]
    assert "one colour" in suspicious[f"{AWKWARD_FOLDER}/good.png"]  # a flat 48x40 + marker
    assert "only 1x1 pixels" in suspicious[f"{AWKWARD_FOLDER}/tiny_1x1.png"]
    assert set(suspicious.index) <= set(index["path"])
    assert not any(path.startswith("other/") for path in suspicious.index)  # noise photos


def test_a_placeholder_and_a_tiny_photo_are_kept_and_listed_as_suspicious(photo_folder, caplog):
    folder = photo_folder({"cat": 3, "dog": 3})
    write_placeholder(folder / "cat" / "s0100_a00.jpg")
    write_photo(folder / "dog" / "s0101_a00.jpg", seed=7, size=20)
    with caplog.at_level("WARNING", logger="transfer_study.photos.ingestion"):
        index, quality = _ingest(folder)
    assert list(quality["status"]) == ["suspicious", "suspicious"]
    reasons = quality.set_index("path")["reason"]
    assert "of its pixels are one colour" in reasons["cat/s0100_a00.jpg"]
    assert "only 20x20 pixels" in reasons["dog/s0101_a00.jpg"]
    assert {"cat/s0100_a00.jpg", "dog/s0101_a00.jpg"} <= set(index["path"])
    assert len(index) == 14
    assert "cat/s0100_a00.jpg" in caplog.text and "suspicious" in caplog.text


def test_hidden_and_system_files_are_ignored_silently(photo_folder):
    folder = photo_folder({"cat": 2, "dog": 2})
    (folder / ".DS_Store").write_bytes(b"\x00\x01")
    (folder / "cat" / "._s0000_a00.jpg").write_bytes(b"AppleDouble")
    (folder / "dog" / "Thumbs.db").write_bytes(b"thumbs")
    index, quality = _ingest(folder)
    assert len(index) == 8
    assert quality.empty


def test_files_outside_class_folders_are_reported(photo_folder):
    folder = photo_folder({"cat": 2, "dog": 2})
    write_photo(folder / "loose.jpg", seed=99)
    _, quality = _ingest(folder)
    assert quality.set_index("path").loc["loose.jpg", "reason"] == "not inside a class folder"


def test_byte_identical_files_are_reported_and_never_leak_between_splits(photo_folder):
    folder = photo_folder({"cat": 3, "dog": 3})
    shutil.copy(folder / "cat" / "s0000_a00.jpg", folder / "cat" / "s0001_a05.jpg")
    shutil.copy(folder / "cat" / "s0002_a00.jpg", folder / "dog" / "s0003_a07.jpg")
    index, quality = _ingest(folder)
    by_path = quality.set_index("path")
    assert "duplicate of cat/s0000_a00.jpg" in by_path.loc["cat/s0001_a05.jpg", "reason"]
    assert "different labels" in by_path.loc["dog/s0003_a07.jpg", "reason"]
    assert "different labels" in by_path.loc["cat/s0002_a00.jpg", "reason"]
    assert index["sha256"].is_unique
    assert "cat/s0000_a00.jpg" in set(index["path"])


def test_classes_parameter_restricts_and_reports_other_folders(photo_folder):
    index, quality = _ingest(photo_folder({"cat": 2, "dog": 2, "fox": 2}), classes=["cat", "dog"])
    assert set(index["label"]) == {"cat", "dog"}
    assert (quality["reason"] == "class not in raw_images.classes").sum() == 4


def _write_manifest(folder: Path, text: str) -> None:
    (folder / "manifest.csv").write_text(text)


def test_manifest_gives_labels_samples_and_angles(tmp_path):
    for i in range(4):
        write_photo(tmp_path / "any" / f"img{i}.jpg", seed=i)
    _write_manifest(
        tmp_path,
        "path,label,sample_id,angle\n"
        "any/img0.jpg,plastic,frag1,0\nany/img1.jpg,plastic,frag1,1\n"
        "any/img2.jpg,natural,frag2,0\n./any/img3.jpg,natural,,\n",
    )
    index, quality = _ingest(tmp_path)
    rows = index.set_index("path")
    assert rows.loc["any/img1.jpg", "sample_id"] == "frag1"
    assert rows.loc["any/img1.jpg", "angle"] == "1"
    assert rows.loc["any/img3.jpg", "sample_id"] == "any/img3.jpg"  # blank: own sample
    assert set(rows["label"]) == {"plastic", "natural"}
    assert quality.empty


def test_manifest_path_escaping_the_folder_is_refused(tmp_path):
    write_photo(tmp_path / "a.jpg", seed=1)
    _write_manifest(tmp_path, "path,label\n../outside.jpg,cat\n")
    with pytest.raises(DataLayoutError, match=r"row 2.*outside the photo folder"):
        _ingest(tmp_path)
    _write_manifest(tmp_path, "path,label\n/etc/passwd,cat\n")
    with pytest.raises(DataLayoutError, match="outside the photo folder"):
        _ingest(tmp_path)


def test_manifest_row_without_a_label_is_refused(tmp_path):
    write_photo(tmp_path / "a.jpg", seed=1)
    write_photo(tmp_path / "b.jpg", seed=2)
    _write_manifest(tmp_path, "path,label\na.jpg,cat\nb.jpg,\n")
    with pytest.raises(DataLayoutError, match=r"rows \[3\] have no label"):
        _ingest(tmp_path)


def test_manifest_with_an_unknown_label_is_refused(tmp_path):
    write_photo(tmp_path / "a.jpg", seed=1)
    _write_manifest(tmp_path, "path,label\na.jpg,cta\n")
    with pytest.raises(DataLayoutError, match=r"\['cta'\].*raw_images.classes"):
        _ingest(tmp_path, classes=["cat", "dog"])


def test_manifest_without_required_columns_is_refused(tmp_path):
    write_photo(tmp_path / "a.jpg", seed=1)
    _write_manifest(tmp_path, "file,class\na.jpg,cat\n")
    with pytest.raises(DataLayoutError, match="lacks the column"):
        _ingest(tmp_path)


def test_manifest_entry_for_a_missing_file_is_reported(tmp_path):
    write_photo(tmp_path / "a.jpg", seed=1)
    _write_manifest(tmp_path, "path,label\na.jpg,cat\ngone.jpg,dog\n")
    index, quality = _ingest(tmp_path)
    assert list(index["path"]) == ["a.jpg"]
    assert (
        quality.set_index("path").loc["gone.jpg", "reason"]
        == "listed in manifest.csv but not found"
    )


def test_the_index_records_each_photos_stored_size(tmp_path):
    write_photo_folder(tmp_path, {"a": 2, "b": 2}, size=40)
    index, _ = _ingest(tmp_path, check_draft_size=16)  # drafted decode, stored size kept
    assert (index["width"] == 40).all() and (index["height"] == 40).all()
