"""The inference pipeline, registered by name and run end to end after a tiny study."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest
from kedro.framework.startup import bootstrap_project

from tests.helpers.image_files import noise_jpeg_bytes
from tests.helpers.kedro_project import (
    REPO_ROOT,
    TINY_DEMO,
    TINY_TRAINING,
    make_project,
    project_environment,
    run_pipeline,
)
from tests.helpers.photos import write_photo
from transfer_study.pipeline_registry import register_pipelines

PREDICTIONS = Path("data/07_model_output/predictions.csv")
COLUMNS = ["path", "predicted", "probability", "top_k", "status", "error"]
CLI_TIMEOUT = 300


@pytest.fixture
def project(tmp_path: Path) -> Iterator[Path]:
    with project_environment(make_project(tmp_path / "project")) as root:
        yield root


def _new_photos(folder: Path) -> Path:
    """Unlabeled photos, flat and nested, with broken and system files among them."""
    write_photo(folder / "beach1.jpg", seed=1, size=48)
    write_photo(folder / "day2" / "beach2.png", seed=2, size=48, fmt="PNG")
    write_photo(folder / "day2" / "deeper" / "beach3.jpg", seed=3, size=48)
    (folder / "day2" / "notes.txt").write_text("tide was low\n")
    (folder / "truncated.jpg").write_bytes(noise_jpeg_bytes()[:200])
    (folder / ".DS_Store").write_bytes(b"\x00\x00\x00\x01Bud1")
    return folder


def _predictions(project: Path) -> pd.DataFrame:
    return pd.read_csv(project / PREDICTIONS, keep_default_na=False, na_values={"probability": ""})


def test_inference_is_registered_but_not_part_of_a_plain_kedro_run():
    bootstrap_project(REPO_ROOT)
    pipelines = register_pipelines()
    inference = {node.name for node in pipelines["inference"].nodes}
    assert inference == {"select_model_node", "classify_photos_node"}
    assert not inference & {node.name for node in pipelines["__default__"].nodes}


@pytest.mark.slow
def test_new_photos_are_classified_by_the_best_variant_and_bad_files_listed(
    project: Path, tmp_path: Path
):
    run_pipeline(project, TINY_DEMO, pipeline_name="demo_data")
    run_pipeline(project, {**TINY_DEMO, **TINY_TRAINING})
    photos = _new_photos(tmp_path / "new photos")
    comparison = pd.read_csv(project / "data/08_reporting/variant_comparison.csv")
    (best,) = comparison.loc[comparison["selected"], "variant"]

    run_pipeline(project, {"inference.photos": str(photos)}, pipeline_name="inference")
    by_best = _predictions(project)

    assert list(by_best.columns) == COLUMNS
    assert by_best["path"].tolist() == [
        "beach1.jpg",
        "day2/beach2.png",
        "day2/deeper/beach3.jpg",
        "day2/notes.txt",
        "truncated.jpg",
    ]
    rows = by_best.set_index("path")
    assert rows.loc["day2/notes.txt", "error"].startswith("not an image")
    assert rows.loc["truncated.jpg", "status"] == "skipped"
    good = rows[rows["status"] == "ok"]
    assert len(good) == 3
    assert set(good["predicted"]) <= {"plastic", "natural"}
    assert good["probability"].between(0.5, 1.0).all()  # two classes: the winner has ≥ ½
    for predicted, top_k in zip(good["predicted"], good["top_k"], strict=True):
        top = json.loads(top_k)
        assert next(iter(top)) == predicted
        assert sum(top.values()) == pytest.approx(1.0, abs=1e-5)

    # The same photos through the best variant by name give the same file.
    run_pipeline(
        project,
        {"inference.photos": str(photos), "inference.model": best},
        pipeline_name="inference",
    )
    pd.testing.assert_frame_equal(_predictions(project), by_best)

    # One flag on the command line, and a checkpoint file instead of a variant.
    checkpoint = project / "data/06_models/scratch/model.pt"
    command = [
        str(Path(sys.executable).parent / "kedro"),
        "run",
        "--pipeline=inference",
        f"--params=inference.photos={photos},inference.model={checkpoint}",
    ]
    completed = subprocess.run(
        command, cwd=project, capture_output=True, text=True, timeout=CLI_TIMEOUT
    )
    assert completed.returncode == 0, completed.stdout[-3000:] + completed.stderr[-3000:]
    assert "checkpoint file" in completed.stdout + completed.stderr
    assert "truncated.jpg" in completed.stdout + completed.stderr  # the skipped file is logged
    by_file = _predictions(project)
    assert by_file["status"].tolist() == by_best["status"].tolist()


@pytest.mark.slow
def test_inference_before_any_training_says_what_to_do(project: Path, tmp_path: Path):
    photos = _new_photos(tmp_path / "new photos")
    with pytest.raises(ValueError, match="No trained model") as raised:
        run_pipeline(project, {"inference.photos": str(photos)}, pipeline_name="inference")
    assert "kedro run" in str(raised.value)
