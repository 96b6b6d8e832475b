"""A real ``kedro run`` stopped by the user's data, parameters or setup: one message and
exit code 1, no traceback on the console, the traceback in info.log."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers.kedro_project import make_project, project_environment, run_pipeline
from tests.helpers.photos import write_photo_folder
from transfer_study.tracking.server_check import RETRY_DEFAULTS, TrackingServerError

pytestmark = pytest.mark.slow

# Far below the ~4 minutes MLflow retried a dead server for; loose, as the machine may be busy.
DEAD_SERVER_BOUND_S = 30


@pytest.fixture
def project(tmp_path: Path) -> Iterator[Path]:
    with project_environment(make_project(tmp_path / "project")) as root:
        yield root


@pytest.fixture
def dead_uri() -> str:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"http://127.0.0.1:{port}"  # nothing listens once the probe is closed


def _kedro_run(project: Path, *args: str, **environment: str) -> subprocess.CompletedProcess:
    command = [str(Path(sys.executable).parent / "kedro"), "run", *args]
    return subprocess.run(
        command,
        cwd=project,
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, **environment},
    )


def _assert_one_message(completed: subprocess.CompletedProcess, project: Path, *expected: str):
    report = completed.stdout[-3000:] + completed.stderr[-3000:]
    assert completed.returncode == 1, report
    for text in expected:
        assert text in completed.stderr, report
    assert "(A problem with the data, parameters or setup, not a bug" in completed.stderr
    for stream in (completed.stdout, completed.stderr):
        assert "Traceback" not in stream
        assert "╭" not in stream  # a rich traceback's frame
    assert "Traceback (most recent call last)" in (project / "info.log").read_text()


def test_a_missing_photo_folder(project: Path):
    completed = _kedro_run(
        project, "--pipeline=data_processing", f"--params=raw_images.path={project / 'nowhere'}"
    )
    _assert_one_message(
        completed,
        project,
        f"Error: Photo folder '{project / 'nowhere'}' does not exist.",
        "kedro run --pipeline=demo_data",
    )


def test_a_folder_with_one_class(project: Path, tmp_path: Path):
    photos = write_photo_folder(tmp_path / "one", {"cat": 6}, n_angles=1)
    completed = _kedro_run(
        project, "--pipeline=data_processing", f"--params=raw_images.path={photos}"
    )
    _assert_one_message(completed, project, "({'cat': 6}); a classifier needs at least two")


def test_a_bad_parameter_value(project: Path):
    completed = _kedro_run(project, "--params=split.val_fraction=2")
    _assert_one_message(
        completed,
        project,
        "Error: 1 invalid parameter(s); nothing has run:",
        "split.val_fraction = 2 (from --params): Input should be less than 1",
    )


def test_a_tracking_server_that_is_down(project: Path, dead_uri: str):
    completed = _kedro_run(project, "--pipeline=data_processing", MLFLOW_TRACKING_URI=dead_uri)
    _assert_one_message(
        completed,
        project,
        f"The MLflow tracking server {dead_uri} (MLFLOW_TRACKING_URI) does not answer",
        "unset MLFLOW_TRACKING_URI",
    )


def test_a_tracking_server_that_is_down_stops_the_run_in_seconds(
    project: Path, dead_uri: str, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", dead_uri)
    for name in RETRY_DEFAULTS:  # the hook sets them: restore them afterwards
        monkeypatch.setenv(name, "")
        monkeypatch.delenv(name)
    start = time.monotonic()
    with pytest.raises(TrackingServerError, match=dead_uri):
        run_pipeline(project, pipeline_name="data_processing")
    assert time.monotonic() - start < DEAD_SERVER_BOUND_S
