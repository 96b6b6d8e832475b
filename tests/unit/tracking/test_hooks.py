"""ChildRunHook's run life cycle, driven by Kedro's real runner on toy pipelines."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import mlflow
import pandas as pd
import pytest
from kedro.framework.hooks.manager import _create_hook_manager
from kedro.io import DataCatalog, DatasetError, MemoryDataset
from kedro.pipeline import Node, Pipeline
from kedro.runner import SequentialRunner

from transfer_study.tracking.hooks import ChildRunHook, RunInterrupted


def _identity(value):
    return value


def _history(value):
    return pd.DataFrame({"step": [1, 2, 3], "val_accuracy": [0.5, 0.6, 0.7]})


def _fail(value):
    raise RuntimeError("boom")


@pytest.fixture
def tracking(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    mlflow.set_tracking_uri(f"sqlite:///{tmp_path / 'mlflow.db'}")
    experiment = mlflow.set_experiment("hooks")
    parent = mlflow.start_run(run_name="parent")
    yield mlflow.MlflowClient(), parent.info.run_id, experiment.experiment_id
    while mlflow.active_run():
        mlflow.end_run()


def _catalog() -> DataCatalog:
    logged = {"mlflow": {"metrics": {"prefix": "test_"}}}
    return DataCatalog(
        {
            "start": MemoryDataset(1),
            "good.metrics": MemoryDataset(metadata=logged),
            "good.history": MemoryDataset(metadata={"mlflow": {"history": {}}}),
            "late.first": MemoryDataset(),
            "late.second": MemoryDataset(),
            "bad.out": MemoryDataset(),
        }
    )


def _pipeline() -> Pipeline:
    good = Pipeline(
        [
            Node(
                lambda v: {"accuracy": 0.9},
                "start",
                "good.metrics",
                name="evaluate",
                namespace="good",
            ),
            Node(_history, "good.metrics", "good.history", name="history", namespace="good"),
        ]
    )
    bad = Pipeline([Node(_fail, "good.history", "bad.out", name="train", namespace="bad")])
    # "late" starts before "bad" fails but its second node needs "bad"'s output.
    late = Pipeline(
        [
            Node(_identity, "start", "late.first", name="first", namespace="late"),
            Node(
                lambda a, b: a,
                ["late.first", "bad.out"],
                "late.second",
                name="second",
                namespace="late",
            ),
        ]
    )
    return good + bad + late


def _run(hook: ChildRunHook, pipeline: Pipeline, catalog: DataCatalog) -> None:
    manager = _create_hook_manager()
    manager.register(hook)
    hook.before_pipeline_run(
        run_params={"pipeline_names": ["toy"], "project_path": "."},
        pipeline=pipeline,
        catalog=catalog,
    )
    try:
        SequentialRunner().run(pipeline, catalog, manager)
    except Exception as error:
        hook.on_pipeline_error(error)
        raise
    hook.after_pipeline_run()


def _children(client, experiment_id: str, parent_id: str) -> dict:
    runs = client.search_runs([experiment_id], f"tags.mlflow.parentRunId = '{parent_id}'")
    return {run.info.run_name: run for run in runs}


def test_finished_failed_and_interrupted_trainings_get_their_own_status(tracking):
    client, parent_id, experiment_id = tracking
    with pytest.raises(RuntimeError, match="boom"):
        _run(ChildRunHook(), _pipeline(), _catalog())
    children = _children(client, experiment_id, parent_id)
    assert children["good"].info.status == "FINISHED"
    assert children["bad"].info.status == "FAILED"
    assert children["bad"].data.tags["error"] == "bad.train: RuntimeError: boom"
    assert children["late"].info.status == "KILLED"
    assert children["good"].data.metrics["test_accuracy"] == 0.9
    history = client.get_metric_history(children["good"].info.run_id, "val_accuracy")
    assert [(p.step, p.value) for p in history] == [(1, 0.5), (2, 0.6), (3, 0.7)]
    assert children["good"].data.tags["pipeline"] == "toy"


def test_a_child_run_ends_only_after_its_last_output_is_logged(tracking):
    client, parent_id, experiment_id = tracking
    pipeline = _pipeline().only_nodes_with_namespaces(["good"])
    _run(ChildRunHook(), pipeline, _catalog())
    (good,) = _children(client, experiment_id, parent_id).values()
    assert good.info.status == "FINISHED"
    assert len(client.get_metric_history(good.info.run_id, "val_accuracy")) == 3


def test_unknown_logging_kind_in_the_catalog_is_refused(tracking):
    catalog = _catalog()
    catalog["good.metrics"] = MemoryDataset(metadata={"mlflow": {"figure": {}}})
    with pytest.raises(ValueError, match=r"unknown metadata\.mlflow key 'figure'"):
        _run(ChildRunHook(), _pipeline().only_nodes_with_namespaces(["good"]), catalog)


def test_without_a_parent_run_nothing_is_logged(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    mlflow.set_tracking_uri(f"sqlite:///{tmp_path / 'mlflow.db'}")
    _run(ChildRunHook(), _pipeline().only_nodes_with_namespaces(["good"]), _catalog())
    assert mlflow.search_runs(search_all_experiments=True).empty


def _stop_with_sigterm(value):
    os.kill(os.getpid(), signal.SIGTERM)
    return value


def test_sigterm_during_a_training_kills_its_run_and_restores_the_handlers(tracking):
    client, parent_id, experiment_id = tracking
    handler_before = signal.getsignal(signal.SIGTERM)
    pipeline = Pipeline(
        [Node(_stop_with_sigterm, "start", "cut.out", name="train", namespace="cut")]
    )
    with pytest.raises(RunInterrupted, match="SIGTERM"):
        _run(ChildRunHook(), pipeline, DataCatalog({"start": MemoryDataset(1)}))
    (cut,) = _children(client, experiment_id, parent_id).values()
    assert cut.info.status == "KILLED"
    assert "SIGTERM" in cut.data.tags["error"]
    assert signal.getsignal(signal.SIGTERM) is handler_before


def test_a_namespace_inside_a_fold_is_nested_in_the_folds_run_which_ends_last(tracking):
    client, parent_id, experiment_id = tracking
    metrics = {"mlflow": {"metrics": {}}}
    catalog = DataCatalog(
        {
            "start": MemoryDataset(1),
            "fold_0.split": MemoryDataset(),
            "fold_0.frozen.metrics": MemoryDataset(metadata=metrics),
            "fold_0.scratch.metrics": MemoryDataset(metadata=metrics),
        }
    )
    pipeline = Pipeline(
        [
            Node(_identity, "start", "fold_0.split", name="select", namespace="fold_0"),
            *(
                Node(
                    lambda v: {"accuracy": 0.5},
                    "fold_0.split",
                    f"fold_0.{variant}.metrics",
                    name="train",
                    namespace=f"fold_0.{variant}",
                )
                for variant in ("frozen", "scratch")
            ),
        ]
    )
    hook = ChildRunHook()
    ended: list[str] = []
    end = hook._end
    hook._end = lambda namespace, status: (ended.append(namespace), end(namespace, status))
    _run(hook, pipeline, catalog)
    (fold,) = _children(client, experiment_id, parent_id).values()
    assert fold.info.run_name == "fold_0"
    nested = _children(client, experiment_id, fold.info.run_id)
    assert set(nested) == {"fold_0.frozen", "fold_0.scratch"}
    assert all(run.info.status == "FINISHED" for run in nested.values())
    assert nested["fold_0.frozen"].data.metrics["accuracy"] == 0.5
    assert ended[-1] == "fold_0"  # after both of its variants


def test_a_training_whose_summary_says_it_diverged_ends_failed_and_the_others_finished(
    tracking,
):
    client, parent_id, experiment_id = tracking
    logged = {"mlflow": {"summary": {"tags": ["variant"]}}}
    summaries = {
        "frozen": {"variant": "frozen", "diverged": False, "stop_reason": "patience"},
        "finetune": {
            "variant": "finetune",
            "diverged": True,
            "stop_reason": "diverged",
            "divergence_reason": "NaN loss at step 12",
        },
    }
    catalog = DataCatalog(
        {"start": MemoryDataset(1)}
        | {f"{v}.training_summary": MemoryDataset(metadata=logged) for v in summaries}
    )
    pipeline = Pipeline(
        [
            Node(
                lambda value, summary=summary: summary,
                "start",
                f"{variant}.training_summary",
                name="train",
                namespace=variant,
            )
            for variant, summary in summaries.items()
        ]
    )
    _run(ChildRunHook(), pipeline, catalog)  # the run itself goes on
    children = _children(client, experiment_id, parent_id)
    assert children["finetune"].info.status == "FAILED"
    assert children["finetune"].data.tags["stop_reason"] == "diverged"
    assert children["finetune"].data.tags["divergence_reason"] == "NaN loss at step 12"
    assert children["frozen"].info.status == "FINISHED"
    assert "stop_reason" not in children["frozen"].data.tags


class _UnsavableDataset(MemoryDataset):
    def save(self, data) -> None:
        raise OSError("Not a directory: 'data/06_models/a'")


def test_a_node_that_fails_while_saving_its_outputs_leaves_its_run_failed(tracking):
    """Kedro calls ``on_node_error`` only for the node's own code; an output that cannot be
    saved stops the pipeline after ``after_node_run``."""
    client, parent_id, experiment_id = tracking
    pipeline = Pipeline([Node(_identity, "x", "a.out", name="n", namespace="a")])
    catalog = DataCatalog({"x": MemoryDataset(1), "a.out": _UnsavableDataset()})

    with pytest.raises(DatasetError, match="Not a directory"):
        _run(ChildRunHook(), pipeline, catalog)

    (child,) = client.search_runs([experiment_id], f"tags.mlflow.parentRunId = '{parent_id}'")
    assert child.info.status == "FAILED"
    assert "Not a directory" in child.data.tags["error"]
