"""The leak guard on a real project copy: multi-view names the pattern cannot read stop
the run before the split, the right pattern keeps every object in one split, and re-saved
copies under unrelated names are stopped by the near-copy check before any training."""

from __future__ import annotations

import hashlib
import io
import json
import shutil
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest
from PIL import Image

from tests.helpers.kedro_project import (
    TINY_DEMO,
    make_project,
    project_environment,
    run_pipeline,
)

pytestmark = pytest.mark.slow

MULTI_VIEW_PATTERN = r"(?P<sample_id>.+)_a(?P<angle>\d+-\d+)"
CHECK = "check_near_copies_node"


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A project copy with the tiny demo photos (24 fragments × 2 angles)."""
    with project_environment(make_project(tmp_path_factory.mktemp("leak") / "p")) as root:
        run_pipeline(root, TINY_DEMO, pipeline_name="demo_data")
        yield root


def _demo_photos(project: Path) -> list[Path]:
    return sorted((project / "data/01_raw/demo_fragments").rglob("*.jpg"))


def _renamed_demo_photos(project: Path, target: Path) -> Path:
    """The demo photos as ``<class>/mug<sample>_a030-<azimuth>.jpg``."""
    for photo in _demo_photos(project):
        sample, angle = photo.stem.removeprefix("s").split("_a")
        name = f"mug{int(sample)}_a030-{120 * int(angle):03d}.jpg"
        (target / photo.parent.name).mkdir(parents=True, exist_ok=True)
        shutil.copy(photo, target / photo.parent.name / name)
    return target


def _resaved_copies(project: Path, target: Path) -> Path:
    """Each demo photo twice, the second re-encoded, under unrelated hexadecimal names."""
    for photo in _demo_photos(project):
        folder = target / photo.parent.name
        folder.mkdir(parents=True, exist_ok=True)
        buffer = io.BytesIO()
        Image.open(photo).save(buffer, format="JPEG", quality=70)  # other bytes, same view
        for version, data in enumerate((photo.read_bytes(), buffer.getvalue())):
            name = hashlib.sha256(f"{photo}{version}".encode()).hexdigest()[:12]
            (folder / f"{name}.jpg").write_bytes(data)
    return target


def test_multi_view_names_stop_the_run_until_a_pattern_groups_them(project, tmp_path):
    photos = _renamed_demo_photos(project, tmp_path / "mugs")
    params = {**TINY_DEMO, "raw_images.path": str(photos)}
    (project / "data/05_model_input/split.csv").unlink(missing_ok=True)
    with pytest.raises(Exception, match=r"look like several photos") as stopped:
        run_pipeline(project, params, pipeline_name="data_processing")
    assert "mug" in str(stopped.value) and "(?P<sample_id>...)" in str(stopped.value)
    assert not (project / "data/05_model_input/split.csv").exists()

    grouped = {**params, "raw_images.filename_pattern": MULTI_VIEW_PATTERN}
    run_pipeline(project, grouped, to_nodes=[CHECK])
    split = pd.read_csv(project / "data/05_model_input/split.csv", dtype=str)
    assert split["sample_id"].nunique() == TINY_DEMO["demo_data.n_samples"]
    assert (split.groupby("sample_id")["split"].nunique() == 1).all()
    assert set(split["angle"]) == {"030-000", "030-120"}
    grouping = json.loads((project / "data/08_reporting/grouping.json").read_text())
    assert grouping["method"] == "file-name pattern"
    assert grouping["near_copy"]["checked"] is True
    assert grouping["near_copy"]["share"] <= grouping["near_copy"]["max_share"]


def test_resaved_copies_under_unrelated_names_stop_before_any_training(project, tmp_path):
    photos = _resaved_copies(project, tmp_path / "copies")
    params = {**TINY_DEMO, "raw_images.path": str(photos)}
    with pytest.raises(Exception, match=r"near-copy in the training split") as stopped:
        run_pipeline(project, params, to_nodes=[CHECK, "scratch.train_node"])
    assert "several photos of the same objects" in str(stopped.value)
    assert not (project / "data/06_models/scratch/model.pt").exists()
    grouping = json.loads((project / "data/02_intermediate/sample_grouping.json").read_text())
    assert grouping["method"] == "one per photo"
