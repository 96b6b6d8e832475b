"""Parameters in a real `kedro run`: overrides of one variant and of all arrive."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import mlflow
import pytest

from tests.helpers.kedro_project import (
    TINY_DEMO,
    TINY_TRAINING,
    make_project,
    project_environment,
    run_pipeline,
)

pytestmark = pytest.mark.slow


@pytest.fixture
def project(tmp_path: Path) -> Iterator[Path]:
    with project_environment(make_project(tmp_path / "project")) as root:
        yield root


def test_overrides_of_one_variant_and_of_all_reach_the_resolved_settings(project: Path):
    overrides = {"finetune.lr": 0.001, "training_defaults.compile": False}
    params = {**TINY_DEMO, **TINY_TRAINING, **overrides}
    run_pipeline(project, TINY_DEMO, pipeline_name="demo_data")
    run_pipeline(project, params, pipeline_name="data_processing")
    run_pipeline(project, params, pipeline_name="training", namespaces=["scratch", "finetune"])

    reporting = project / "data/08_reporting"
    finetune, scratch = (
        json.loads((reporting / variant / "training_summary.json").read_text())["parameters"][
            "training"
        ]
        for variant in ("finetune", "scratch")
    )
    assert (finetune["lr"], finetune["compile"], finetune["epochs"]) == (0.001, False, 2)
    assert (scratch["lr"], scratch["compile"]) == (0.003, False)  # lr: its own block's
    assert finetune["backbone_lr_multiplier"] == 0.1 and scratch["backbone_lr_multiplier"] == 1.0
    assert finetune["batch_size"] == scratch["batch_size"] == 8  # training_defaults, tiny

    client = mlflow.MlflowClient(f"sqlite:///{project / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("transfer_study")
    children = {
        run.info.run_name: run.data.params
        for run in client.search_runs(
            [experiment.experiment_id], filter_string="tags.mlflow.parentRunId != ''"
        )
    }
    assert children["finetune"]["training.lr"] == "0.001"
    assert children["scratch"]["training.lr"] == "0.003"
    assert children["finetune"]["training.compile"] == "False"
