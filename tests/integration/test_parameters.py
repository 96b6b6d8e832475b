"""Parameters in a real `kedro run`: checked before any node, and overrides that arrive."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import mlflow
import pytest
import yaml

from tests.helpers.kedro_project import (
    TINY_DEMO,
    TINY_TRAINING,
    make_project,
    project_environment,
    run_pipeline,
)
from transfer_study.config import ParameterError

pytestmark = pytest.mark.slow


@pytest.fixture
def project(tmp_path: Path) -> Iterator[Path]:
    with project_environment(make_project(tmp_path / "project")) as root:
        yield root


def _files(root: Path) -> list[Path]:
    return sorted(path for path in (root / "data").rglob("*") if path.is_file())


def test_bad_parameters_stop_the_run_before_any_node_naming_key_value_and_file(project: Path):
    training_yml = project / "conf/base/parameters_training.yml"
    blocks = yaml.safe_load(training_yml.read_text())
    blocks["finetune"]["lrr"] = 0.001  # misspelt
    training_yml.write_text(yaml.safe_dump(blocks, sort_keys=False))

    with pytest.raises(ParameterError) as raised:
        run_pipeline(project, {"split.val_fraction": 1.5})  # out of range

    lines = str(raised.value).splitlines()
    assert lines[0] == "2 invalid parameter(s); nothing has run:"
    # Listed in the order the configuration loader merged the blocks, which follows the
    # file system: either may come first.
    expected = (
        "  - split.val_fraction = 1.5 (from --params): Input should be less than 1",
        "  - finetune.lrr = 0.001 (conf/base/parameters_training.yml): unknown key; "
        "did you mean lr?",
    )
    assert all(any(line.startswith(e) for line in lines[1:3]) for e in expected)
    assert _files(project) == []  # no node ran: nothing was written
    assert not (project / "mlflow.db").exists() or not mlflow.MlflowClient(
        f"sqlite:///{project / 'mlflow.db'}"
    ).search_experiments(filter_string="name = 'transfer_study'")


def test_overrides_of_one_variant_and_of_all_reach_the_resolved_settings(project: Path):
    overrides = {"finetune.lr": 0.001, "training_defaults.compile": False}
    params = {**TINY_DEMO, **TINY_TRAINING, **overrides}
    run_pipeline(project, TINY_DEMO, pipeline_name="demo_data")
    run_pipeline(project, params, pipeline_name="data_processing")
    # The whole study's training: fine-tune's probe reads the frozen variant's choice and
    # every variant the near-copy check's split.
    run_pipeline(project, params, pipeline_name="training")

    reporting = project / "data/08_reporting"
    finetune, scratch = (
        json.loads((reporting / variant / "training_summary.json").read_text())["parameters"][
            "training"
        ]
        for variant in ("finetune", "scratch")
    )
    assert (finetune["lr"], finetune["compile"], finetune["max_images"]) == (0.001, False, 48)
    assert scratch["compile"] is False
    scratch_choice = json.loads((project / "data/06_models/scratch/learning_rate.json").read_text())
    assert scratch["lr"] == scratch_choice["lr"]  # lr: auto, the range test's choice
    assert finetune["head_init"] == "probe" and scratch["head_init"] == "random"  # own blocks
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
    assert float(children["scratch"]["training.lr"]) == pytest.approx(scratch_choice["lr"])
    assert children["finetune"]["training.compile"] == "False"
