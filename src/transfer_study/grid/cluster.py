"""Submitting the grid's cell tasks to a Dask cluster and waiting for them, with progress.

A local cluster (``workers`` processes on this machine) is started and stopped here; an
existing scheduler (``scheduler: tcp://host:8786``) is only connected to. A task whose
worker dies is run again by the scheduler, up to ``retries`` times (Dask's
``allowed-failures`` for a local cluster; set it on your scheduler for a remote one).
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import dask
import torch
from distributed import Client, Future, LocalCluster, as_completed
from tqdm.auto import tqdm

from transfer_study.config.grid import ClusterSettings
from transfer_study.errors import UserError
from transfer_study.grid.tasks import CellTask, run_cell_task

logger = logging.getLogger(__name__)

_TAIL_LINES = 15
RESUME_COMMAND = (
    "kedro run --pipeline=data_size_ablation --runner=transfer_study.grid.DaskGridRunner"
)


class GridCellsFailed(UserError, RuntimeError):
    """Some cells failed; the others finished. The message says which and how to resume."""


def run_on_cluster(tasks: list[CellTask], settings: ClusterSettings) -> None:
    """Runs every task on the cluster ``settings`` describes and waits for all of them.

    Raises:
        GridCellsFailed: When any task's cells failed (after the others finished).
    """
    gpus = torch.cuda.device_count()
    with _client(settings, gpus) as client:
        if settings.dashboard:
            logger.info("Dask dashboard: %s", client.dashboard_link)
        resources = {"GPU": 1} if gpus else None
        batch = uuid.uuid4().hex[:8]
        futures: dict[Future, CellTask] = {
            client.submit(
                run_cell_task,
                task,
                key=f"cells-{batch}-{index}",
                retries=settings.retries,
                resources=resources,
                pure=False,
            ): task
            for index, task in enumerate(tasks)
        }
        failed = _wait(futures, total=sum(len(task.cells) for task in tasks))
    if failed:
        raise GridCellsFailed(_summary(failed, len(tasks)))


def _wait(futures: dict[Future, CellTask], total: int) -> list[dict[str, Any]]:
    failed = []
    with tqdm(total=total, unit="cell", desc="Grid cells", dynamic_ncols=True) as progress:
        for future in as_completed(futures):
            task = futures[future]
            try:
                outcome = future.result()
            except Exception as error:  # KilledWorker after too many deaths, a lost scheduler
                outcome = {"cells": list(task.cells), "returncode": None, "error": repr(error)}
            if outcome.get("returncode") != 0:
                failed.append({"log_file": task.log_file, **outcome})
                logger.error("Grid cells %s failed.", ", ".join(outcome["cells"]))
            progress.update(len(task.cells))
    return failed


@contextmanager
def _client(settings: ClusterSettings, gpus: int) -> Iterator[Client]:
    if settings.scheduler:
        with Client(settings.scheduler) as client:
            logger.info("Grid cells on the Dask scheduler %s.", settings.scheduler)
            yield client
        return
    workers = min(settings.workers, gpus) if gpus else settings.workers
    with (
        dask.config.set({"distributed.scheduler.allowed-failures": settings.retries}),
        LocalCluster(
            n_workers=workers,
            threads_per_worker=1,
            processes=True,
            host="127.0.0.1",
            dashboard_address="127.0.0.1:0" if settings.dashboard else None,
            resources={"GPU": 1} if gpus else None,
        ) as cluster,
        Client(cluster) as client,
    ):
        logger.info("Grid cells on a local Dask cluster of %d workers.", workers)
        yield client


def _summary(failed: list[dict[str, Any]], n_tasks: int) -> str:
    lines = [f"{len(failed)} of {n_tasks} grid tasks failed; the other cells finished."]
    for outcome in failed:
        why = (
            f"exit code {outcome['returncode']}"
            if outcome.get("returncode") is not None
            else outcome.get("error", "unknown error")
        )
        lines.append(f"- {', '.join(outcome['cells'])}: {why}; log: {outcome['log_file']}")
    tail = failed[0].get("log_tail", "").strip().splitlines()[-_TAIL_LINES:]
    if tail:
        lines += ["The first failed task's output ends with:", *("  " + line for line in tail)]
    lines.append(
        f"Fix the cause and run the same command again (`{RESUME_COMMAND}`): finished "
        "cells are not trained again."
    )
    return "\n".join(lines)
