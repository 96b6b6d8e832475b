"""A grid task: its ``kedro run`` command, the environment and log of its process, the
run's ``--params`` as JSON, and the launcher that ties the process's life to its worker."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import distributed
import kedro
import psutil
import pytest
import torch

from transfer_study.grid import tasks
from transfer_study.grid.tasks import (
    RUNTIME_PARAMS_ENV,
    CellTask,
    run_cell_task,
    runtime_params_environ,
)

LAUNCHER_PARENT_ENV = "TRANSFER_STUDY_LAUNCHER_PARENT"
linux_only = pytest.mark.skipif(
    not sys.platform.startswith("linux"), reason="the parent-death signal is Linux's"
)


def _task(tmp_path: Path, **changes) -> CellTask:
    values = {
        "cells": ("ablation.frozen.n4_a1_s0", "ablation.frozen.n8_a1_s0"),
        "namespaces": ("ablation.frozen.n4_a1_s0", "ablation.frozen.n8_a1_s0", "frozen"),
        "project": str(tmp_path),
        "environ": {"MLFLOW_TRACKING_URI": "http://127.0.0.1:5999", "KEDRO_ENV": "local"},
        "log_file": str(tmp_path / "logs" / "grid" / "ablation.frozen.n4_a1_s0.log"),
    }
    return CellTask(**{**values, **changes})


def test_the_command_runs_the_cells_through_the_launcher(tmp_path: Path):
    assert _task(tmp_path).command == [
        sys.executable,
        "-c",
        tasks._LAUNCHER,
        "run",
        "--pipeline=data_size_ablation",
        "--namespaces=ablation.frozen.n4_a1_s0,ablation.frozen.n8_a1_s0,frozen",
        "--only-missing-outputs",
    ]


def test_the_drivers_configuration_folder_reaches_the_command(tmp_path: Path):
    command = _task(tmp_path, conf_source=str(tmp_path / "conf")).command
    assert command[-1] == f"--conf-source={tmp_path / 'conf'}"


def test_runtime_params_round_trip_through_json():
    params = {"model": {"name": "a,b", "sizes": [1, 2.5, "x"]}, "split": {"seed": 3}}
    environ = runtime_params_environ(params)
    assert list(environ) == [RUNTIME_PARAMS_ENV]
    assert json.loads(environ[RUNTIME_PARAMS_ENV]) == params


@pytest.mark.parametrize("params", [None, {}])
def test_no_runtime_params_set_no_variable(params):
    assert runtime_params_environ(params) == {}


@pytest.fixture
def fake_run(monkeypatch: pytest.MonkeyPatch):
    """Replaces ``subprocess.run`` in the tasks module; returns the calls and the output."""
    calls: list[dict] = []
    outcome = {"returncode": 0, "stdout": ""}

    def run(command, **options):
        calls.append({"command": command, **options})
        return subprocess.CompletedProcess(command, outcome["returncode"], outcome["stdout"])

    monkeypatch.setattr(tasks.subprocess, "run", run)
    return calls, outcome


def test_run_cell_task_runs_the_command_in_the_project_with_the_tasks_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fake_run
):
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    monkeypatch.setenv("TRANSFER_STUDY_TEST_INHERITED", "yes")
    monkeypatch.setenv("KEDRO_ENV", "base")  # the task's own value wins
    calls, _ = fake_run
    task = _task(tmp_path)

    run_cell_task(task)

    (call,) = calls
    assert call["command"] == task.command
    assert call["cwd"] == str(tmp_path)
    env = call["env"]
    assert env["MLFLOW_TRACKING_URI"] == "http://127.0.0.1:5999"
    assert env["KEDRO_ENV"] == "local"
    assert env[LAUNCHER_PARENT_ENV] == str(os.getpid())
    assert env["TRANSFER_STUDY_TEST_INHERITED"] == "yes"
    assert "CUDA_VISIBLE_DEVICES" not in env  # not on a Dask worker
    assert call["stderr"] == subprocess.STDOUT
    assert call["check"] is False


def test_run_cell_task_writes_the_whole_output_and_returns_its_tail(tmp_path: Path, fake_run):
    _, outcome = fake_run
    lines = [f"line {index:05d}" for index in range(2000)]  # about 22,000 characters
    outcome.update(returncode=3, stdout="\n".join(lines) + "\n")
    task = _task(tmp_path)

    result = run_cell_task(task)

    assert Path(task.log_file).read_text() == outcome["stdout"]  # its folder was made
    assert result["cells"] == list(task.cells)
    assert result["returncode"] == 3
    assert result["log_file"] == task.log_file
    assert result["host"]
    assert len(result["log_tail"]) == tasks._LOG_TAIL_CHARS
    assert outcome["stdout"].endswith(result["log_tail"])
    assert "line 01999" in result["log_tail"]
    assert "line 00000" not in result["log_tail"]


def test_run_cell_task_without_a_log_file_writes_none(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fake_run
):
    monkeypatch.chdir(tmp_path)
    _, outcome = fake_run
    outcome.update(stdout="short output\n")

    result = run_cell_task(_task(tmp_path, log_file=""))

    assert result["returncode"] == 0
    assert result["log_tail"] == "short output\n"
    assert list(tmp_path.iterdir()) == []


def _on_a_worker(monkeypatch: pytest.MonkeyPatch, gpus: int, name) -> None:
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: gpus)
    monkeypatch.setattr(distributed, "get_worker", lambda: SimpleNamespace(name=name))


@pytest.mark.parametrize(("name", "device"), [(0, "0"), (1, "1"), (2, "0"), (3, "1")])
def test_a_local_clusters_worker_gets_one_gpu_by_its_index(
    monkeypatch: pytest.MonkeyPatch, name: int, device: str
):
    _on_a_worker(monkeypatch, gpus=2, name=name)
    assert tasks._gpu_of_this_worker() == {"CUDA_VISIBLE_DEVICES": device}


def test_no_gpu_or_a_named_worker_gets_no_device(monkeypatch: pytest.MonkeyPatch):
    _on_a_worker(monkeypatch, gpus=0, name=1)
    assert tasks._gpu_of_this_worker() == {}
    _on_a_worker(monkeypatch, gpus=2, name="tcp://10.0.0.2:4000")
    assert tasks._gpu_of_this_worker() == {}


def test_a_chosen_gpu_is_left_alone(monkeypatch: pytest.MonkeyPatch):
    _on_a_worker(monkeypatch, gpus=2, name=1)
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "5")
    assert tasks._gpu_of_this_worker() == {}


# --- the launcher, for real ---------------------------------------------------------------


def _launch(tmp_path: Path, parent: int, *args: str) -> subprocess.CompletedProcess:
    env = {
        **os.environ,
        LAUNCHER_PARENT_ENV: str(parent),
        "KEDRO_DISABLE_TELEMETRY": "1",
        "DO_NOT_TRACK": "1",
    }
    return subprocess.run(
        [sys.executable, "-c", tasks._LAUNCHER, *args],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_the_launcher_starts_kedros_cli(tmp_path: Path):
    result = _launch(tmp_path, os.getpid(), "--version")
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"version {kedro.__version__}" in result.stdout


@linux_only
def test_the_launcher_stops_when_its_worker_is_not_its_parent(tmp_path: Path):
    result = _launch(tmp_path, os.getpid() + 1, "--version")
    assert result.returncode == 70
    assert "version" not in result.stdout


STUB_CLI = """
import sys, time
def main():
    print("stub kedro", *sys.argv, flush=True)
    time.sleep(120)
"""
WORKER = """
import os, subprocess, sys, time
env = {**os.environ, "TRANSFER_STUDY_LAUNCHER_PARENT": str(os.getpid())}
child = subprocess.Popen([sys.executable, "-c", sys.argv[1], "run"], env=env,
                         stdout=subprocess.PIPE, text=True)
print(child.pid, flush=True)
print(child.stdout.readline(), end="", flush=True)
time.sleep(120)
"""


def _gone(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


@linux_only
def test_the_launched_process_dies_with_its_worker(tmp_path: Path):
    """A stand-in for ``kedro`` that would run two minutes: killing its worker (``kill
    -9``, as the out-of-memory killer does) ends it at once."""
    stub = tmp_path / "stub"
    (stub / "kedro" / "framework").mkdir(parents=True)
    (stub / "kedro" / "__init__.py").write_text("")
    (stub / "kedro" / "framework" / "__init__.py").write_text("")
    (stub / "kedro" / "framework" / "cli.py").write_text(STUB_CLI)
    worker = subprocess.Popen(
        [sys.executable, "-c", WORKER, tasks._LAUNCHER],
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(stub)},
        stdout=subprocess.PIPE,
        text=True,
    )
    child = None
    try:
        child = int(worker.stdout.readline())
        assert worker.stdout.readline().strip() == "stub kedro kedro run"
        assert not _gone(child)
        worker.send_signal(signal.SIGKILL)
        worker.wait(timeout=10)
        deadline = time.monotonic() + 10
        while not _gone(child) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert _gone(child), "the launched process outlived its worker"
    finally:
        worker.kill()
        worker.wait()
        worker.stdout.close()
        if child is not None and not _gone(child):
            os.kill(child, signal.SIGKILL)
