"""The data-size ablation on a local Dask cluster of 2 worker processes, through
``kedro run --runner=transfer_study.grid.DaskGridRunner`` as a user types it, with the
MLflow server the runner starts on 127.0.0.1 over the project's SQLite store."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import mlflow
import psutil
import pytest

from tests.helpers.kedro_project import (
    TINY_DEMO,
    TINY_TRAINING,
    make_project,
    project_environment,
    run_pipeline,
)

pytestmark = pytest.mark.slow

GRID = """
data_size_ablation:
  n_samples: [4, 8]
  n_angles: [1]
  variants: [frozen]
  seeds: [0]
  cluster: {workers: 2}
"""
CELLS = ("frozen.n4_a1_s0", "frozen.n8_a1_s0")
RUNNER = "--runner=transfer_study.grid.DaskGridRunner"


@pytest.fixture(scope="module")
def grid_project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A project copy with the tiny demo photos and a 2-cell grid, nothing trained."""
    root = make_project(tmp_path_factory.mktemp("grid") / "project")
    (root / "conf/local/parameters_data_size_ablation.yml").write_text(GRID)
    with project_environment(root):
        run_pipeline(root, TINY_DEMO, pipeline_name="demo_data")
    return root


def _grid_command() -> list[str]:
    params = ",".join(f"{key}={value}" for key, value in {**TINY_DEMO, **TINY_TRAINING}.items())
    kedro = str(Path(sys.executable).parent / "kedro")
    return [kedro, "run", "--pipeline=data_size_ablation", RUNNER, f"--params={params}"]


def _environment(store: Path) -> dict[str, str]:
    return {
        **os.environ,
        "MLFLOW_TRACKING_URI": f"sqlite:///{store}",
        "KEDRO_DISABLE_TELEMETRY": "1",
    }


def _run_grid(project: Path, store: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        _grid_command(),
        cwd=project,
        env=_environment(store),
        capture_output=True,
        text=True,
        timeout=900,
    )


def _result(project: Path, cell: str) -> Path:
    variant, name = cell.split(".")
    return project / f"data/07_model_output/ablation/{variant}/{name}.json"


def _runs(store: Path) -> list[mlflow.entities.Run]:
    mlflow.set_tracking_uri(f"sqlite:///{store}")
    client = mlflow.MlflowClient()
    experiments = [e.experiment_id for e in client.search_experiments()]
    return client.search_runs(experiments, max_results=1000)


def _forget_cells(project: Path) -> None:
    """Deletes every cell's outputs; the prefix's caches stay. Each test has its own MLflow
    store (a file MLflow has opened in this process must not be replaced under it)."""
    for folder in (
        "data/06_models/ablation",
        "data/07_model_output/ablation",
        "data/08_reporting/ablation",
    ):
        shutil.rmtree(project / folder, ignore_errors=True)


def _report(completed: subprocess.CompletedProcess) -> str:
    return completed.stdout[-4000:] + completed.stderr[-6000:]


def test_the_grid_runs_every_cell_under_one_parent_run_and_resumes_with_nothing_to_do(
    grid_project: Path, tmp_path: Path
):
    store = tmp_path / "mlflow.db"
    _forget_cells(grid_project)
    completed = _run_grid(grid_project, store)
    assert completed.returncode == 0, _report(completed)
    assert all(_result(grid_project, cell).exists() for cell in CELLS)
    assert (grid_project / "data/08_reporting/ablation/learning_curve.csv").exists()

    runs = _runs(store)
    grids = [r for r in runs if r.data.tags.get("pipeline") == "data_size_ablation"]
    parents = [r for r in grids if "mlflow.parentRunId" not in r.data.tags]
    assert len(parents) == 1, [(r.info.run_name, r.data.tags) for r in grids]
    parent = parents[0]
    cells = {r.info.run_name: r for r in runs if r.info.run_name.startswith("ablation.")}
    assert set(cells) == {f"ablation.{cell}" for cell in CELLS}
    for run in cells.values():
        assert run.info.status == "FINISHED"
        assert run.data.tags["mlflow.parentRunId"] == parent.info.run_id
        assert run.data.tags["pid"] != parent.data.tags["pid"]  # trained in a task process
    assert parent.info.status == "FINISHED"
    assert all(r.info.status != "RUNNING" for r in runs)

    task_logs = (grid_project / "data/09_logs/grid").glob("ablation.*.log")
    logs = {log: log.stat().st_mtime_ns for log in task_logs}
    assert len(logs) == len(CELLS)
    again = _run_grid(grid_project, store)
    assert again.returncode == 0, _report(again)
    # Nothing submitted: no new cell run, no task log written.
    assert len([r for r in _runs(store) if r.info.run_name.startswith("ablation.")]) == 2
    assert {log: log.stat().st_mtime_ns for log in logs} == logs


def test_a_failing_cell_fails_alone_and_a_killed_worker_has_its_cell_run_again(
    grid_project: Path, tmp_path: Path
):
    """One grid run, two faults: cell n4 cannot save its checkpoint (it fails, the rest
    goes on), and the worker training cell n8 is killed with SIGKILL (its cell runs again
    and finishes)."""
    store = tmp_path / "mlflow.db"
    _forget_cells(grid_project)
    # A file where the cell's model folder belongs: saving its checkpoint fails.
    blocked = grid_project / "data/06_models/ablation/frozen/n4_a1_s0"
    blocked.parent.mkdir(parents=True, exist_ok=True)
    blocked.write_text("not a folder")
    driver = subprocess.Popen(
        _grid_command(),
        cwd=grid_project,
        env=_environment(store),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        worker = _wait_for_a_cell_process(driver, "ablation.frozen.n8_a1_s0").parent()
        worker.send_signal(signal.SIGKILL)
        stdout, stderr = driver.communicate(timeout=900)
    finally:
        if driver.poll() is None:
            os.killpg(driver.pid, signal.SIGKILL)
        blocked.unlink()
    report = stdout[-4000:] + stderr[-6000:]

    assert driver.returncode == 1, report
    assert "1 of 2 grid tasks failed" in stderr, report
    assert "ablation.frozen.n4_a1_s0" in stderr
    assert "--runner=transfer_study.grid.DaskGridRunner" in stderr  # how to resume
    assert "Traceback" not in stderr
    assert _result(grid_project, CELLS[1]).exists() and not _result(grid_project, CELLS[0]).exists()
    runs = _runs(store)
    assert all(r.info.status != "RUNNING" for r in runs)
    statuses = [(r.info.run_name, r.info.status) for r in runs]
    assert ("ablation.frozen.n4_a1_s0", "FAILED") in statuses
    assert ("ablation.frozen.n8_a1_s0", "FINISHED") in statuses


def _wait_for_a_cell_process(
    driver: subprocess.Popen, cell: str, timeout_s: float = 600
) -> psutil.Process:
    """The ``kedro run --namespaces=<cell>,…`` process the grid starts for ``cell``."""
    deadline = time.monotonic() + timeout_s
    root = psutil.Process(driver.pid)
    while time.monotonic() < deadline and driver.poll() is None:
        for process in root.children(recursive=True):
            try:
                if any(arg.startswith(f"--namespaces={cell},") for arg in process.cmdline()):
                    return process
            except psutil.NoSuchProcess:
                continue
        time.sleep(0.2)
    pytest.fail(f"No process started for {cell}.")
