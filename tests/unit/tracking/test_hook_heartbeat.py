"""ChildRunHook's process tags and heartbeat, and child runs under a grid driver's run."""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator
from pathlib import Path

import mlflow
import pytest
from kedro.framework.hooks.manager import _create_hook_manager
from kedro.io import DataCatalog, MemoryDataset
from kedro.pipeline import Node, Pipeline
from kedro.runner import SequentialRunner

from transfer_study.tracking.heartbeat import HEARTBEAT_TAG, HOST_TAG, PID_TAG
from transfer_study.tracking.hooks import GRID_PARENT_ENV, ChildRunHook


@pytest.fixture(scope="module")
def database(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """One sqlite store for the module (creating one takes seconds)."""
    folder = tmp_path_factory.mktemp("hook_heartbeat")
    uri = f"sqlite:///{folder / 'mlflow.db'}"
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MLFLOW_TRACKING_URI", uri)
        mlflow.set_tracking_uri(uri)
        yield folder
    mlflow.set_tracking_uri(None)


@pytest.fixture
def store(database: Path, request: pytest.FixtureRequest) -> Iterator[tuple]:
    """A client and an experiment of the test's own."""
    client = mlflow.MlflowClient()
    experiment_id = client.create_experiment(
        request.node.name, artifact_location=(database / request.node.name).as_uri()
    )
    yield client, experiment_id
    while mlflow.active_run():
        mlflow.end_run()


NAMESPACES = ("scratch", "frozen")


def _pipeline(namespaces: tuple[str, ...] = NAMESPACES) -> Pipeline:
    return Pipeline(
        [
            Node(lambda v: v, "start", f"{namespace}.out", name="train", namespace=namespace)
            for namespace in namespaces
        ]
    )


def _run(hook: ChildRunHook, namespaces: tuple[str, ...] = NAMESPACES) -> None:
    manager = _create_hook_manager()
    manager.register(hook)
    pipeline = _pipeline(namespaces)
    catalog = DataCatalog({"start": MemoryDataset(1)})
    hook.before_pipeline_run(
        run_params={"pipeline_names": ["toy"], "project_path": "."},
        pipeline=pipeline,
        catalog=catalog,
    )
    SequentialRunner().run(pipeline, catalog, manager)
    hook.after_pipeline_run()


def _children(client, experiment_id: str, parent_id: str) -> dict:
    runs = client.search_runs([experiment_id], f"tags.mlflow.parentRunId = '{parent_id}'")
    return {run.info.run_name: run for run in runs}


def _assert_this_process(tags: dict[str, str]) -> None:
    assert tags[HOST_TAG] == socket.gethostname()
    assert tags[PID_TAG] == str(os.getpid())
    assert float(tags[HEARTBEAT_TAG]) > 0


def test_the_parent_and_child_runs_carry_host_pid_and_heartbeat(store):
    client, experiment_id = store
    parent_id = mlflow.start_run(experiment_id=experiment_id).info.run_id
    hook = ChildRunHook()
    _run(hook)
    children = _children(client, experiment_id, parent_id)
    assert sorted(children) == ["frozen", "scratch"]
    for run in children.values():
        _assert_this_process(run.data.tags)
        assert run.info.status == "FINISHED"
    _assert_this_process(client.get_run(parent_id).data.tags)
    assert hook._heartbeat is None  # stopped and dropped with the pipeline


def test_a_run_started_with_an_orphan_in_its_experiment_kills_it(store):
    client, experiment_id = store
    orphan = client.create_run(
        experiment_id,
        tags={HOST_TAG: "gone.invalid", PID_TAG: "1", HEARTBEAT_TAG: "1000"},
    ).info.run_id
    mlflow.start_run(experiment_id=experiment_id)
    _run(ChildRunHook())
    run = client.get_run(orphan)
    assert run.info.status == "KILLED"
    assert run.data.tags["stop_reason"].startswith("orphaned: no heartbeat for ")


def test_child_runs_nest_under_the_grid_parent_without_an_active_run(
    store, monkeypatch: pytest.MonkeyPatch
):
    client, experiment_id = store
    grid_parent = client.create_run(experiment_id, run_name="grid").info.run_id
    monkeypatch.setenv(GRID_PARENT_ENV, grid_parent)
    assert mlflow.active_run() is None
    # A cell's process also recomputes the study's settings (namespace frozen): their
    # runs are the driver's, so only the cell gets one here.
    _run(ChildRunHook(), ("frozen", "ablation.frozen.n4_a1_s0"))
    children = _children(client, experiment_id, grid_parent)
    assert sorted(children) == ["ablation.frozen.n4_a1_s0"]
    for run in children.values():
        _assert_this_process(run.data.tags)
        assert run.info.status == "FINISHED"
    parent = client.get_run(grid_parent)
    assert PID_TAG not in parent.data.tags
    assert HEARTBEAT_TAG not in parent.data.tags
    assert parent.info.status == "RUNNING"  # the grid driver's to end
    assert mlflow.active_run() is None
