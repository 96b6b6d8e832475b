"""`kedro run --pipeline=data_size_ablation` end to end on tiny generated data."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import mlflow
import pandas as pd
import pytest
import torch

from tests.helpers.kedro_project import (
    TINY_DEMO,
    TINY_TRAINING,
    make_project,
    project_environment,
    run_pipeline,
)

pytestmark = pytest.mark.slow

# 2 sample counts × 2 angle counts × 2 variants × 2 seeds; the tiny demo split has 14
# training samples with 2 angles each. Fine-tune cells train everything for one step;
# frozen cells keep TINY_TRAINING's budget.
GRID = """
data_size_ablation:
  n_samples: [4, 8]
  n_angles: [1, 2]
  variants: [frozen, finetune]
  seeds: [0, 1]
  training_overrides:
    finetune: {max_images: 8, min_steps: 1, head_warmup_steps: 0}
"""
VARIANTS = ("frozen", "finetune")
SIZES = ((4, 1), (4, 2), (8, 1), (8, 2))
SEEDS = (0, 1)
CELLS = tuple(
    f"{variant}.n{n}_a{k}_s{seed}" for variant in VARIANTS for n, k in SIZES for seed in SEEDS
)
REPORTS = (
    "learning_curve.csv",
    "per_seed.csv",
    "learning_curve.png",
    "heatmap.png",
    "recommendation.md",
    "recommendation.json",
)


def _write_grid(root: Path, grid: str = GRID) -> None:
    (root / "conf/local/parameters_data_size_ablation.yml").write_text(grid)


@pytest.fixture(scope="module")
def ablation(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = make_project(tmp_path_factory.mktemp("ablation") / "project")
    _write_grid(root)
    with project_environment(root):
        run_pipeline(root, TINY_DEMO, pipeline_name="demo_data")
        run_pipeline(root, {**TINY_DEMO, **TINY_TRAINING}, pipeline_name="data_size_ablation")
    return root


def _rerun(root: Path, params: dict | None = None, **kwargs) -> None:
    with project_environment(root):
        run_pipeline(
            root,
            {**TINY_DEMO, **TINY_TRAINING, **(params or {})},
            pipeline_name="data_size_ablation",
            **kwargs,
        )


def _result_files(root: Path) -> dict[str, Path]:
    """``<variant>.<cell>`` → its result file."""
    folder = root / "data/07_model_output/ablation"
    return {f"{path.parent.name}.{path.stem}": path for path in folder.glob("*/*.json")}


def _summary(root: Path, cell: str) -> dict:
    variant, name = cell.split(".")
    path = root / f"data/08_reporting/ablation/cells/{variant}/{name}/training_summary.json"
    return json.loads(path.read_text())


def _state_dict(root: Path, cell: str) -> dict[str, torch.Tensor]:
    checkpoint = torch.load(_model_file(root, cell), map_location="cpu", weights_only=True)
    return checkpoint["state_dict"]


def _differing_weights(
    first: dict[str, torch.Tensor], second: dict[str, torch.Tensor], prefix: str
):
    """Weights under ``prefix`` that differ (BatchNorm's running statistics left out)."""
    return [
        key
        for key, tensor in first.items()
        if key.startswith(prefix)
        and tensor.is_floating_point()
        and not key.rpartition(".")[2].startswith("running_")
        and not torch.equal(tensor, second[key])
    ]


def _children_of_latest_parent(root: Path) -> dict[str, mlflow.entities.Run]:
    client = mlflow.MlflowClient(tracking_uri=f"sqlite:///{root / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("transfer_study")
    (parent, *_) = client.search_runs(
        [experiment.experiment_id],
        "tags.pipeline = 'data_size_ablation' and tags.kedro_command != ''",
        order_by=["attributes.start_time DESC"],
    )
    runs = client.search_runs(
        [experiment.experiment_id], f"tags.mlflow.parentRunId = '{parent.info.run_id}'"
    )
    return {run.info.run_name: run for run in runs}


def test_ablation_writes_a_result_per_cell_and_the_report(ablation: Path):
    assert sorted(_result_files(ablation)) == sorted(CELLS)
    for name in REPORTS:
        assert (ablation / "data/08_reporting/ablation" / name).stat().st_size > 0, name
    curve = pd.read_csv(ablation / "data/08_reporting/ablation/learning_curve.csv")
    assert {
        "variant",
        "n_samples",
        "n_angles",
        "n_images",
        "n_seeds",
        "accuracy_mean",
        "accuracy_ci_low",
        "accuracy_ci_high",
    } <= set(curve.columns)
    points = zip(
        curve["variant"], curve["n_samples"], curve["n_angles"], curve["n_images"], strict=True
    )
    assert sorted(points) == sorted((v, n, k, n * k) for v in VARIANTS for n, k in SIZES)
    assert (curve["n_seeds"] == len(SEEDS)).all()
    assert (curve["accuracy_ci_low"] <= curve["accuracy_mean"]).all()
    assert (curve["accuracy_mean"] <= curve["accuracy_ci_high"]).all()
    report = (ablation / "data/08_reporting/ablation/recommendation.md").read_text()
    assert "samples" in report and "angles" in report
    assert "the grid has 2 sample sizes; extrapolation needs at least 5" in report
    recommendation = json.loads(
        (ablation / "data/08_reporting/ablation/recommendation.json").read_text()
    )
    assert recommendation["tolerance"] == 0.02
    for variant in VARIANTS:  # the largest budget is the reference, the rest in test order
        result = recommendation["variants"][variant]
        assert result["reference"]["budget"] == "8 × 2"
        assert result["order"] == ["8 × 1", "4 × 2", "4 × 1"]
        assert {b["status"] for b in result["budgets"]} <= {"enough", "not enough", "untested"}


def test_every_cell_trains_on_its_subset_and_tests_on_the_shared_test_split(ablation: Path):
    split = pd.read_csv(ablation / "data/05_model_input/split.csv")
    test = split[split["split"] == "test"]
    for cell, path in _result_files(ablation).items():
        record = json.loads(path.read_text())
        n, k = record["n_samples"], record["n_angles"]
        assert record["n_images"] == n * k, cell
        assert sorted(map(str, record["sample_id"])) == sorted(map(str, test["sample_id"])), cell


def test_seeds_draw_other_subsets_that_every_variant_shares(ablation: Path):
    for variant in VARIANTS:
        for n, k in SIZES:
            summaries = {seed: _summary(ablation, f"{variant}.n{n}_a{k}_s{seed}") for seed in SEEDS}
            assert [summaries[seed]["seed"] for seed in SEEDS] == list(SEEDS)
            fingerprints = {summary["split_fingerprint"] for summary in summaries.values()}
            assert len(fingerprints) == len(SEEDS), (variant, n, k)
    for n, k in SIZES:
        for seed in SEEDS:
            frozen, finetune = (_summary(ablation, f"{v}.n{n}_a{k}_s{seed}") for v in VARIANTS)
            assert frozen["split_fingerprint"] == finetune["split_fingerprint"]


def test_finetune_cells_train_the_whole_network_with_their_own_overrides(ablation: Path):
    for n, k in SIZES:
        finetune = _summary(ablation, f"finetune.n{n}_a{k}_s0")
        frozen = _summary(ablation, f"frozen.n{n}_a{k}_s0")
        assert finetune["steps"] == 1
        assert finetune["parameters"]["training"]["head_warmup_steps"] == 0
        assert finetune["trainable_params"] == finetune["total_params"]
        # The fine-tune override is not the frozen one's.
        assert frozen["parameters"]["training"]["max_images"] == 4000
    # Another seed trains on other photos in another order: other weights, backbone too
    # when it trains; the frozen backbone stays the pretrained one.
    first, second = (_state_dict(ablation, f"finetune.n8_a2_s{seed}") for seed in SEEDS)
    assert _differing_weights(first, second, "backbone.")
    assert _differing_weights(first, second, "head.")
    first, second = (_state_dict(ablation, f"frozen.n8_a2_s{seed}") for seed in SEEDS)
    assert not _differing_weights(first, second, "backbone.")
    assert _differing_weights(first, second, "head.")


def test_every_cell_and_seed_reaches_the_report(ablation: Path):
    reports = ablation / "data/08_reporting/ablation"
    per_seed = pd.read_csv(reports / "per_seed.csv")
    rows = per_seed.set_index(["variant", "n_samples", "n_angles", "seed"])["accuracy"]
    assert sorted(rows.index) == sorted(
        (v, n, k, seed) for v in VARIANTS for n, k in SIZES for seed in SEEDS
    )
    for cell, path in _result_files(ablation).items():
        record = json.loads(path.read_text())
        key = (record["variant"], record["n_samples"], record["n_angles"], record["seed"])
        assert rows.loc[key] == pytest.approx(record["accuracy"]), cell
    recommendation = json.loads((reports / "recommendation.json").read_text())
    assert sorted(recommendation["variants"]) == sorted(VARIANTS)
    assert "finetune" in (reports / "recommendation.md").read_text()


def test_each_cell_is_an_mlflow_child_run_with_its_coordinates(ablation: Path):
    children = _children_of_latest_parent(ablation)
    # Each variant's learning-rate choice has its own child run: what every cell used.
    choices = {variant: children.pop(variant) for variant in VARIANTS}
    assert sorted(children) == sorted(f"ablation.{cell}" for cell in CELLS)
    for variant, run in choices.items():
        assert "lr_choice.lr" in run.data.metrics, variant
    for name, run in children.items():
        tags = run.data.tags
        assert run.info.status == "FINISHED"
        cell = f"{tags['variant']}.n{tags['n_samples']}_a{tags['n_angles']}_s{tags['seed']}"
        assert name == f"ablation.{cell}"
        assert int(tags["n_images"]) == int(tags["n_samples"]) * int(tags["n_angles"])
        assert "test_accuracy" in run.data.metrics


def _model_file(root: Path, cell: str) -> Path:
    variant, name = cell.split(".")
    return root / f"data/06_models/ablation/{variant}/{name}/model.pt"


def test_rerun_with_only_missing_outputs_redoes_only_what_is_missing(ablation: Path):
    results = _result_files(ablation)
    written = {cell: path.stat().st_mtime_ns for cell, path in results.items()}
    trained = _model_file(ablation, "frozen.n8_a2_s0").stat().st_mtime_ns
    # As if the run had been killed: n8_a2 trained but not evaluated, n4_a1 not trained.
    results["frozen.n8_a2_s0"].unlink()
    results["frozen.n4_a1_s0"].unlink()
    _model_file(ablation, "frozen.n4_a1_s0").unlink()
    _rerun(ablation, only_missing_outputs=True)
    after = _result_files(ablation)
    assert sorted(after) == sorted(CELLS)
    for cell in set(CELLS) - {"frozen.n8_a2_s0", "frozen.n4_a1_s0"}:
        assert after[cell].stat().st_mtime_ns == written[cell], cell
    assert _model_file(ablation, "frozen.n8_a2_s0").stat().st_mtime_ns == trained  # not retrained
    assert _model_file(ablation, "frozen.n4_a1_s0").exists()
    # The frozen cells' settings are resolved again (they are kept in memory), under the
    # variant's own child run; its learning-rate choice, saved, is not searched again.
    children = _children_of_latest_parent(ablation)
    assert sorted(children) == ["ablation.frozen.n4_a1_s0", "ablation.frozen.n8_a2_s0", "frozen"]
    assert "lr_choice.lr" not in children["frozen"].data.metrics


def test_a_grid_changed_only_at_run_time_is_refused_with_what_to_do(ablation: Path):
    with pytest.raises(ValueError, match="KEDRO_ENV"):
        _rerun(ablation, {"data_size_ablation.seeds": [0, 1, 2]})


def test_an_impossible_cell_fails_before_any_training(ablation: Path, tmp_path: Path):
    root = make_project(tmp_path / "impossible")
    _write_grid(root, GRID.replace("[4, 8]", "[4, 500]"))
    shutil.copytree(ablation / "data/01_raw", root / "data/01_raw")
    with pytest.raises(ValueError, match="500") as error:
        _rerun(root)
    assert "plastic" in str(error.value) and "natural" in str(error.value)
    assert not (root / "data/07_model_output/ablation").exists()
