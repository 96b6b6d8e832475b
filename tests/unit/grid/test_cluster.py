"""The cluster side of the grid: what is submitted, how outcomes are gathered, and the
summary of failed cells. A real ``LocalCluster`` runs in
tests/integration/test_grid_runner.py; here the client and its futures are fakes."""

from __future__ import annotations

import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from types import SimpleNamespace

import pytest
import torch

from transfer_study.config.grid import ClusterSettings
from transfer_study.errors import UserError
from transfer_study.grid import cluster
from transfer_study.grid.cluster import RESUME_COMMAND, GridCellsFailed, run_on_cluster
from transfer_study.grid.tasks import CellTask, run_cell_task


def _settings(**changes) -> ClusterSettings:
    values = {
        "workers": 2,
        "scheduler": None,
        "cells_per_task": "auto",
        "retries": 2,
        "dashboard": False,
    }
    return ClusterSettings(**{**values, **changes})


def _task(*cells: str) -> CellTask:
    return CellTask(
        cells=cells, namespaces=(*cells, "frozen"), project="/p", log_file=f"/logs/{cells[0]}.log"
    )


class FakeFuture:
    """A finished future: its result, or the error ``result()`` raises."""

    def __init__(self, outcome=None, error: Exception | None = None) -> None:
        self.outcome, self.error = outcome, error

    def result(self):
        if self.error is not None:
            raise self.error
        return self.outcome


class KilledWorker(Exception):
    """Stands in for distributed's KilledWorker."""


def _ok(task: CellTask) -> dict:
    return {"cells": list(task.cells), "returncode": 0, "log_tail": "done\n"}


def _exit(task: CellTask, code: int, tail: str = "") -> dict:
    return {"cells": list(task.cells), "returncode": code, "log_tail": tail}


# --- _summary ------------------------------------------------------------------------------


def test_the_summary_lists_every_failed_task_the_first_tail_and_how_to_resume():
    tail = "".join(f"output line {index}\n" for index in range(1, 31))
    failed = [
        {
            "cells": ["ablation.frozen.n4_a1_s0", "ablation.frozen.n8_a1_s0"],
            "returncode": 2,
            "log_file": "/logs/a.log",
            "log_tail": tail,
        },
        {
            "cells": ["ablation.frozen.n15_a1_s0"],
            "returncode": None,
            "error": "KilledWorker('cells-1', <WorkerState 'tcp://127.0.0.1:4000'>)",
            "log_file": "/logs/b.log",
        },
    ]

    summary = cluster._summary(failed, 5)

    lines = summary.splitlines()
    assert lines[0] == "2 of 5 grid tasks failed; the other cells finished."
    assert lines[1] == (
        "- ablation.frozen.n4_a1_s0, ablation.frozen.n8_a1_s0: exit code 2; log: /logs/a.log"
    )
    assert lines[2] == (
        "- ablation.frozen.n15_a1_s0: KilledWorker('cells-1', "
        "<WorkerState 'tcp://127.0.0.1:4000'>); log: /logs/b.log"
    )
    shown = [line.strip() for line in lines if line.strip().startswith("output line")]
    assert shown == [f"output line {index}" for index in range(16, 31)]  # the last 15
    assert RESUME_COMMAND in lines[-1]
    assert "finished cells are not trained again" in lines[-1]


def test_a_summary_without_output_shows_no_tail():
    failed = [{"cells": ["c"], "returncode": None, "error": "OSError()", "log_file": "/l"}]
    summary = cluster._summary(failed, 1)
    assert "ends with" not in summary
    assert summary.splitlines()[1] == "- c: OSError(); log: /l"
    assert RESUME_COMMAND in summary


# --- _wait ---------------------------------------------------------------------------------


def test_wait_gathers_failed_exit_codes_and_errors_and_keeps_going(
    monkeypatch: pytest.MonkeyPatch,
):
    monkeypatch.setattr(cluster, "as_completed", iter)  # the fakes are finished already
    ok, failing, killed = _task("a", "b"), _task("c"), _task("d")
    futures = {
        FakeFuture(_exit(failing, 1, "Traceback …\n")): failing,
        FakeFuture(error=KilledWorker("cells-2")): killed,
        FakeFuture(_ok(ok)): ok,
    }

    failed = cluster._wait(futures, total=4)

    assert failed == [
        {"log_file": "/logs/c.log", "cells": ["c"], "returncode": 1, "log_tail": "Traceback …\n"},
        {
            "log_file": "/logs/d.log",
            "cells": ["d"],
            "returncode": None,
            "error": "KilledWorker('cells-2')",
        },
    ]


def test_wait_with_every_task_done_has_no_failures(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr(cluster, "as_completed", iter)
    first, second = _task("a"), _task("b")
    assert cluster._wait({FakeFuture(_ok(first)): first, FakeFuture(_ok(second)): second}, 2) == []


# --- run_on_cluster with a fake client ------------------------------------------------------


@pytest.fixture
def fake_client(monkeypatch: pytest.MonkeyPatch) -> SimpleNamespace:
    """A client whose tasks end as ``client.outcomes`` says (by first cell), recording
    what was submitted and the GPUs the cluster was asked for."""
    client = SimpleNamespace(submitted=[], clusters=[], outcomes={}, dashboard_link="http://d")

    def submit(function, task, **options):
        client.submitted.append((function, task, options))
        return FakeFuture(client.outcomes.get(task.cells[0], _ok(task)))

    client.submit = submit

    @contextmanager
    def make_client(settings: ClusterSettings, gpus: int) -> Iterator[SimpleNamespace]:
        client.clusters.append((settings, gpus))
        yield client

    monkeypatch.setattr(cluster, "_client", make_client)
    monkeypatch.setattr(cluster, "as_completed", iter)
    return client


def test_run_on_cluster_submits_each_task_once_with_retries(
    monkeypatch: pytest.MonkeyPatch, fake_client: SimpleNamespace
):
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 0)
    settings = _settings(retries=4)
    work = [_task("a", "b"), _task("c"), _task("d")]

    run_on_cluster(work, settings)

    assert fake_client.clusters == [(settings, 0)]
    assert [task for _, task, _ in fake_client.submitted] == work
    assert all(function is run_cell_task for function, _, _ in fake_client.submitted)
    options = [options for _, _, options in fake_client.submitted]
    assert all(option["retries"] == 4 for option in options)
    assert all(option["pure"] is False for option in options)
    assert all(option["resources"] is None for option in options)
    keys = [option["key"] for option in options]
    assert len(set(keys)) == len(keys)


def test_run_on_cluster_asks_for_a_gpu_per_task_when_there_are_gpus(
    monkeypatch: pytest.MonkeyPatch, fake_client: SimpleNamespace
):
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    run_on_cluster([_task("a")], _settings())
    assert fake_client.clusters[0][1] == 2
    assert fake_client.submitted[0][2]["resources"] == {"GPU": 1}


def test_two_runs_never_share_a_task_key(
    monkeypatch: pytest.MonkeyPatch, fake_client: SimpleNamespace
):
    """A remote scheduler may still hold the last run's keys: reusing one would hand back
    that run's result instead of running the task."""
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 0)
    run_on_cluster([_task("a")], _settings())
    run_on_cluster([_task("a")], _settings())
    first, second = (options["key"] for _, _, options in fake_client.submitted)
    assert first != second


def test_run_on_cluster_raises_the_summary_after_every_task(
    monkeypatch: pytest.MonkeyPatch, fake_client: SimpleNamespace
):
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 0)
    work = [_task("a"), _task("b"), _task("c")]
    fake_client.outcomes["b"] = _exit(work[1], 1, "CUDA out of memory\n")

    with pytest.raises(GridCellsFailed) as caught:
        run_on_cluster(work, _settings())

    assert isinstance(caught.value, UserError)
    assert len(fake_client.submitted) == 3
    message = str(caught.value)
    assert message.startswith("1 of 3 grid tasks failed")
    assert "- b: exit code 1; log: /logs/b.log" in message
    assert "CUDA out of memory" in message


@pytest.mark.slow
def test_a_local_cluster_serves_its_dashboard_on_127_0_0_1_when_asked():
    settings = ClusterSettings(
        workers=1, scheduler=None, cells_per_task="auto", retries=0, dashboard=True
    )
    with cluster._client(settings, 0) as client:
        link = client.dashboard_link
        assert link.startswith("http://127.0.0.1:")
        with urllib.request.urlopen(link, timeout=30) as answer:
            assert answer.status == 200
