"""``DaskGridRunner``: the data-size ablation's cells on a Dask cluster.

    kedro run --pipeline=data_size_ablation --runner=transfer_study.grid.DaskGridRunner

Kedro's own runners keep a pipeline in one process (``ParallelRunner`` runs no hooks in
its workers, so kedro-mlflow and the child-run hook break there), and Kedro's Dask page is
a recipe, broken on 1.x (kedro-org/kedro#5774). This runner splits the ablation in three:

1. **The shared prefix** (ingestion, split, caches, embedding, the study's learning
   rates, the grid check) runs here, once, like any ``kedro run``.
2. **The cells** are tasks on a Dask cluster (``data_size_ablation.cluster``): a local
   cluster of ``workers`` processes, or an existing scheduler. Each task is a
   ``kedro run --namespaces=<cells> --only-missing-outputs`` process (``grid.tasks``),
   tracked under this run's MLflow run through one tracking server (``grid.
   tracking_server``). A finished cell (its result file) is never submitted again.
3. **The report** runs here once every cell has its result.

A cell that fails leaves its run FAILED and the others go on; the run then stops with a
summary of what failed and the command that resumes (the same command).
"""

from __future__ import annotations

import importlib.util
import logging
import math
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import mlflow
from kedro.io import CatalogProtocol
from kedro.pipeline import Pipeline
from kedro.runner import SequentialRunner
from pluggy import PluginManager

from transfer_study.config import AblationSettings, parse_settings
from transfer_study.config.grid import ClusterSettings
from transfer_study.errors import UserError
from transfer_study.grid.cluster import run_on_cluster
from transfer_study.grid.run_params import current_run_params
from transfer_study.grid.tasks import CellTask, runtime_params_environ
from transfer_study.grid.tracking_server import is_server, shared_tracking_uri
from transfer_study.pipelines.variant_template import variants_needed
from transfer_study.tracking.hooks import GRID_PARENT_ENV

logger = logging.getLogger(__name__)

CELL_PREFIX = "ablation."
ABLATION_PARAMETERS = "params:data_size_ablation"
LOG_FOLDER = Path("data/09_logs/grid")
TASKS_PER_WORKER = 3


class GridSetupError(UserError, ValueError):
    """The cluster cannot run the grid as configured; the message says what to do."""


class DaskGridRunner(SequentialRunner):
    """Runs the ablation's prefix and report here and its cells on a Dask cluster."""

    def _run(
        self,
        pipeline: Pipeline,
        catalog: CatalogProtocol,
        hook_manager: PluginManager | None = None,
        run_id: str | None = None,
    ) -> None:
        settings = parse_settings(
            AblationSettings, catalog.load(ABLATION_PARAMETERS), block="data_size_ablation"
        )
        refuse_unusable_cluster(settings.cluster, mlflow.get_tracking_uri())
        cells = _cell_pipeline(pipeline)
        rest = pipeline - cells
        needs_cells = rest.inputs() & cells.all_outputs()
        report = rest.from_inputs(*needs_cells) if needs_cells else Pipeline([])
        prefix = rest - report
        if prefix.nodes:
            super()._run(prefix, catalog, hook_manager, run_id)
        todo = [ns for ns in cell_namespaces(cells) if not catalog.exists(f"{ns}.result")]
        logger.info(
            "Grid: %d cells, %d to train (%d already have a result).",
            len(cell_namespaces(cells)),
            len(todo),
            len(cell_namespaces(cells)) - len(todo),
        )
        if todo:
            self._run_cells(todo, settings)
        if report.nodes:
            super()._run(report, catalog, hook_manager, run_id)

    def _run_cells(self, todo: list[str], settings: AblationSettings) -> None:
        store_uri = mlflow.get_tracking_uri()
        parent = mlflow.active_run()
        with shared_tracking_uri(store_uri, LOG_FOLDER) as uri:
            environ = {
                **_threads_per_task(settings.cluster),
                "MLFLOW_TRACKING_URI": uri,
                **({GRID_PARENT_ENV: parent.info.run_id} if parent else {}),
                **runtime_params_environ(current_run_params().get("runtime_params")),
                **_kedro_env(current_run_params().get("env")),
            }
            tasks = [
                CellTask(
                    cells=tuple(batch),
                    namespaces=(*batch, *_study_namespaces(batch)),
                    project=str(Path.cwd()),
                    environ=environ,
                    log_file=str(LOG_FOLDER.resolve() / f"{batch[0]}.log"),
                    conf_source=current_run_params().get("conf_source"),
                )
                for batch in _batches(todo, _cells_per_task(len(todo), settings.cluster))
            ]
            mlflow.set_tracking_uri(uri)  # this process writes through the server too
            try:
                run_on_cluster(tasks, settings.cluster)
            finally:
                mlflow.set_tracking_uri(store_uri)


def refuse_unusable_cluster(cluster: ClusterSettings, store_uri: str) -> None:
    """Stops the run before any node when the cluster settings cannot work.

    Raises:
        GridSetupError: A remote scheduler with a store its workers cannot reach, or a
            dashboard without bokeh; the message says what to do.
    """
    if cluster.scheduler and not is_server(store_uri):
        raise GridSetupError(
            f"data_size_ablation.cluster.scheduler is {cluster.scheduler}, but the MLflow "
            f"store is {store_uri}, which workers on other machines cannot reach. Start a "
            "tracking server they can reach (docs/grid.md) and set "
            "MLFLOW_TRACKING_URI=http://<host>:<port> for this command."
        )
    if cluster.dashboard and importlib.util.find_spec("bokeh") is None:
        raise GridSetupError(
            "data_size_ablation.cluster.dashboard is true, but Dask's dashboard needs "
            "bokeh: `pip install 'bokeh>=3.1'`, or leave the dashboard off."
        )


def cell_namespaces(pipeline: Pipeline) -> list[str]:
    """The cells' namespaces (``ablation.<variant>.<cell>``), in pipeline order."""
    found = (node.namespace or "" for node in pipeline.nodes)
    cells = (".".join(ns.split(".")[:3]) for ns in found if ns.startswith(CELL_PREFIX))
    return list(dict.fromkeys(cells))


def _cell_pipeline(pipeline: Pipeline) -> Pipeline:
    in_cells = [node for node in pipeline.nodes if (node.namespace or "").startswith(CELL_PREFIX)]
    return Pipeline(in_cells)


def _study_namespaces(cells: list[str]) -> list[str]:
    """The study's variant namespaces whose in-memory settings the cells read (their
    persisted outputs, the learning rates, exist: ``--only-missing-outputs`` skips those)."""
    return variants_needed([cell.split(".")[1] for cell in cells])


def _cells_per_task(n_cells: int, cluster: ClusterSettings) -> int:
    """``cells_per_task``; ``auto``: about three tasks per worker, so that the start-up
    of a process (~15 s on 2 CPU cores) is paid a few times per worker, not per cell,
    while the workers still share the cells evenly."""
    if cluster.cells_per_task != "auto":
        return cluster.cells_per_task
    return max(1, math.ceil(n_cells / (TASKS_PER_WORKER * cluster.workers)))


def _threads_per_task(cluster: ClusterSettings) -> dict[str, str]:
    """A local cluster's processes share this machine's cores: each gets its share of
    threads, since PyTorch slows down many times over when threads outnumber cores."""
    if cluster.scheduler or "OMP_NUM_THREADS" in os.environ:
        return {}
    return {"OMP_NUM_THREADS": str(max(1, (os.cpu_count() or 1) // cluster.workers))}


def _batches(items: list[str], size: int) -> Iterable[list[str]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _kedro_env(env: Any) -> dict[str, str]:
    """The run's ``--env`` for the task processes (``KEDRO_ENV`` when it was not given)."""
    chosen = env or os.environ.get("KEDRO_ENV")
    return {"KEDRO_ENV": str(chosen)} if chosen else {}
