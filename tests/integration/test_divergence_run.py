"""A `kedro run` in which fine-tune diverges: the run finishes, fine-tune is reported as
diverged with the advice to lower its learning rate, and its MLflow run alone is FAILED."""

from __future__ import annotations

import json
from pathlib import Path

import mlflow
import pandas as pd
import pytest

from tests.helpers.kedro_project import (
    TINY_DEMO,
    TINY_TRAINING,
    make_project,
    project_environment,
    run_pipeline,
)

pytestmark = pytest.mark.slow

# Far too high for Adam on the tiny demo: the training loss passes 10 × its start within
# the first steps of lr warm-up (checked on the tiny demo: stopped at step 2 or 3 of 6).
HUGE_LR = 1000.0


@pytest.fixture(scope="module")
def study(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = make_project(tmp_path_factory.mktemp("divergence") / "project")
    with project_environment(root):
        run_pipeline(root, TINY_DEMO, pipeline_name="demo_data")
        run_pipeline(root, {**TINY_DEMO, **TINY_TRAINING, "finetune.lr": HUGE_LR})
    return root


def _children(root: Path) -> dict[str, mlflow.entities.Run]:
    client = mlflow.MlflowClient(tracking_uri=f"sqlite:///{root / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("transfer_study")
    (parent,) = client.search_runs(
        [experiment.experiment_id], "tags.pipeline = '__default__' and tags.kedro_command != ''"
    )
    assert parent.info.status == "FINISHED"  # the run went on
    runs = client.search_runs(
        [experiment.experiment_id], f"tags.mlflow.parentRunId = '{parent.info.run_id}'"
    )
    return {run.info.run_name: run for run in runs}


def test_the_diverged_training_alone_ends_its_mlflow_run_failed(study: Path):
    children = _children(study)
    finetune = children["finetune"]
    assert finetune.info.status == "FAILED"
    assert finetune.data.tags["stop_reason"] == "diverged"
    assert "10 × starting loss" in finetune.data.tags["divergence_reason"]
    assert children["scratch"].info.status == children["frozen"].info.status == "FINISHED"


def test_its_summary_says_where_it_stopped_well_before_its_cap(study: Path):
    summary = json.loads((study / "data/08_reporting/finetune/training_summary.json").read_text())
    assert summary["diverged"] is True and summary["converged"] is False
    assert summary["stop_reason"] == "diverged"
    assert summary["divergence_step"] == summary["steps"] < summary["max_steps"]


def test_the_comparison_flags_it_shows_no_figure_of_it_and_chooses_another(study: Path):
    comparison = pd.read_csv(study / "data/08_reporting/variant_comparison.csv")
    rows = comparison.set_index("variant")
    assert rows.loc["finetune", "diverged"] and pd.isna(rows.loc["finetune", "accuracy"])
    assert not rows.loc["finetune", "selected"]
    pairs = pd.read_csv(study / "data/08_reporting/variant_pairs.csv")
    assert "finetune" not in set(pairs["a"]) | set(pairs["b"])
    report = (study / "data/08_reporting/variant_comparison.md").read_text()
    assert "**Flagged: fine-tune diverged at step" in report
    assert "`--params=finetune.lr=100` (a tenth of 1000)" in report
    (finetune_row,) = [line for line in report.splitlines() if line.startswith("| finetune ")]
    assert "**diverged at step" in finetune_row and "%" not in finetune_row
