"""The leak guard on a real project copy: multi-view names the pattern cannot read stop
the run before the split; the right pattern keeps every object in one split."""

from __future__ import annotations

import shutil
from pathlib import Path

import pandas as pd
import pytest

from tests.helpers.kedro_project import (
    TINY_DEMO,
    make_project,
    project_environment,
    run_pipeline,
)

pytestmark = pytest.mark.slow

MULTI_VIEW_PATTERN = r"(?P<sample_id>.+)_a(?P<angle>\d+-\d+)"


def _renamed_demo_photos(project: Path, target: Path) -> Path:
    """The demo photos as ``<class>/mug<sample>_a030-<azimuth>.jpg``."""
    for photo in sorted((project / "data/01_raw/demo_fragments").rglob("*.jpg")):
        sample, angle = photo.stem.removeprefix("s").split("_a")
        name = f"mug{int(sample)}_a030-{120 * int(angle):03d}.jpg"
        (target / photo.parent.name).mkdir(parents=True, exist_ok=True)
        shutil.copy(photo, target / photo.parent.name / name)
    return target


def test_multi_view_names_stop_the_run_until_a_pattern_groups_them(tmp_path: Path):
    with project_environment(make_project(tmp_path / "project")) as project:
        run_pipeline(project, TINY_DEMO, pipeline_name="demo_data")
        photos = _renamed_demo_photos(project, tmp_path / "mugs")
        params = {**TINY_DEMO, "raw_images.path": str(photos)}
        with pytest.raises(Exception, match=r"look like several photos") as stopped:
            run_pipeline(project, params, pipeline_name="data_processing")
        assert "mug" in str(stopped.value) and "(?P<sample_id>...)" in str(stopped.value)
        assert not (project / "data/05_model_input/split.csv").exists()

        grouped = {**params, "raw_images.filename_pattern": MULTI_VIEW_PATTERN}
        run_pipeline(project, grouped, pipeline_name="data_processing")
        split = pd.read_csv(project / "data/05_model_input/split.csv", dtype=str)
        assert split["sample_id"].nunique() == TINY_DEMO["demo_data.n_samples"]
        assert (split.groupby("sample_id")["split"].nunique() == 1).all()
        assert set(split["angle"]) == {"030-000", "030-120"}
