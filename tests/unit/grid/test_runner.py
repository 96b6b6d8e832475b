"""DaskGridRunner's checks and arithmetic: the refusals before any node, the cells it
finds in a pipeline, how it batches them and what each task process gets, and how it
splits a run into the prefix here, the cells on the cluster and the report here."""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import SimpleNamespace

import mlflow
import pytest
import yaml
from kedro.io import DataCatalog, MemoryDataset
from kedro.pipeline import Node, Pipeline

from transfer_study.config.grid import ClusterSettings
from transfer_study.errors import UserError
from transfer_study.grid import runner
from transfer_study.grid.runner import (
    DaskGridRunner,
    GridSetupError,
    cell_namespaces,
    refuse_unusable_cluster,
)
from transfer_study.grid.tasks import RUNTIME_PARAMS_ENV
from transfer_study.tracking.hooks import GRID_PARENT_ENV

REPO_CONF = Path(__file__).parents[3] / "conf"
# The runner's names (``<cell>.result``) have dots, as the real pipeline's do.
pytestmark = pytest.mark.filterwarnings("ignore:One or more dataset names contain '.'")


def _cluster(**changes) -> ClusterSettings:
    values = {
        "workers": 2,
        "scheduler": None,
        "cells_per_task": "auto",
        "retries": 2,
        "dashboard": False,
    }
    return ClusterSettings(**{**values, **changes})


def _identity(value):
    return value


def _collect(*values):
    return list(values)


@pytest.fixture
def bokeh_installed(monkeypatch: pytest.MonkeyPatch):
    """Makes ``find_spec`` answer for bokeh as ``installed`` says, other names as usual."""
    real_find_spec = importlib.util.find_spec

    def set_installed(installed: bool) -> None:
        def find_spec(name, *args, **kwargs):
            if name == "bokeh":
                return SimpleNamespace(name="bokeh") if installed else None
            return real_find_spec(name, *args, **kwargs)

        monkeypatch.setattr(runner.importlib.util, "find_spec", find_spec)

    return set_installed


# --- refuse_unusable_cluster -------------------------------------------------------------


def test_a_remote_scheduler_with_a_sqlite_store_is_refused(tmp_path: Path):
    store = f"sqlite:///{tmp_path / 'mlflow.db'}"
    with pytest.raises(GridSetupError) as caught:
        refuse_unusable_cluster(_cluster(scheduler="tcp://grid-host:8786"), store)
    assert isinstance(caught.value, UserError)
    assert isinstance(caught.value, ValueError)
    message = str(caught.value)
    assert "MLFLOW_TRACKING_URI" in message
    assert "tcp://grid-host:8786" in message
    assert store in message


@pytest.mark.parametrize("store", ["http://host:5000", "https://mlflow.example.org"])
def test_a_remote_scheduler_with_a_tracking_server_passes(store: str):
    refuse_unusable_cluster(_cluster(scheduler="tcp://grid-host:8786"), store)


def test_a_local_cluster_with_a_sqlite_store_passes(tmp_path: Path):
    refuse_unusable_cluster(_cluster(), f"sqlite:///{tmp_path / 'mlflow.db'}")


def test_a_dashboard_without_bokeh_is_refused(bokeh_installed):
    bokeh_installed(False)
    with pytest.raises(GridSetupError, match="bokeh"):
        refuse_unusable_cluster(_cluster(dashboard=True), "http://host:5000")


def test_a_dashboard_with_bokeh_passes(bokeh_installed):
    bokeh_installed(True)
    refuse_unusable_cluster(_cluster(dashboard=True), "http://host:5000")


def test_no_dashboard_needs_no_bokeh(bokeh_installed):
    bokeh_installed(False)
    refuse_unusable_cluster(_cluster(dashboard=False), "http://host:5000")


# --- cell_namespaces ---------------------------------------------------------------------


def _toy_pipeline() -> Pipeline:
    """Cells whose dependencies put ``n8`` before ``n4`` (not alphabetical), a cell with a
    deeper namespace, nodes of the study's ``frozen`` and of no namespace."""
    return Pipeline(
        [
            Node(_identity, "raw", "frozen_lr", name="lr", namespace="frozen"),
            Node(_identity, "frozen_lr", "n8_a", name="n8_a", namespace="ablation.frozen.n8_a1_s0"),
            Node(_identity, "n8_a", "n8_b", name="n8_b", namespace="ablation.frozen.n8_a1_s0.sub"),
            Node(_identity, "n8_b", "n4_a", name="n4_a", namespace="ablation.frozen.n4_a1_s0"),
            Node(_identity, "n4_a", "n4_b", name="n4_b", namespace="ablation.frozen.n4_a1_s0"),
            Node(
                _identity, "n4_b", "ft_a", name="ft_a", namespace="ablation.finetune.n4_a1_s0.x.y"
            ),
            Node(_collect, ["n4_b", "ft_a"], "report", name="report"),
        ]
    )


def test_cell_namespaces_are_the_cells_once_each_in_pipeline_order():
    assert cell_namespaces(_toy_pipeline()) == [
        "ablation.frozen.n8_a1_s0",
        "ablation.frozen.n4_a1_s0",
        "ablation.finetune.n4_a1_s0",
    ]


def test_a_pipeline_without_cells_has_no_cell_namespaces():
    pipeline = Pipeline([Node(_identity, "raw", "frozen_lr", name="lr", namespace="frozen")])
    assert cell_namespaces(pipeline) == []


def test_a_namespace_that_only_starts_like_ablation_is_no_cell():
    pipeline = Pipeline([Node(_identity, "raw", "x", name="n", namespace="ablations.frozen.c")])
    assert cell_namespaces(pipeline) == []


# --- batching, threads, study namespaces, KEDRO_ENV ---------------------------------------


@pytest.mark.parametrize(
    ("n_cells", "workers", "expected"),
    [(45, 2, 8), (2, 2, 1), (1, 1, 1), (6, 2, 1), (7, 2, 2), (12, 4, 1), (13, 4, 2)],
)
def test_auto_cells_per_task_gives_about_three_tasks_per_worker(n_cells, workers, expected):
    assert runner._cells_per_task(n_cells, _cluster(workers=workers)) == expected


@pytest.mark.parametrize("setting", [1, 5, 100])
def test_a_number_of_cells_per_task_is_kept(setting: int):
    assert runner._cells_per_task(45, _cluster(cells_per_task=setting)) == setting


def test_a_local_clusters_tasks_share_this_machines_cores(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    cores = os.cpu_count() or 1
    assert runner._threads_per_task(_cluster(workers=2)) == {
        "OMP_NUM_THREADS": str(max(1, cores // 2))
    }


@pytest.mark.parametrize(
    ("cores", "workers", "threads"),
    [(8, 2, "4"), (8, 3, "2"), (2, 2, "1"), (1, 2, "1"), (None, 2, "1")],
)
def test_threads_per_task_divide_the_cores_by_the_workers(
    monkeypatch: pytest.MonkeyPatch, cores, workers, threads
):
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.setattr(runner.os, "cpu_count", lambda: cores)
    assert runner._threads_per_task(_cluster(workers=workers)) == {"OMP_NUM_THREADS": threads}


def test_a_chosen_omp_num_threads_is_left_alone(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "3")
    assert runner._threads_per_task(_cluster(workers=2)) == {}


def test_a_remote_schedulers_tasks_get_no_thread_count(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    assert runner._threads_per_task(_cluster(scheduler="tcp://grid-host:8786")) == {}


@pytest.mark.parametrize(
    ("cells", "variants"),
    [
        (["ablation.frozen.n4_a1_s0"], ["frozen"]),
        (["ablation.finetune.n4_a1_s0"], ["frozen", "finetune"]),
        (["ablation.scratch.n4_a1_s0"], ["scratch"]),
        (
            [
                "ablation.finetune.n4_a1_s0",
                "ablation.scratch.n8_a1_s0",
                "ablation.finetune.n8_a1_s0",
            ],
            ["scratch", "frozen", "finetune"],
        ),
    ],
)
def test_study_namespaces_are_the_variants_whose_settings_the_cells_read(cells, variants):
    assert runner._study_namespaces(cells) == variants


def test_batches_keep_the_order_and_the_remainder():
    assert list(runner._batches(["a", "b", "c", "d", "e"], 2)) == [["a", "b"], ["c", "d"], ["e"]]
    assert list(runner._batches([], 3)) == []


def test_the_runs_env_wins_over_kedro_env(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("KEDRO_ENV", "full")
    assert runner._kedro_env("local") == {"KEDRO_ENV": "local"}
    assert runner._kedro_env(None) == {"KEDRO_ENV": "full"}
    monkeypatch.delenv("KEDRO_ENV")
    assert runner._kedro_env(None) == {}


# --- _run_cells: the tasks and the tracking URI --------------------------------------------


@pytest.fixture
def fake_tracking(monkeypatch: pytest.MonkeyPatch) -> dict:
    """mlflow's tracking URI and active run, and the tracking server, as fakes."""
    state = {"uri": "sqlite:///store.db", "servers": [], "uri_during_cluster": None}
    monkeypatch.setattr(mlflow, "get_tracking_uri", lambda: state["uri"])
    monkeypatch.setattr(mlflow, "set_tracking_uri", lambda uri: state.update(uri=uri))
    parent = SimpleNamespace(info=SimpleNamespace(run_id="parent-run"))
    monkeypatch.setattr(mlflow, "active_run", lambda: parent)

    @contextmanager
    def server(store_uri: str, log_folder: Path) -> Iterator[str]:
        state["servers"].append((store_uri, log_folder))
        yield "http://127.0.0.1:5999"

    monkeypatch.setattr(runner, "shared_tracking_uri", server)
    return state


def _ablation(**cluster) -> SimpleNamespace:
    return SimpleNamespace(cluster=_cluster(**cluster))


def test_run_cells_gives_every_task_the_runs_settings(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fake_tracking: dict
):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.delenv("KEDRO_ENV", raising=False)
    monkeypatch.setattr(runner.os, "cpu_count", lambda: 4)
    monkeypatch.setattr(
        runner,
        "current_run_params",
        lambda: {"runtime_params": {"model": {"name": "a,b"}}, "env": "local"},
    )
    submitted = []

    def run_on_cluster(tasks, settings):
        fake_tracking["uri_during_cluster"] = mlflow.get_tracking_uri()
        submitted.append((tasks, settings))

    monkeypatch.setattr(runner, "run_on_cluster", run_on_cluster)
    todo = [f"ablation.finetune.n{n}_a1_s0" for n in (4, 8, 15, 30, 60, 120, 240)]
    settings = _ablation(workers=2, cells_per_task=3)

    DaskGridRunner()._run_cells(todo, settings)

    ((tasks, cluster),) = submitted
    assert cluster is settings.cluster
    assert [task.cells for task in tasks] == [tuple(todo[0:3]), tuple(todo[3:6]), (todo[6],)]
    assert tasks[0].namespaces == (*todo[0:3], "frozen", "finetune")
    project = Path.cwd()  # tmp_path, with any symbolic link resolved
    assert all(task.project == str(project) for task in tasks)
    log_folder = project / "data/09_logs/grid"
    assert tasks[2].log_file == str(log_folder / f"{todo[6]}.log")
    assert dict(tasks[0].environ) == {
        "OMP_NUM_THREADS": "2",
        "MLFLOW_TRACKING_URI": "http://127.0.0.1:5999",
        GRID_PARENT_ENV: "parent-run",
        RUNTIME_PARAMS_ENV: '{"model": {"name": "a,b"}}',
        "KEDRO_ENV": "local",
    }
    # The server is started over the project's store; this process writes through it
    # while the cells run, and to the store again afterwards.
    assert fake_tracking["servers"] == [("sqlite:///store.db", Path("data/09_logs/grid"))]
    assert fake_tracking["uri_during_cluster"] == "http://127.0.0.1:5999"
    assert fake_tracking["uri"] == "sqlite:///store.db"


def test_run_cells_restores_the_tracking_uri_when_cells_fail(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fake_tracking: dict
):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(runner, "current_run_params", dict)

    def failing(tasks, settings):
        raise RuntimeError("cells failed")

    monkeypatch.setattr(runner, "run_on_cluster", failing)
    with pytest.raises(RuntimeError, match="cells failed"):
        DaskGridRunner()._run_cells(["ablation.frozen.n4_a1_s0"], _ablation())
    assert fake_tracking["uri"] == "sqlite:///store.db"


def test_run_cells_without_a_parent_run_or_params_sets_neither(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fake_tracking: dict
):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    monkeypatch.delenv("KEDRO_ENV", raising=False)
    monkeypatch.setattr(mlflow, "active_run", lambda: None)
    monkeypatch.setattr(runner, "current_run_params", lambda: {"runtime_params": {}, "env": None})
    submitted = []
    monkeypatch.setattr(runner, "run_on_cluster", lambda tasks, settings: submitted.extend(tasks))

    DaskGridRunner()._run_cells(
        ["ablation.frozen.n4_a1_s0", "ablation.frozen.n8_a1_s0"], _ablation()
    )

    # auto: 2 cells on 2 workers, a task each
    assert [task.namespaces for task in submitted] == [
        ("ablation.frozen.n4_a1_s0", "frozen"),
        ("ablation.frozen.n8_a1_s0", "frozen"),
    ]
    assert all(
        dict(task.environ) == {"MLFLOW_TRACKING_URI": "http://127.0.0.1:5999"} for task in submitted
    )


# --- _run: prefix here, cells on the cluster, report here ------------------------------------


def _ablation_block(**cluster) -> dict:
    conf = yaml.safe_load((REPO_CONF / "base" / "parameters_data_size_ablation.yml").read_text())
    block = conf["data_size_ablation"]
    return {**block, "cluster": {**block["cluster"], **cluster}}


def _grid_pipeline(ran: list[str]) -> Pipeline:
    def step(name):
        def run(*values):
            ran.append(name)
            return name

        run.__name__ = name
        return run

    cells = ["ablation.frozen.n4_a1_s0", "ablation.frozen.n8_a1_s0"]
    return Pipeline(
        [
            Node(
                step("prefix"), "params:data_size_ablation", "frozen.learning_rate", name="prefix"
            ),
            *(
                Node(
                    step(cell),
                    "frozen.learning_rate",
                    f"{cell}.result",
                    name="train",
                    namespace=cell,
                )
                for cell in cells
            ),
            Node(step("report"), [f"{cell}.result" for cell in cells], "report", name="report"),
        ]
    )


def _catalog(block: dict) -> DataCatalog:
    catalog = DataCatalog()
    catalog["params:data_size_ablation"] = MemoryDataset(block)
    for name in ("frozen.learning_rate", "report", "ablation.frozen.n8_a1_s0.result"):
        catalog[name] = MemoryDataset()
    catalog["ablation.frozen.n4_a1_s0.result"] = MemoryDataset()
    return catalog


def test_run_trains_only_the_cells_without_a_result_between_prefix_and_report(
    monkeypatch: pytest.MonkeyPatch,
):
    monkeypatch.setattr(mlflow, "get_tracking_uri", lambda: "sqlite:///store.db")
    ran: list[str] = []
    catalog = _catalog(_ablation_block())
    catalog.save("ablation.frozen.n8_a1_s0.result", "trained before")

    def run_cells(self, todo, settings):
        ran.append(("cells", tuple(todo)))
        assert settings.cluster.workers == 2
        for cell in todo:
            catalog.save(f"{cell}.result", "trained on the cluster")

    monkeypatch.setattr(DaskGridRunner, "_run_cells", run_cells)

    DaskGridRunner().run(_grid_pipeline(ran), catalog)

    assert ran == ["prefix", ("cells", ("ablation.frozen.n4_a1_s0",)), "report"]


def test_run_with_every_result_there_starts_no_cluster(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr(mlflow, "get_tracking_uri", lambda: "sqlite:///store.db")
    ran: list[str] = []
    catalog = _catalog(_ablation_block())
    catalog.save("ablation.frozen.n4_a1_s0.result", "trained before")
    catalog.save("ablation.frozen.n8_a1_s0.result", "trained before")
    monkeypatch.setattr(
        DaskGridRunner, "_run_cells", lambda *args: pytest.fail("no cell needs training")
    )

    DaskGridRunner().run(_grid_pipeline(ran), catalog)

    assert ran == ["prefix", "report"]


def test_run_refuses_an_unusable_cluster_before_any_node(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.chdir(tmp_path)  # nothing lands in the checkout should the refusal go
    monkeypatch.setattr(mlflow, "get_tracking_uri", lambda: "sqlite:///store.db")
    monkeypatch.setattr(
        DaskGridRunner, "_run_cells", lambda *args: pytest.fail("the cells were submitted")
    )
    ran: list[str] = []
    catalog = _catalog(_ablation_block(scheduler="tcp://grid-host:8786"))

    with pytest.raises(GridSetupError, match="MLFLOW_TRACKING_URI"):
        DaskGridRunner().run(_grid_pipeline(ran), catalog)

    assert ran == []
