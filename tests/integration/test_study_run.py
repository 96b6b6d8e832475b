"""The real pipelines, end to end, on tiny generated data."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
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
from tests.helpers.photos import write_photo_folder
from transfer_study.tracking.registry import RegistryConflictError

pytestmark = pytest.mark.slow


@pytest.fixture
def project(tmp_path: Path) -> Iterator[Path]:
    with project_environment(make_project(tmp_path / "project")) as root:
        yield root


def test_demo_data_then_data_processing_persist_the_split_and_reuse_the_image_cache(
    project: Path,
):
    """The catalog's files; the split's logic itself is tested on SequentialRunner."""
    run_pipeline(project, TINY_DEMO, pipeline_name="demo_data")
    assert len(list((project / "data/01_raw/demo_fragments").rglob("*.jpg"))) == 48
    run_pipeline(project, TINY_DEMO, pipeline_name="data_processing")

    split = pd.read_csv(project / "data/05_model_input/split.csv")
    assert len(split) == 48
    assert (split.groupby("sample_id")["split"].nunique() == 1).all()
    summary = pd.read_csv(project / "data/08_reporting/split_summary.csv")
    assert summary[["samples_train", "samples_val", "samples_test"]].gt(0).all().all()
    assert (project / "data/08_reporting/data_quality.csv").exists()
    preprocessing = json.loads((project / "data/05_model_input/preprocessing.json").read_text())
    assert preprocessing["input_size"] == 32
    assert preprocessing["mean"] == [0.5, 0.5, 0.5]  # from the weights, not a literal

    (cache_file,) = (project / "data/04_feature/decoded_images").glob("*.pt")
    assert cache_file.name.split("-")[0] == f"{preprocessing['resize_size']}px"
    first_written = cache_file.stat().st_mtime_ns
    run_pipeline(project, TINY_DEMO, pipeline_name="data_processing")
    assert cache_file.stat().st_mtime_ns == first_written
    run_pipeline(project, {**TINY_DEMO, "model.image_size": 48}, pipeline_name="data_processing")
    assert len(list((project / "data/04_feature/decoded_images").glob("*.pt"))) == 2


def test_one_flag_points_the_study_at_a_users_folder(project: Path, tmp_path: Path):
    photos = write_photo_folder(tmp_path / "my photos", {"ant": 5, "bee": 5}, n_angles=2, size=40)
    command = [
        str(Path(sys.executable).parent / "kedro"),
        "run",
        "--pipeline=data_processing",
        f"--params=raw_images.path={photos},model.image_size=32",
    ]
    completed = subprocess.run(command, cwd=project, capture_output=True, text=True, timeout=300)
    assert completed.returncode == 0, completed.stdout[-3000:] + completed.stderr[-3000:]
    split = pd.read_csv(project / "data/05_model_input/split.csv")
    assert set(split["label"]) == {"ant", "bee"}
    assert len(split) == 20


def test_single_class_folder_fails_after_writing_the_quality_report(project: Path, tmp_path: Path):
    photos = write_photo_folder(tmp_path / "one", {"cat": 6}, n_angles=1)
    # Named like the others, so the file-name grouping covers it; it fails to decode.
    (photos / "cat" / "s9999_a00.jpg").write_bytes(b"not a jpeg")
    with pytest.raises(ValueError, match="at least two"):
        run_pipeline(project, {"raw_images.path": str(photos)}, pipeline_name="data_processing")
    quality = pd.read_csv(project / "data/08_reporting/data_quality.csv")
    assert quality["path"].tolist() == ["cat/s9999_a00.jpg"]


def test_a_study_of_every_variant_trains_them_all_and_writes_the_comparison(project: Path):
    # As a user adds the partial fine-tune to the study: in conf/local, not with --params.
    (project / "conf/local/parameters_training.yml").write_text(
        "study:\n  variants: [finetune, finetune_top, frozen, scratch]\n"
    )
    run_pipeline(project, TINY_DEMO, pipeline_name="demo_data")
    run_pipeline(project, {**TINY_DEMO, **TINY_TRAINING})
    reporting = project / "data/08_reporting"

    comparison = pd.read_csv(reporting / "variant_comparison.csv")
    assert comparison["variant"].tolist() == ["scratch", "frozen", "finetune_top", "finetune"]
    required = {
        "variant",
        "backbone",
        "accuracy",
        "accuracy_ci_low",
        "accuracy_ci_high",
        "balanced_accuracy",
        "macro_f1",
        "train_seconds",
        "trainable_params",
        "best_epoch",
    }
    assert required <= set(comparison.columns)
    assert comparison[list(required - {"variant", "backbone"})].notna().all().all()
    assert (comparison["accuracy_ci_low"] <= comparison["accuracy"]).all()
    assert (comparison["accuracy"] <= comparison["accuracy_ci_high"]).all()
    frozen = comparison.set_index("variant").loc["frozen"]
    assert (
        frozen["trainable_params"]
        < comparison.set_index("variant").loc["finetune", "trainable_params"]
    )

    pairs = pd.read_csv(reporting / "variant_pairs.csv")
    assert list(pairs.columns[:8]) == [
        "a",
        "b",
        "difference",
        "ci_low",
        "ci_high",
        "test",
        "p",
        "p_holm",
    ]
    assert len(pairs) == 6  # every pair of the four variants
    assert pairs[["p", "p_holm"]].stack().between(0, 1).all()
    assert not (reporting / "variant_mcnemar.csv").exists()
    report = (reporting / "variant_comparison.md").read_text()
    assert "frozen" in report and "## Paired differences" in report
    assert (reporting / "variant_comparison.png").stat().st_size > 0

    # The run ends with the variant chosen on validation exported to ONNX beside its
    # checkpoint, checked on every test photo, and registered as the champion.
    export = json.loads((reporting / "onnx_export.json").read_text())
    selected = comparison.loc[comparison["selected"], "variant"].iloc[0]
    assert export["exported"] and export["variant"] == selected and export["passed"]
    models = project / "data/06_models"
    assert [p.relative_to(models) for p in models.rglob("*.onnx")] == [Path(selected, "model.onnx")]
    _assert_registered_as_champion(project, selected)

    split = pd.read_csv(project / "data/05_model_input/split.csv")
    n_test = (split["split"] == "test").sum()
    for variant in ("scratch", "frozen", "finetune_top", "finetune"):
        predictions = pd.read_csv(project / f"data/07_model_output/{variant}/test_predictions.csv")
        assert list(predictions.columns) == [
            "path",
            "sample_id",
            "label",
            "predicted",
            "prob_natural",
            "prob_plastic",
        ]
        assert len(predictions) == n_test
        metrics = json.loads((reporting / variant / "test_metrics.json").read_text())
        assert metrics["accuracy"] == pytest.approx(
            comparison.set_index("variant").loc[variant, "accuracy"]
        )
        history = pd.read_csv(reporting / variant / "training_history.csv")
        summary = json.loads((reporting / variant / "training_summary.json").read_text())
        assert history["step"].iloc[-1] == summary["steps"] <= summary["max_steps"]
        assert summary["converged"] == (summary["stop_reason"] == "patience")
        for figure in ("confusion_matrix.png", "training_curves.png"):
            assert (reporting / variant / figure).stat().st_size > 0
        assert (project / f"data/06_models/{variant}/model.pt").stat().st_size > 0
    assert len(list((project / "data/04_feature/backbone_features").glob("*.pt"))) == 1


def _assert_registered_as_champion(project: Path, selected: str) -> None:
    """The chosen variant is the registry's champion, tagged with its split, and
    classifying through ``models:/<name>@champion`` gives its checkpoint's answers."""
    name = "transfer-study-efficientnet_lite0"
    champion = mlflow.MlflowClient().get_model_version_by_alias(name, "champion")
    summary_file = project / f"data/08_reporting/{selected}/training_summary.json"
    assert champion.tags["variant"] == selected
    assert (
        champion.tags["split_fingerprint"]
        == json.loads(summary_file.read_text())["split_fingerprint"]
    )
    assert {"test_accuracy", "test_accuracy_ci", "val_metric", "backbone"} <= set(champion.tags)
    photos = project / "data/01_raw/demo_fragments"
    predictions = project / "data/07_model_output/predictions.csv"
    answers = []
    for model in (f"models:/{name}@champion", str(project / f"data/06_models/{selected}/model.pt")):
        params = {**TINY_DEMO, "inference.model": model, "inference.photos": str(photos)}
        run_pipeline(project, params, pipeline_name="inference")
        answers.append(pd.read_csv(predictions))
    assert (answers[0]["status"] == "ok").all()
    pd.testing.assert_frame_equal(answers[0], answers[1])


def test_a_registry_name_of_another_class_list_is_refused_before_any_training(project: Path):
    run_pipeline(project, TINY_DEMO, pipeline_name="demo_data")
    mlflow.MlflowClient().create_registered_model(
        "fragments", tags={"backbone": "efficientnet_lite0", "class_names": '["cat", "dog"]'}
    )
    params = {**TINY_DEMO, **TINY_TRAINING, "registry.name": "fragments"}
    with pytest.raises(RegistryConflictError, match=r'class_names \["cat", "dog"\] there'):
        run_pipeline(project, params)
    assert not list((project / "data/06_models").rglob("model.pt"))
    assert not (project / "data/04_feature/backbone_features").exists()


def test_cross_validation_writes_each_fold_and_pools_them_under_nested_runs(project: Path):
    """split.folds from conf/local: the catalog's fold entries and MLflow's nesting."""
    (project / "conf/local/parameters.yml").write_text("split:\n  folds: 2\n")
    run_pipeline(project, TINY_DEMO, pipeline_name="demo_data")
    run_pipeline(project, {**TINY_DEMO, **TINY_TRAINING})

    split = pd.read_csv(project / "data/05_model_input/split.csv")
    for fold in (0, 1):
        roles = pd.read_csv(project / f"data/05_model_input/fold_{fold}/split.csv")
        tested = roles.loc[roles["split"] == "test", "path"]
        assert set(tested) == set(split.loc[split["fold"] == fold, "path"])
        assert (project / f"data/08_reporting/fold_{fold}/grouping.json").exists()
        assert (project / f"data/06_models/fold_{fold}.finetune/model.pt").exists()
    pooled = pd.read_csv(project / "data/07_model_output/frozen/test_predictions.csv")
    assert sorted(pooled["path"]) == sorted(split["path"])  # every photo tested once
    assert (project / "data/06_models/frozen/model.pt").exists()  # for inference: best
    assert (
        "Grouped 2-fold cross-validation"
        in (project / "data/08_reporting/variant_comparison.md").read_text()
    )

    client = mlflow.MlflowClient()
    runs = client.search_runs([e.experiment_id for e in client.search_experiments()])
    names = {run.info.run_id: run.info.run_name for run in runs}
    parents = {
        run.info.run_name: names.get(run.data.tags.get("mlflow.parentRunId")) for run in runs
    }
    assert parents["fold_1.scratch"] == "fold_1"
    assert parents["fold_1"] == parents["frozen"] == "__default__"
    assert {run.info.status for run in runs} == {"FINISHED"}

    # The folds shape the pipeline: --params cannot change them.
    with pytest.raises(ValueError, match="cannot be changed with --params"):
        run_pipeline(project, {**TINY_DEMO, "split.folds": 3}, pipeline_name="data_processing")
