"""One MLflow child run per training, under kedro-mlflow's run for the whole ``kedro run``.

kedro-mlflow opens a single run per ``kedro run`` and logs the ``params:`` inputs to it.
A study holds several trainings (three variants, and one per cell × seed in the
data-size ablation), and each must be its own run to be compared in the MLflow UI.

Design:

* A training is a *namespace* (``scratch``, ``ablation.frozen_n100_a2_s0`` …). The first
  node that runs in a namespace creates its child run; nodes outside any namespace
  belong to the parent run. A namespace inside another that has nodes of its own (a
  cross-validation fold ``fold_0`` around ``fold_0.frozen``) is nested in that one's run.
* What a dataset contributes to a run is declared in the catalog, in the dataset's
  ``metadata.mlflow`` (``artifact``, ``metrics``, ``history``, ``summary``, ``model``,
  or for the Model Registry ``registry_check`` and ``register``: see
  ``tracking.registration``), so nodes never call MLflow and adding a logged output is
  a catalog edit.
* Every call goes through ``MlflowClient`` with an explicit run id, never through
  MLflow's thread-local "active run": nodes may run in other threads or processes,
  and a run id cannot be confused with another namespace's run.
* A child run ends FINISHED when its last node has run, FAILED when one of its
  nodes raises or its training summary says the training diverged (the run went on
  without it: see ``training.divergence``; tags ``stop_reason=diverged`` and
  ``divergence_reason``), and KILLED when the pipeline stops before it could finish, including
  on Ctrl-C or SIGTERM (turned into ``RunInterrupted`` for the duration of the run, so
  Kedro's error hooks, kedro-mlflow's included, close every run instead of leaving it
  RUNNING).
* Every run carries its host, process id and a heartbeat the process refreshes, and the
  start of a run marks KILLED the runs of its experiment that a ``kill -9`` or an
  out-of-memory kill left RUNNING (``tracking.heartbeat``).
* A grid driver runs each cell as a ``kedro run`` of its own (kedro-mlflow off) and
  passes its run id in ``GRID_PARENT_ENV``: the child runs nest under that run, which
  its own process tags and keeps alive.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import tempfile
import threading
import time
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import mlflow
import pandas as pd
from kedro.framework.hooks import hook_impl
from kedro.io import DataCatalog
from kedro.pipeline import Node, Pipeline
from matplotlib.figure import Figure
from mlflow.entities import Metric, Param, RunStatus, RunTag
from mlflow.utils.git_utils import get_git_commit
from mlflow.utils.mlflow_tags import MLFLOW_PARENT_RUN_ID, MLFLOW_RUN_NAME

from transfer_study.tracking.heartbeat import Heartbeat, process_tags, watch_runs
from transfer_study.tracking.model_logging import log_trained_model
from transfer_study.tracking.registration import RegistrationHandlers

logger = logging.getLogger(__name__)

_MAX_PARAM_LENGTH = 6000  # MLflow's limit on a parameter value
_BATCH = 1000  # MLflow's limit on metrics per log_batch call
FINISHED, FAILED, KILLED = (
    RunStatus.to_string(s) for s in (RunStatus.FINISHED, RunStatus.FAILED, RunStatus.KILLED)
)


_STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)

# Set by a grid driver to the run its cells' child runs nest under.
GRID_PARENT_ENV = "TRANSFER_STUDY_GRID_PARENT_RUN_ID"
# In a grid cell's process only the cells' namespaces get runs: the study namespaces it
# recomputes settings in have their runs in the driver's process already.
GRID_CELL_PREFIX = "ablation."


class RunInterrupted(Exception):
    """The run was stopped by Ctrl-C or SIGTERM."""


def _raise_interrupted(signum: int, frame: object) -> None:
    raise RunInterrupted(f"Stopped by {signal.Signals(signum).name}.")


def _namespace(name: str) -> str | None:
    """``"scratch.model"`` → ``"scratch"``; a dataset outside any namespace → None."""
    return name.rpartition(".")[0] or None


def flatten(values: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """``{"a": {"b": 1}}`` → ``{"a.b": 1}``; lists stay whole."""
    flat: dict[str, Any] = {}
    for key, value in values.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            flat.update(flatten(value, f"{name}."))
        else:
            flat[name] = value
    return flat


def _chunks(items: list, size: int) -> Iterable[list]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


class ChildRunHook(RegistrationHandlers):
    """Creates, fills and closes one nested MLflow run per namespaced training."""

    def __init__(self) -> None:
        self._parent_run_id: str | None = None
        self._child_runs: dict[str, str] = {}
        self._pending_nodes: dict[str, set[str]] = {}
        self._unsaved_outputs: dict[str, set[str]] = {}
        self._base_tags: dict[str, str] = {}
        self._catalog: DataCatalog | None = None
        self._previous_handlers: dict[int, Any] = {}
        self._namespaces_with_runs: set[str] = set()
        self._diverged: set[str] = set()
        self._logged_models: dict[str, tuple[str, str]] = {}  # namespace → (uri, run id)
        self._saving: dict[str, Node] = {}  # nodes that ran, their outputs not all saved
        self._heartbeat: Heartbeat | None = None

    # ------------------------------------------------------------------ pipeline
    @hook_impl(trylast=True)  # after kedro-mlflow's hook has opened the parent run
    def before_pipeline_run(
        self, run_params: dict[str, Any], pipeline: Pipeline, catalog: DataCatalog
    ) -> None:
        """Remembers the parent run and which nodes each namespace still has to run."""
        grid_parent = os.environ.get(GRID_PARENT_ENV)
        active = None if grid_parent else mlflow.active_run()
        self._parent_run_id = grid_parent or (active.info.run_id if active else None)
        self._child_runs.clear()
        self._catalog = catalog
        self._pending_nodes, self._unsaved_outputs, self._saving = {}, {}, {}
        self._diverged = set()
        self._logged_models = {}
        own = {node.namespace for node in pipeline.nodes if node.namespace}
        if grid_parent:
            own = {namespace for namespace in own if namespace.startswith(GRID_CELL_PREFIX)}
        for node in pipeline.nodes:
            # A namespace's run lasts until its own nodes and those of the namespaces
            # nested in it (a fold's variants) are done.
            for namespace in _enclosing(node.namespace, own):
                self._pending_nodes.setdefault(namespace, set()).add(node.name)
        self._namespaces_with_runs = own
        names = run_params.get("pipeline_names") or [run_params.get("pipeline_name")]
        pipeline_name = "+".join(n for n in names if n) or "__default__"
        commit = get_git_commit(run_params.get("project_path") or ".")
        self._base_tags = {"pipeline": pipeline_name, **({"git_commit": commit} if commit else {})}
        if self._parent_run_id:
            if not grid_parent:  # the grid driver's process tags and keeps alive its run
                tags = {"pipeline": pipeline_name, **process_tags()}.items()
                self._client.log_batch(self._parent_run_id, tags=[RunTag(*t) for t in tags])
            self._heartbeat = watch_runs(
                self._client, self._parent_run_id, owns_parent=not grid_parent
            )
            self._catch_stop_signals()

    def _catch_stop_signals(self) -> None:
        # Kedro calls on_pipeline_error for an Exception only; KeyboardInterrupt and a
        # SIGTERM would leave the runs RUNNING. Handlers can only be set in the main thread.
        if threading.current_thread() is threading.main_thread():
            self._previous_handlers = {
                sig: signal.signal(sig, _raise_interrupted) for sig in _STOP_SIGNALS
            }

    def _restore_stop_signals(self) -> None:
        for sig, handler in self._previous_handlers.items():
            signal.signal(sig, handler)
        self._previous_handlers = {}

    @hook_impl(trylast=True)  # after kedro-mlflow has ended the parent run
    def after_pipeline_run(self) -> None:
        """Ends children whose namespace was only partly run (e.g. outputs already there)."""
        self._close(FINISHED)

    @hook_impl(trylast=True)
    def on_pipeline_error(self, error: Exception) -> None:
        """Marks children that could not finish as KILLED; failed ones are already FAILED.

        A node whose outputs were not all saved failed while saving (Kedro calls
        ``on_node_error`` only for the node's own code): its run is FAILED too.
        """
        for node in list(self._saving.values()):
            self.on_node_error(error, node)
        self._close(KILLED)

    def _close(self, unfinished_status: str) -> None:
        self._restore_stop_signals()
        if self._heartbeat is not None:
            self._heartbeat.stop()
            self._heartbeat = None
        for namespace in list(self._child_runs):
            self._end(namespace, unfinished_status)
        # kedro-mlflow 2.0.3 ends the parent run in the store but can leave it on this
        # thread's active-run stack, where the next KedroSession in the same process
        # (a notebook, a test) would log into it. Pop it, keeping the stored status.
        while (active := mlflow.active_run()) and active.info.run_id == self._parent_run_id:
            status = self._client.get_run(self._parent_run_id).info.status
            mlflow.end_run(status if status != "RUNNING" else FINISHED)
        self._parent_run_id = None

    # ------------------------------------------------------------------ nodes
    @hook_impl
    def before_node_run(self, node: Node) -> None:
        """Opens the namespace's child run at its first node."""
        namespace = node.namespace
        wanted = self._parent_run_id and namespace in self._namespaces_with_runs
        if wanted and namespace not in self._child_runs:
            self._start(namespace)

    @hook_impl
    def after_node_run(self, node: Node) -> None:
        """A node is done once its outputs are saved (Kedro saves them after this hook)."""
        if node.outputs:
            self._unsaved_outputs[node.name] = set(node.outputs)
            self._saving[node.name] = node
        else:
            self._node_done(node)

    def _node_done(self, node: Node) -> None:
        """Ends a child run once every node of its namespace (nested ones included) is done."""
        for namespace in _enclosing(node.namespace, self._namespaces_with_runs):
            pending = self._pending_nodes.get(namespace)
            if pending is None:
                continue
            pending.discard(node.name)
            if not pending:
                self._end(namespace, FINISHED)

    @hook_impl
    def on_node_error(self, error: Exception, node: Node) -> None:
        """Marks the failing node's child run FAILED (KILLED if it was interrupted),
        with the error as a tag."""
        run_id = self._child_runs.get(node.namespace or "")
        if run_id:
            self._client.set_tag(
                run_id, "error", f"{node.name}: {type(error).__name__}: {error}"[:5000]
            )
            self._end(node.namespace, KILLED if isinstance(error, RunInterrupted) else FAILED)

    # ------------------------------------------------------------------ datasets
    @hook_impl
    def after_dataset_saved(self, dataset_name: str, data: Any, node: Node) -> None:
        """Logs a saved dataset to its run, as its catalog ``metadata.mlflow`` says."""
        self._log_dataset(dataset_name, data)
        unsaved = self._unsaved_outputs.get(node.name)
        if unsaved is not None:
            unsaved.discard(dataset_name)
            if not unsaved:
                del self._unsaved_outputs[node.name]
                self._saving.pop(node.name, None)
                self._node_done(node)

    def _log_dataset(self, dataset_name: str, data: Any) -> None:
        spec = self._logging_spec(dataset_name)
        run_id = self._run_for(dataset_name)
        if not spec or not run_id:
            return
        kind, options = next(iter(spec.items()))
        handler = getattr(self, f"_log_{kind}", None)
        if handler is None:
            raise ValueError(
                f"Catalog entry '{dataset_name}': unknown metadata.mlflow key '{kind}' "
                "(use artifact, metrics, history, summary, model, registry_check or register)."
            )
        handler(run_id, data, options or {}, dataset_name)

    def _logging_spec(self, dataset_name: str) -> Mapping[str, Any] | None:
        if self._catalog is None or self._parent_run_id is None:
            return None
        metadata = getattr(self._catalog.get(dataset_name), "metadata", None) or {}
        return metadata.get("mlflow")

    def _run_for(self, dataset_name: str) -> str | None:
        namespace = _namespace(dataset_name)
        if namespace is None:
            return self._parent_run_id
        return self._child_runs.get(namespace)

    def _log_artifact(self, run_id: str, data: Any, options: Mapping, name: str) -> None:
        file_name = options.get("file", name.rpartition(".")[2])
        if isinstance(data, Figure):
            self._client.log_figure(run_id, data, file_name)
        elif isinstance(data, pd.DataFrame):
            self._client.log_text(run_id, data.to_csv(index=False), file_name)
        elif isinstance(data, str):
            self._client.log_text(run_id, data, file_name)
        else:
            self._client.log_text(run_id, json.dumps(data, indent=2, default=str), file_name)

    def _log_metrics(self, run_id: str, data: Mapping, options: Mapping, name: str) -> None:
        prefix = options.get("prefix", "")
        metrics = [
            Metric(f"{prefix}{key}", float(value), _now_ms(), 0)
            for key, value in flatten(data).items()
            if isinstance(value, (int, float)) and not isinstance(value, bool)
        ]
        for chunk in _chunks(metrics, _BATCH):
            self._client.log_batch(run_id, metrics=chunk)

    def _log_history(self, run_id: str, data: pd.DataFrame, options: Mapping, name: str) -> None:
        step_column = options.get("step", "step")
        columns = [c for c in data.select_dtypes("number").columns if c != step_column]
        timestamp = _now_ms()
        metrics = [
            Metric(column, float(row[column]), timestamp, int(row[step_column]))
            for _, row in data.iterrows()
            for column in columns
        ]
        for chunk in _chunks(metrics, _BATCH):
            self._client.log_batch(run_id, metrics=chunk)

    def _log_summary(self, run_id: str, data: Mapping, options: Mapping, name: str) -> None:
        tags = [RunTag(key, str(data[key])) for key in options.get("tags", []) if key in data]
        if data.get("diverged"):
            # Its nodes finished, but the training did not: the run ends FAILED.
            self._diverged.add(_namespace(name) or "")
            reason = str(data.get("divergence_reason"))[:5000]
            tags += [RunTag("stop_reason", "diverged"), RunTag("divergence_reason", reason)]
        params = [
            Param(key, str(value)[:_MAX_PARAM_LENGTH])
            for key, value in flatten(data.get("parameters", {})).items()
        ]
        for chunk in _chunks(params, 100):  # MLflow's limit on params per batch
            self._client.log_batch(run_id, params=chunk)
        self._client.log_batch(run_id, tags=tags)
        self._log_artifact(
            run_id, data, {"file": options.get("file", "training_summary.json")}, name
        )

    def _log_model(self, run_id: str, data: Mapping, options: Mapping, name: str) -> None:
        with tempfile.TemporaryDirectory() as folder:
            uri = log_trained_model(run_id, data, Path(folder), **options)
        self._logged_models[_namespace(name) or ""] = (uri, run_id)

    # ------------------------------------------------------------------ runs
    @property
    def _client(self) -> mlflow.MlflowClient:
        return mlflow.MlflowClient()

    def _start(self, namespace: str) -> None:
        # Nested in the run of the nearest enclosing namespace that has nodes of its own
        # (a fold's variants in the fold's run), else in the parent run.
        enclosing = _enclosing(namespace, self._namespaces_with_runs)[1:]
        parent_id = self._parent_run_id
        if enclosing:
            if enclosing[0] not in self._child_runs:
                self._start(enclosing[0])
            parent_id = self._child_runs[enclosing[0]]
        parent = self._client.get_run(self._parent_run_id)
        run = self._client.create_run(
            parent.info.experiment_id,
            run_name=namespace,
            tags={
                MLFLOW_PARENT_RUN_ID: parent_id,
                MLFLOW_RUN_NAME: namespace,
                "namespace": namespace,
                **self._base_tags,
                **process_tags(),
            },
        )
        self._child_runs[namespace] = run.info.run_id
        if self._heartbeat is not None:
            self._heartbeat.add(run.info.run_id)
        logger.info("MLflow child run '%s' (%s) started.", namespace, run.info.run_id)

    def _end(self, namespace: str, status: str) -> None:
        run_id = self._child_runs.pop(namespace, None)
        self._pending_nodes.pop(namespace, None)
        if status == FINISHED and namespace in self._diverged:
            status = FAILED
        if run_id:
            if self._heartbeat is not None:
                self._heartbeat.discard(run_id)
            self._client.set_terminated(run_id, status)


def _enclosing(namespace: str | None, with_runs: set[str]) -> list[str]:
    """``namespace`` and the namespaces around it that have runs, innermost first:
    ``fold_0.frozen`` → ``["fold_0.frozen", "fold_0"]``."""
    parts = (namespace or "").split(".")
    prefixes = [".".join(parts[:n]) for n in range(len(parts), 0, -1)]
    return [prefix for prefix in prefixes if prefix in with_runs]


def _now_ms() -> int:
    return int(time.time() * 1000)
