"""MLflow tracking of a real `kedro run`: a parent run with one child run per training."""

from __future__ import annotations

import json
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest
import torch
from mlflow.entities import Run

from tests.helpers.kedro_project import (
    TINY_DEMO,
    TINY_TRAINING,
    project_environment,
    run_pipeline,
    tiny_study,
)
from tests.helpers.parameters import shipped_study_variants
from transfer_study.models.checkpoint import rebuild_classifier
from transfer_study.tracking.hooks import flatten

pytestmark = pytest.mark.slow

VARIANTS = shipped_study_variants()  # what a plain `kedro run` trains
TAGS = (
    "variant",
    "backbone",
    "weights",
    "n_samples",
    "n_angles",
    "n_images",
    "seed",
    "pipeline",
    "split_fingerprint",
)


@pytest.fixture(scope="module")
def study(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The default `kedro run` on tiny data, with its MLflow store in the project."""
    return tiny_study(tmp_path_factory.mktemp("tracking") / "project")


def _client(root: Path) -> mlflow.MlflowClient:
    return mlflow.MlflowClient(tracking_uri=f"sqlite:///{root / 'mlflow.db'}")


def _runs(root: Path, filter_string: str = "") -> list[Run]:
    client = _client(root)
    experiment = client.get_experiment_by_name("transfer_study")
    return client.search_runs([experiment.experiment_id], filter_string=filter_string)


def _study_parent(root: Path) -> Run:
    (parent,) = _runs(root, "tags.pipeline = '__default__' and tags.kedro_command != ''")
    return parent


def _children(root: Path, parent: Run) -> dict[str, Run]:
    runs = _runs(root, f"tags.mlflow.parentRunId = '{parent.info.run_id}'")
    return {run.info.run_name: run for run in runs}


def test_one_parent_run_with_a_finished_child_run_per_variant(study: Path):
    parent = _study_parent(study)
    children = _children(study, parent)
    assert parent.info.status == "FINISHED"
    assert sorted(children) == sorted(VARIANTS)
    assert {run.info.status for run in children.values()} == {"FINISHED"}
    assert mlflow.active_run() is None  # nothing left on this thread's run stack


def test_child_runs_carry_the_tags_to_filter_on(study: Path):
    children = _children(study, _study_parent(study))
    split = pd.read_csv(study / "data/05_model_input/split.csv")
    train = split[split["split"] == "train"]
    for variant, run in children.items():
        tags = run.data.tags
        assert set(TAGS) <= set(tags), variant
        assert tags["variant"] == variant
        assert tags["backbone"] == "efficientnet_lite0"
        assert tags["weights"] == ("none" if variant == "scratch" else "imagenet")
        assert tags["n_images"] == str(len(train))
        assert tags["n_samples"] == str(train["sample_id"].nunique())
        assert tags["n_angles"] == str(TINY_DEMO["demo_data.n_angles"])
        assert tags["pipeline"] == "__default__"
    assert len({run.data.tags["split_fingerprint"] for run in children.values()}) == 1
    (scratch,) = _runs(study, "tags.variant = 'scratch'")
    assert scratch.info.run_id == children["scratch"].info.run_id


def test_child_runs_hold_the_trainings_own_flattened_parameters(study: Path):
    children = _children(study, _study_parent(study))
    for variant, run in children.items():
        params = run.data.params
        assert params["training.name"] == variant
        assert params["training.max_images"] == ("4000" if variant == "frozen" else "48")
        assert params["training.batch_size"] == "8"  # training_defaults, as the run set it
        assert params["training.head.type"] == "linear"
        assert params["model.backbone"] == "efficientnet_lite0"
    # Each run holds its own resolved settings, not another variant's.
    assert children["finetune"].data.params["training.head_warmup_steps"] == "2"
    assert children["frozen"].data.params["training.head_warmup_steps"] == "0"
    assert children["finetune"].data.params["training.head_init"] == "probe"
    assert children["frozen"].data.params["training.head_init"] == "random"
    for variant, run in children.items():  # the chosen lr, not "auto"
        choice = json.loads((study / f"data/06_models/{variant}/learning_rate.json").read_text())
        assert float(run.data.params["training.lr"]) == pytest.approx(choice["lr"])
        assert run.data.metrics["lr_choice.lr"] == pytest.approx(choice["lr"])
    assert children["scratch"].data.params["training.weights"] == "none"


def test_the_parent_run_shows_each_parameter_block_as_json(study: Path):
    params = _study_parent(study).data.params
    assert json.loads(params["finetune"]) == {
        "weights": "imagenet",
        "lr_search": {
            "method": "candidates",
            "min_lr": 1e-05,
            "max_lr": 0.0001,
            "steps": 32,
            "per_decade": 1,
            "candidate_steps": 4,  # tests/helpers/kedro_project.py's TINY_TRAINING
        },
        "max_images": 48,
        "min_steps": 4,
        "head_warmup_steps": 2,
        "head_init": "probe",
        "lr_warmup_steps": 20,
        "batchnorm": "fixed",
    }
    assert json.loads(params["model"]) == {"backbone": "efficientnet_lite0", "image_size": 32}


def test_child_runs_have_one_metric_point_per_validation_and_the_test_metrics(study: Path):
    client = _client(study)
    for variant, run in _children(study, _study_parent(study)).items():
        history = pd.read_csv(study / f"data/08_reporting/{variant}/training_history.csv")
        for key in ("train_loss", "train_accuracy", "val_loss", "val_accuracy", "lr"):
            points = client.get_metric_history(run.info.run_id, key)
            assert [p.step for p in points] == history["step"].tolist(), (variant, key)
            # Fine-tune's first point is its probed start: no training loss yet (NaN).
            values = [p.value for p in points]
            assert np.allclose(values, history[key], equal_nan=True), (variant, key)
        metrics = run.data.metrics
        stored = pd.read_json(
            study / f"data/08_reporting/{variant}/test_metrics.json", typ="series"
        )
        for key in ("accuracy", "accuracy_ci_low", "accuracy_ci_high", "balanced_accuracy"):
            assert metrics[f"test_{key}"] == pytest.approx(stored[key])
        assert {"test_macro_f1", "test_roc_auc"} <= set(metrics)


def test_child_runs_hold_the_artifacts_and_the_parent_the_reports(study: Path):
    client = _client(study)
    parent = _study_parent(study)
    for run in _children(study, parent).values():
        artifacts = {a.path for a in client.list_artifacts(run.info.run_id)}
        assert {
            "confusion_matrix.png",
            "training_curves.png",
            "test_predictions.csv",
            "training_summary.json",
            "lr_range_test.png",
        } <= artifacts
    parent_artifacts = {a.path for a in client.list_artifacts(parent.info.run_id)}
    assert {
        "split.csv",
        "data_quality.csv",
        "variant_comparison.csv",
        "variant_comparison.md",
    } <= parent_artifacts
    split = client.download_artifacts(parent.info.run_id, "split.csv", str(study / "dl"))
    assert pd.read_csv(split).equals(pd.read_csv(study / "data/05_model_input/split.csv"))


def test_logged_model_predicts_the_same_classes_as_the_checkpoint(study: Path):
    mlflow.set_tracking_uri(f"sqlite:///{study / 'mlflow.db'}")
    client = _client(study)
    children = _children(study, _study_parent(study))
    inputs = torch.randn(6, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    for variant, run in children.items():
        (logged,) = client.search_logged_models(
            [run.info.experiment_id],
            filter_string=f"source_run_id = '{run.info.run_id}' and name = 'model'",
        )
        loaded = mlflow.pytorch.load_model(f"models:/{logged.model_id}").eval()
        checkpoint = torch.load(study / f"data/06_models/{variant}/model.pt", weights_only=True)
        model, _ = rebuild_classifier(checkpoint)
        with torch.inference_mode():
            expected, got = model(inputs), loaded(inputs)
        assert torch.equal(expected.argmax(1), got.argmax(1)), variant
        assert torch.allclose(expected, got, atol=1e-5), variant


def test_logged_image_classifier_takes_photo_files_and_matches_the_checkpoint(study: Path):
    mlflow.set_tracking_uri(f"sqlite:///{study / 'mlflow.db'}")
    client = _client(study)
    run = _children(study, _study_parent(study))["finetune"]
    (logged,) = client.search_logged_models(
        [run.info.experiment_id],
        filter_string=f"source_run_id = '{run.info.run_id}' and name = 'image_classifier'",
    )
    classifier = mlflow.pyfunc.load_model(f"models:/{logged.model_id}")
    expected = pd.read_csv(study / "data/07_model_output/finetune/test_predictions.csv")
    photos = study / "data/01_raw/demo_fragments"
    predicted = classifier.predict(
        pd.DataFrame({"image": [(photos / path).read_bytes() for path in expected["path"]]})
    )
    assert predicted["predicted"].tolist() == expected["predicted"].tolist()


def test_a_failing_training_marks_its_run_and_the_parent_failed(study: Path):
    before = {run.info.run_id: run for run in _runs(study)}
    # A torchvision class that does not exist passes the parameter check (any name is a
    # name) and fails when the training builds its transforms.
    broken = {"finetune.augmentations": [{"name": "NoSuchTransform"}]}
    with project_environment(study), pytest.raises(ValueError, match="augmentation"):
        # The whole training pipeline: fine-tune's probe needs the frozen variant's choice
        # and every variant the near-copy check's split.
        run_pipeline(study, {**TINY_DEMO, **TINY_TRAINING, **broken}, pipeline_name="training")
    new_runs = [run for run in _runs(study) if run.info.run_id not in before]
    (parent,) = [run for run in new_runs if "mlflow.parentRunId" not in run.data.tags]
    assert parent.info.status == "FAILED"
    children = _children(study, parent)
    assert children["finetune"].info.status == "FAILED"
    assert "NoSuchTransform" in children["finetune"].data.tags["error"]
    assert all(run.info.status != "RUNNING" for run in children.values())
    # The earlier study's runs are untouched.
    for run_id, run in before.items():
        assert _client(study).get_run(run_id).info.status == run.info.status


def test_flatten_joins_nested_keys_and_keeps_lists():
    assert flatten({"a": {"b": 1, "c": {"d": [1, 2]}}, "e": "x"}) == {
        "a.b": 1,
        "a.c.d": [1, 2],
        "e": "x",
    }
