"""The results notebook, executed headless after a tiny study in a throwaway project copy."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import mlflow
import nbformat
import pytest
from ipykernel.kernelspec import write_kernel_spec
from jupyter_client import AsyncKernelManager
from jupyter_client.kernelspec import KernelSpecManager
from nbclient import NotebookClient
from nbformat import NotebookNode

from tests.helpers.kedro_project import REPO_ROOT, tiny_study
from tests.helpers.parameters import shipped_study_variants

NOTEBOOK = REPO_ROOT / "notebooks" / "study_results.ipynb"
VARIANTS = shipped_study_variants()  # what a plain `kedro run` trains
KERNEL_NAME = "transfer_study_test"
CELL_TIMEOUT_SECONDS = 300
TEXT_MIMETYPES = ("text/plain", "text/html", "text/markdown")


def _kernel_manager(kernels: Path) -> AsyncKernelManager:
    """A kernel of this interpreter (the project's venv), whatever kernels are installed."""
    write_kernel_spec(kernels / KERNEL_NAME)
    return AsyncKernelManager(
        kernel_name=KERNEL_NAME, kernel_spec_manager=KernelSpecManager(kernel_dirs=[str(kernels)])
    )


def _outputs(notebook: NotebookNode, cell_id: str | None = None) -> list[NotebookNode]:
    return [
        output
        for cell in notebook.cells
        if cell.cell_type == "code" and cell_id in (None, cell.id)
        for output in cell.outputs
    ]


def _text(outputs: list[NotebookNode]) -> str:
    texts = [output.get("text", "") for output in outputs]
    texts += [output.get("data", {}).get(kind, "") for output in outputs for kind in TEXT_MIMETYPES]
    return "\n".join(texts)


def _has_image(outputs: list[NotebookNode]) -> bool:
    return any("image/png" in output.get("data", {}) for output in outputs)


@pytest.fixture(scope="module")
def study(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A project copy after `kedro run --pipeline=demo_data` and `kedro run`, tiny."""
    return tiny_study(tmp_path_factory.mktemp("notebook") / "project")


@pytest.fixture(scope="module")
def executed(study: Path, tmp_path_factory: pytest.TempPathFactory) -> NotebookNode:
    """The notebook run from the copy's notebooks/ folder, as Jupyter or VS Code runs it."""
    notebooks = study / "notebooks"
    notebooks.mkdir()
    shutil.copy(NOTEBOOK, notebooks)
    notebook = nbformat.read(notebooks / NOTEBOOK.name, as_version=4)
    # Without MLFLOW_TRACKING_URI the notebook must find the default store, the project's
    # sqlite:///mlflow.db (the file the study logged to above), from notebooks/.
    env = {key: value for key, value in os.environ.items() if key != "MLFLOW_TRACKING_URI"}
    client = NotebookClient(
        notebook,
        km=_kernel_manager(tmp_path_factory.mktemp("kernels")),
        timeout=CELL_TIMEOUT_SECONDS,
        resources={"metadata": {"path": str(notebooks)}},
    )
    client.execute(env={**env, "KEDRO_DISABLE_TELEMETRY": "1"})  # raises on a failing cell
    return notebook


def test_committed_notebook_has_no_outputs():
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    nbformat.validate(notebook)
    code_cells = [cell for cell in notebook.cells if cell.cell_type == "code"]
    assert code_cells
    for cell in code_cells:
        assert cell.outputs == [], f"cell {cell.id} has outputs: clear them before committing"
        assert cell.execution_count is None, cell.id
    assert notebook.metadata.kernelspec.name == "python3"


@pytest.mark.slow
def test_notebook_runs_without_errors_and_shows_every_variant(executed: NotebookNode):
    outputs = _outputs(executed)
    assert not [output for output in outputs if output.output_type == "error"]
    text = _text(outputs)
    for variant in VARIANTS:
        assert variant in text
    assert "Paired differences" in _text(_outputs(executed, "report"))
    assert "p_holm" in _text(_outputs(executed, "pairs"))


@pytest.mark.slow
def test_notebook_shows_the_saved_figures_and_example_photos(executed: NotebookNode):
    for cell_id in ("comparison-chart", "figures", "history"):
        assert _has_image(_outputs(executed, cell_id)), cell_id
    figures = _outputs(executed, "figures")
    assert sum("image/png" in output.get("data", {}) for output in figures) == 2 * len(VARIANTS)
    for cell_id in ("correct", "mistakes"):
        outputs = _outputs(executed, cell_id)
        assert _has_image(outputs) or ": none." in _text(outputs), cell_id


@pytest.mark.slow
def test_notebook_lists_the_latest_study_runs_from_the_projects_mlflow_store(
    study: Path, executed: NotebookNode
):
    client = mlflow.MlflowClient(tracking_uri=f"sqlite:///{study / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("transfer_study")
    children = client.search_runs(
        [experiment.experiment_id], filter_string="tags.mlflow.parentRunId != ''"
    )
    assert sorted(run.info.run_name for run in children) == sorted(VARIANTS)
    table = _text(_outputs(executed, "children"))
    for run in children:
        assert run.info.run_id in table
    assert "test_accuracy" in table
    assert not (study / "notebooks" / "mlflow.db").exists()  # found the project's store
