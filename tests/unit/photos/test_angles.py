"""Angles are labels: parsed as written, ordered naturally, kept as text through CSV."""

from __future__ import annotations

import io

import numpy as np
import pandas as pd
import pytest
import yaml

from tests.helpers.parameters import REPO_ROOT
from tests.helpers.photos import write_photo
from transfer_study.config import RawImagesSettings
from transfer_study.datasets import PhotoFolderDataset
from transfer_study.photos.angles import angle_rank, natural_key
from transfer_study.photos.ingestion import ingest
from transfer_study.photos.subsets import _training_photos


def test_natural_order_reads_digit_runs_as_numbers():
    labels = ["a10", "045-000", "a2", "030-240", "030-120", "az30_el15", "az30_el5"]
    assert sorted(labels, key=natural_key) == [
        "030-120",
        "030-240",
        "045-000",
        "a2",
        "a10",
        "az30_el5",
        "az30_el15",
    ]


def test_photos_without_an_angle_rank_last():
    ranks = angle_rank(pd.Series(["a10", None, "a2", np.nan]))
    assert ranks.tolist()[0] == 1 and ranks.tolist()[2] == 0
    assert ranks.isna().tolist() == [False, True, False, True]


@pytest.mark.parametrize(
    ("stem", "pattern", "angle"),
    [
        ("mug7_a030-120", r"(?P<sample_id>.+)_a(?P<angle>\d+-\d+)", "030-120"),
        ("mug7_az30_el15", r"(?P<sample_id>[^_]+)_(?P<angle>az\d+_el\d+)", "az30_el15"),
        ("s0001_a02", r"^(?P<sample_id>.+)_a(?P<angle>\d+)$", "02"),
    ],
)
def test_angle_labels_from_names_and_the_manifest_are_kept_as_written(
    tmp_path, stem, pattern, angle
):
    write_photo(tmp_path / "cup" / f"{stem}.jpg", seed=1)
    write_photo(tmp_path / "any" / "x.jpg", seed=2)
    (tmp_path / "manifest.csv").write_text(f"path,label\ncup/{stem}.jpg,cup\nany/x.jpg,bowl\n")
    settings = {"path": "p", "manifest": "manifest.csv", "filename_pattern": pattern}
    settings |= {"classes": None, "check_draft_size": None}
    raw = PhotoFolderDataset(path=str(tmp_path)).load()
    index, _, _ = ingest(raw, RawImagesSettings(**settings, max_ungrouped_share=0.5))
    assert index.set_index("path").loc[f"cup/{stem}.jpg", "angle"] == angle
    (tmp_path / "manifest.csv").write_text(
        f"path,label,sample_id,angle\ncup/{stem}.jpg,cup,m7,{angle}\nany/x.jpg,bowl,b1,\n"
    )
    index, _, _ = ingest(raw, RawImagesSettings(**settings))
    rows = index.set_index("path")
    assert rows.loc[f"cup/{stem}.jpg", "angle"] == angle
    assert pd.isna(rows.loc["any/x.jpg", "angle"])


def test_the_catalogs_csv_round_trip_keeps_angles_and_ids_as_text():
    """The load arguments conf/base/catalog.yml gives image_index and split."""
    catalog = yaml.safe_load((REPO_ROOT / "conf" / "base" / "catalog.yml").read_text())
    load_args = catalog["split"]["load_args"]
    assert load_args == catalog["image_index"]["load_args"]
    table = pd.DataFrame(
        {"path": ["a/1.jpg", "a/2.jpg"], "label": ["1", "NA"], "sample_id": ["0042", "7"]}
        | {"angle": ["030", None]}
    )
    loaded = pd.read_csv(io.StringIO(table.to_csv(index=False)), **load_args)
    assert loaded["angle"].tolist()[0] == "030" and pd.isna(loaded["angle"].tolist()[1])
    assert loaded["sample_id"].tolist() == ["0042", "7"]
    assert loaded["label"].tolist() == ["1", "NA"]


def test_the_ablation_orders_a_samples_photos_by_natural_angle_order():
    angles = ["045-000", "a10", None, "030-240", "a2", "030-120"]
    split = pd.DataFrame(
        {
            "path": [f"m/{i}.jpg" for i in range(6)],
            "label": ["mug"] * 6,
            "sample_id": ["m"] * 6,
            "angle": angles,
            "split": ["train"] * 6,
        }
    )
    ordered = _training_photos(split.sample(frac=1, random_state=3))
    assert ordered["angle"].tolist()[:5] == ["030-120", "030-240", "045-000", "a2", "a10"]
    assert pd.isna(ordered["angle"].tolist()[5])
