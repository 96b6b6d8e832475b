"""What a Dask worker runs: one ``kedro run`` of a batch of the ablation's cells.

A task is a process of its own rather than Python code in the worker: Kedro, kedro-viz's
catalog, MLflow and this project's hooks run exactly as in any ``kedro run``, and
PyTorch's DataLoader may start worker processes, which it cannot inside Dask's daemonic
workers (dask/distributed#2142). A cell's exit code, not an exception, says that it
failed, so Dask retries a task only when its worker died (``kill -9``, out of memory),
never a cell that fails the same way every time.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ABLATION_PIPELINE = "data_size_ablation"
RUNTIME_PARAMS_ENV = "TRANSFER_STUDY_RUNTIME_PARAMS"  # read by transfer_study.cli
_LAUNCHER_PARENT_ENV = "TRANSFER_STUDY_LAUNCHER_PARENT"
_LOG_TAIL_CHARS = 4000
# Starts `kedro` so that it dies with the worker that started it (Linux: the parent-death
# signal), instead of training on as an orphan while Dask retries its cells elsewhere.
_LAUNCHER = """
import ctypes, os, signal, sys
if sys.platform.startswith("linux"):
    ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    if os.getppid() != int(os.environ["TRANSFER_STUDY_LAUNCHER_PARENT"]):
        sys.exit(70)  # the worker died before the signal was armed
from kedro.framework.cli import main
sys.argv = ["kedro", *sys.argv[1:]]
main()
"""


@dataclass(frozen=True)
class CellTask:
    """A batch of cells and how to run them.

    Attributes:
        cells: The cells' namespaces (``ablation.frozen.n30_a2_s0``).
        namespaces: What ``--namespaces`` selects: the cells and the study's variant
            namespaces whose in-memory settings they read.
        project: The project folder, shared by every worker.
        environ: Variables for the process: the tracking URI, the grid's parent run, the
            run's ``--params`` (JSON), ``KEDRO_ENV``.
        log_file: Where the process's output is written, in full.
        conf_source: The configuration folder (``--conf-source``), when not ``conf/``.
    """

    cells: tuple[str, ...]
    namespaces: tuple[str, ...]
    project: str
    environ: Mapping[str, str] = field(default_factory=dict)
    log_file: str = ""
    conf_source: str | None = None

    @property
    def command(self) -> list[str]:
        """The ``kedro run`` of the task's cells; finished ones are skipped."""
        return [
            *(sys.executable, "-c", _LAUNCHER, "run", f"--pipeline={ABLATION_PIPELINE}"),
            f"--namespaces={','.join(self.namespaces)}",
            "--only-missing-outputs",
            *([f"--conf-source={self.conf_source}"] if self.conf_source else []),
        ]


def run_cell_task(task: CellTask) -> dict[str, Any]:
    """Runs ``task`` in a ``kedro run`` process and waits for it (on a Dask worker).

    Returns:
        ``cells``, ``returncode``, ``host``, ``log_file`` and ``log_tail`` (the end of
        its output, for the driver's summary of failed cells).
    """
    environ = {**os.environ, **task.environ, _LAUNCHER_PARENT_ENV: str(os.getpid())}
    environ.update(_gpu_of_this_worker())
    log_path = Path(task.log_file) if task.log_file else None
    if log_path:
        log_path.parent.mkdir(parents=True, exist_ok=True)
    completed = subprocess.run(
        task.command,
        cwd=task.project,
        env=environ,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        errors="replace",
        check=False,
    )
    if log_path:
        log_path.write_text(completed.stdout)
    return {
        "cells": list(task.cells),
        "returncode": completed.returncode,
        "host": socket.gethostname(),
        "log_file": task.log_file,
        "log_tail": completed.stdout[-_LOG_TAIL_CHARS:],
    }


def runtime_params_environ(runtime_params: Mapping[str, Any] | None) -> dict[str, str]:
    """The run's ``--params`` for the task processes (commas in values survive JSON)."""
    return {RUNTIME_PARAMS_ENV: json.dumps(dict(runtime_params))} if runtime_params else {}


def _gpu_of_this_worker() -> dict[str, str]:
    """One GPU per worker of a local cluster: the worker's index among the GPUs."""
    if "CUDA_VISIBLE_DEVICES" in os.environ:
        return {}  # set for this worker already (dask-cuda, or by hand)
    try:
        import torch
        from distributed import get_worker

        gpus = torch.cuda.device_count()
        name = get_worker().name
    except (ImportError, ValueError):  # not on a worker
        return {}
    if not gpus or not isinstance(name, int):
        return {}
    return {"CUDA_VISIBLE_DEVICES": str(name % gpus)}
