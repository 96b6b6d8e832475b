"""The data-processing pipeline on ``SequentialRunner``: a tiny photo folder in, the checked
index, the split by physical sample, the preprocessing and the decoded-image cache out."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import torch

from tests.helpers.image_files import write_image, write_placeholder
from tests.helpers.in_memory_runs import run_in_memory
from tests.helpers.parameters import TINY_MODEL, project_parameters
from tests.helpers.photos import write_photo, write_photo_folder
from transfer_study.datasets import PhotoFolderDataset
from transfer_study.models.preprocessing import (
    Preprocessing,
    pretrained_preprocessing,
    scaled_to_input_size,
)
from transfer_study.pipelines.data_processing import create_pipeline
from transfer_study.training.image_cache import image_cache_key

CLASSES = ("ant", "bee", "cat")
SAMPLES_PER_CLASS = 6
N_ANGLES = 2
SPLITS = {"train", "val", "test"}
# Files the ingestion must exclude or convert, with the status and reason it reports.
NOT_AN_IMAGE = "cat/s9000_a00.jpg"
DUPLICATE = "bee/s9001_a00.jpg"
DUPLICATED = "bee/s0006_a00.jpg"  # the first sample of the second class
GRAYSCALE = "ant/s9002_a00.png"  # flat and small: also suspicious
# Kept, but listed as suspicious.
PLACEHOLDER = "bee/s9003_a00.jpg"
TINY = "cat/s9004_a00.jpg"


@pytest.fixture(scope="module")
def photos(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """3 classes × 6 samples × 2 angles, plus a text file, a duplicate, a grey PNG, a
    placeholder card and a tiny photo."""
    root = write_photo_folder(
        tmp_path_factory.mktemp("data_processing") / "photos",
        dict.fromkeys(CLASSES, SAMPLES_PER_CLASS),
        N_ANGLES,
    )
    (root / NOT_AN_IMAGE).write_text("shot list for saturday\n")
    shutil.copy(root / DUPLICATED, root / DUPLICATE)
    write_image(root / GRAYSCALE, mode="L", color=90, size=(24, 24))
    write_placeholder(root / PLACEHOLDER)
    write_photo(root / TINY, seed=9004, size=16)
    return root


def _inputs(photos: Path, overrides: dict[str, Any] | None = None) -> dict[str, Any]:
    parameters = project_parameters(
        {**TINY_MODEL, "raw_images.path": str(photos), **(overrides or {})}, create_pipeline()
    )
    # The catalog's own dataset class, pointed at the folder.
    return {**parameters, "raw_images": PhotoFolderDataset(path=str(photos))}


@pytest.fixture(scope="module")
def outputs(photos: Path) -> dict[str, Any]:
    return run_in_memory(create_pipeline(), _inputs(photos))


def test_pipeline_reads_the_photo_folder_and_its_parameter_blocks():
    pipeline = create_pipeline()
    assert pipeline.inputs() == {
        "raw_images",
        "params:raw_images",
        "params:split",
        "params:model",
    }
    assert pipeline.outputs() == {
        "data_quality",
        "split_summary",
        "decoded_images",
        "sample_grouping",
    }
    assert pipeline.all_outputs() == pipeline.outputs() | {"image_index", "split", "preprocessing"}


def test_every_usable_photo_is_indexed_once_and_bad_files_are_reported(outputs):
    index = outputs["image_index"]
    # + the converted grey PNG, the placeholder and the tiny photo: suspicious but kept
    expected = SAMPLES_PER_CLASS * len(CLASSES) * N_ANGLES + 3
    assert len(index) == expected
    assert index["path"].is_unique
    assert NOT_AN_IMAGE not in set(index["path"])
    assert DUPLICATE not in set(index["path"])
    assert {DUPLICATED, PLACEHOLDER, TINY} <= set(index["path"])
    assert sorted(index["label"].unique()) == list(CLASSES)

    quality = outputs["data_quality"]
    assert sorted(zip(quality["path"], quality["status"], strict=True)) == sorted(
        [
            (NOT_AN_IMAGE, "excluded"),
            (DUPLICATE, "excluded"),
            (GRAYSCALE, "converted"),
            (GRAYSCALE, "suspicious"),
            (PLACEHOLDER, "suspicious"),
            (TINY, "suspicious"),
        ]
    )
    reason = quality.set_index(["path", "status"])["reason"]
    assert "not an image" in reason[NOT_AN_IMAGE, "excluded"]
    assert DUPLICATED in reason[DUPLICATE, "excluded"]
    assert "of its pixels are one colour" in reason[PLACEHOLDER, "suspicious"]
    assert "only 16x16 pixels" in reason[TINY, "suspicious"]
    assert quality.set_index("path").loc[NOT_AN_IMAGE, "label"] == "cat"


def test_suspicious_photos_are_split_and_cached_like_any_other(outputs):
    split = outputs["split"].set_index("path")
    assert {PLACEHOLDER, TINY} <= set(split.index)
    assert split.loc[PLACEHOLDER, "label"] == "bee"
    decoded = next(iter(outputs["decoded_images"].values()))()
    assert {PLACEHOLDER, TINY} <= set(decoded["paths"])


def test_split_keeps_every_sample_in_one_split_and_every_class_in_every_split(outputs):
    split = outputs["split"]
    assert len(split) == len(outputs["image_index"])
    assert set(split["path"]) == set(outputs["image_index"]["path"])
    assert split.groupby("sample_id")["split"].nunique().eq(1).all()
    assert split.groupby("sample_id")["label"].nunique().eq(1).all()
    for label, rows in split.groupby("label"):
        assert set(rows["split"]) == SPLITS, label
    # Both angles of a two-angle sample travel together.
    two_angles = split[split["sample_id"] == "ant/s0000"]  # ids per class folder
    assert len(two_angles) == N_ANGLES
    assert two_angles["split"].nunique() == 1


def test_split_summary_counts_the_split_samples_and_photos(outputs):
    split, summary = outputs["split"], outputs["split_summary"].set_index("label")
    for (label, name), rows in split.groupby(["label", "split"]):
        assert summary.loc[label, f"samples_{name}"] == rows["sample_id"].nunique()
        assert summary.loc[label, f"photos_{name}"] == len(rows)
    assert summary.filter(like="photos_").to_numpy().sum() == len(split)


def test_test_fraction_of_the_parameters_reaches_the_split(outputs):
    samples = outputs["split"].drop_duplicates("sample_id")
    parameters = project_parameters()
    test_fraction = parameters["params:split.test_fraction"]
    n_test = (samples["split"] == "test").sum()
    # sklearn rounds the held-out count up; stratification may move one sample per class.
    assert abs(n_test - test_fraction * len(samples)) <= len(CLASSES)


def test_preprocessing_follows_the_model_block(outputs):
    expected = scaled_to_input_size(
        pretrained_preprocessing(TINY_MODEL["model.backbone"]), TINY_MODEL["model.image_size"]
    )
    assert outputs["preprocessing"] == expected.to_dict()
    assert outputs["preprocessing"]["input_size"] == TINY_MODEL["model.image_size"]


def test_decoded_images_are_cached_once_per_split_photo_at_the_resize_size(outputs):
    split, preprocessing = outputs["split"], Preprocessing.from_dict(outputs["preprocessing"])
    cache = outputs["decoded_images"]
    assert list(cache) == [image_cache_key(split, preprocessing)]
    decoded = next(iter(cache.values()))()
    size = preprocessing.resize_size
    assert decoded["paths"] == split["path"].tolist()
    assert decoded["images"].shape == (len(split), 3, size, size)
    assert decoded["images"].dtype == torch.uint8
    assert decoded["images"].float().std() > 0  # noise photos, not blank frames


def test_split_seed_parameter_reshuffles_samples_but_keeps_them_whole(photos, outputs):
    """Only the split node, fed the index of the full run, with another seed."""
    split_only = (
        create_pipeline().from_nodes("split_by_sample_node").to_nodes("split_by_sample_node")
    )
    assert {node.name for node in split_only.nodes} == {"split_by_sample_node"}
    inputs = {**_inputs(photos, {"split.seed": 7}), "image_index": outputs["image_index"]}
    reseeded = run_in_memory(split_only, inputs)["split"]
    by_sample = reseeded.drop_duplicates("sample_id").set_index("sample_id")["split"]
    before = outputs["split"].drop_duplicates("sample_id").set_index("sample_id")["split"]
    assert reseeded.groupby("sample_id")["split"].nunique().eq(1).all()
    assert not by_sample.sort_index().equals(before.sort_index())
    pd.testing.assert_series_equal(
        by_sample.value_counts().sort_index(), before.value_counts().sort_index()
    )


def test_a_folder_with_one_class_stops_the_run_at_the_split(tmp_path: Path):
    one_class = write_photo_folder(tmp_path / "photos", {"ant": 6})
    with pytest.raises(ValueError, match="at least two"):
        run_in_memory(create_pipeline(), _inputs(one_class))
