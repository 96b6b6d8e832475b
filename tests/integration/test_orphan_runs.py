"""A `kedro run` killed with SIGKILL leaves its runs RUNNING; the next `kedro run` marks
them KILLED."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import mlflow
import pytest
from mlflow.entities import Run

from tests.helpers.kedro_project import (
    TINY_DEMO,
    TINY_TRAINING,
    make_project,
    project_environment,
    run_pipeline,
)
from transfer_study.tracking.heartbeat import PID_TAG

pytestmark = pytest.mark.slow

STARTED_TIMEOUT_S = 120


@pytest.fixture
def project(tmp_path: Path) -> Iterator[Path]:
    with project_environment(make_project(tmp_path / "project")) as root:
        yield root


def _running_runs(client: mlflow.MlflowClient) -> list[Run]:
    experiment = client.get_experiment_by_name("transfer_study")
    if experiment is None:
        return []
    return client.search_runs([experiment.experiment_id], "attributes.status = 'RUNNING'")


def _wait_for_parent_and_child(
    client: mlflow.MlflowClient, process: subprocess.Popen, log: Path
) -> Run:
    """The run's parent run, once it has its pid tag and a child run has started."""
    deadline = time.monotonic() + STARTED_TIMEOUT_S
    while time.monotonic() < deadline:
        assert process.poll() is None, log.read_text()[-3000:]
        try:
            runs = _running_runs(client)
        except mlflow.exceptions.MlflowException:  # the store is being created
            runs = []
        parents = [run for run in runs if run.data.tags.get(PID_TAG) == str(process.pid)]
        parents = [run for run in parents if "mlflow.parentRunId" not in run.data.tags]
        if parents and any("mlflow.parentRunId" in run.data.tags for run in runs):
            return parents[0]
        time.sleep(0.5)
    raise AssertionError(f"No parent and child run after {STARTED_TIMEOUT_S} s")


def test_runs_left_running_by_a_killed_kedro_run_are_killed_by_the_next(
    project: Path, tmp_path: Path
):
    run_pipeline(project, TINY_DEMO, pipeline_name="demo_data")
    params = ",".join(f"{key}={value}" for key, value in {**TINY_DEMO, **TINY_TRAINING}.items())
    log = tmp_path / "kedro_run.log"
    with log.open("w") as output:
        process = subprocess.Popen(
            [sys.executable, "-m", "kedro", "run", f"--params={params}"],
            cwd=project,
            stdout=output,
            stderr=subprocess.STDOUT,
            env={**os.environ},
            start_new_session=True,
        )
    client = mlflow.MlflowClient(tracking_uri=os.environ["MLFLOW_TRACKING_URI"])
    try:
        parent = _wait_for_parent_and_child(client, process, log)
    finally:
        os.killpg(process.pid, signal.SIGKILL)  # its own session: pgid == pid
        process.wait(timeout=30)  # a zombie would still answer os.kill(pid, 0)
    killed_id = parent.info.run_id
    left = [killed_id] + [
        run.info.run_id
        for run in _running_runs(client)
        if run.data.tags.get("mlflow.parentRunId") == killed_id
    ]
    assert len(left) >= 2  # the parent and at least one child
    assert {client.get_run(run_id).info.status for run_id in left} == {"RUNNING"}

    run_pipeline(project, TINY_DEMO, pipeline_name="data_processing")

    reason = f"orphaned: process {process.pid} on {socket.gethostname()} is gone"
    for run_id in left:
        run = client.get_run(run_id)
        assert run.info.status == "KILLED", run_id
        assert run.data.tags["stop_reason"] == reason
    assert not [run for run in _running_runs(client) if run.info.run_id in left]
