"""The data-size ablation on ``SequentialRunner``: its cells and report checked against the
configured grid, and a tiny grid run from raw photos to the report with in-memory data."""

from __future__ import annotations

import re
from itertools import product
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from kedro.pipeline import Node, Pipeline
from matplotlib.figure import Figure

from tests.helpers.grouping import GROUPING
from tests.helpers.in_memory_runs import run_in_memory
from tests.helpers.parameters import REPO_ROOT, TINY_TRAINING, project_parameters, raw_parameters
from tests.helpers.photos import write_photo_folder
from transfer_study import pipeline_registry
from transfer_study.config import ParameterError
from transfer_study.datasets import PhotoFolderDataset
from transfer_study.pipelines import data_processing
from transfer_study.pipelines.data_size_ablation import pipeline as ablation_module
from transfer_study.pipelines.variant_template import VARIANTS

CELL_NAMESPACE = re.compile(r"^ablation\.(?P<variant>\w+)\.n(?P<n>\d+)_a(?P<a>\d+)_s(?P<s>\d+)$")
CELL_NODES = {
    "select_training_subset_node",
    "cell_training_parameters_node",
    "train_node",
    "evaluate_node",
    "plot_training_curves_node",
    "summarise_cell_node",
}
GRID_NODES = {"check_ablation_grid_node", "report_ablation_node"}
REPORT_OUTPUTS = {
    "ablation_per_seed",
    "ablation_learning_curve",
    "ablation_recommendation",
    "ablation_report",
    "ablation_learning_curve_plot",
    "ablation_heatmap",
}
# 2 variants × 2 sizes × 1 angle count × 2 seeds = 8 cells, from 2 classes × 10 samples.
TINY_GRID = {
    "data_size_ablation.variants": ["scratch", "frozen"],
    "data_size_ablation.n_samples": [4, 8],
    "data_size_ablation.n_angles": [2],
    "data_size_ablation.seeds": [0, 1],
    "data_size_ablation.report.bootstrap_resamples": 100,
    # The ablation's own changes to the variants' blocks, on top of TINY_TRAINING's.
    "data_size_ablation.training_overrides": {
        "scratch": {"max_images": 1, "min_steps": 1},
        "frozen": {"max_images": 3, "min_steps": 3, "batch_size": 1},
    },
}
STEPS_RUN = {"scratch": 1, "frozen": 3}
TINY_CELLS = [
    (variant, n, a, s) for variant, n, a, s in product(["scratch", "frozen"], [4, 8], [2], [0, 1])
]


def _cells(grid: dict[str, Any]) -> set[str]:
    """``ablation.<variant>.n<N>_a<K>_s<seed>`` for every cell of ``grid``, expanded here."""
    return {
        f"ablation.{variant}.n{n}_a{a}_s{s}"
        for variant, n, a, s in product(
            grid["variants"], grid["n_samples"], grid["n_angles"], grid["seeds"]
        )
    }


def _node(pipeline: Pipeline, name: str) -> Node:
    (node,) = [node for node in pipeline.nodes if node.name == name]
    return node


@pytest.fixture(scope="module")
def configured_grid() -> dict[str, Any]:
    """The grid the registered pipeline was built from (conf/ of the project)."""
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(REPO_ROOT)
        return ablation_module.configured_grid()


@pytest.fixture(scope="module")
def ablation(registered_pipelines: dict[str, Pipeline]) -> Pipeline:
    return registered_pipelines["data_size_ablation"]


# --- wiring, on the configured grid ------------------------------------------------------


def test_report_reads_the_result_of_every_cell_of_the_grid(ablation, configured_grid):
    report = _node(ablation, "report_ablation_node")
    # The report states how samples were formed (the near-copy check's record).
    assert report.inputs[:2] == ["params:data_size_ablation", "grouping"]
    results = report.inputs[2:]
    assert len(results) == len(set(results))
    assert set(results) == {f"{cell}.result" for cell in _cells(configured_grid)}
    assert set(report.outputs) == REPORT_OUTPUTS


def test_every_cell_is_one_namespace_with_the_variant_template(ablation, configured_grid):
    namespaces: dict[str, set[str]] = {}
    for node in ablation.nodes:
        if node.namespace and node.namespace.startswith("ablation."):
            assert CELL_NAMESPACE.match(node.namespace), node.namespace
            namespaces.setdefault(node.namespace, set()).add(node.name.rsplit(".", 1)[-1])
    assert set(namespaces) == _cells(configured_grid)
    for cell, names in namespaces.items():
        # A fine-tune cell first probes its head on the cell's own subset of features.
        probed = CELL_NAMESPACE.match(cell)["variant"] in ("finetune_top", "finetune")
        assert names == CELL_NODES | ({"probe_head_node"} if probed else set()), cell


def test_each_cell_trains_with_its_variants_block_and_its_own_subset(ablation, configured_grid):
    for cell in _cells(configured_grid):
        variant = CELL_NAMESPACE.match(cell)["variant"]
        # The study's resolved settings and chosen learning rate: no search per cell.
        resolve = _node(ablation, f"{variant}.resolve_training_settings_node")
        blocks = {
            name.removeprefix("params:").split(".")[0]
            for name in resolve.inputs
            if name.startswith("params:")
        }
        assert blocks & set(VARIANTS) == {variant}, cell
        parameters = _node(ablation, f"{cell}.cell_training_parameters_node")
        assert parameters.inputs == [f"{variant}.training_settings", "params:data_size_ablation"]
        train = _node(ablation, f"{cell}.train_node")
        assert f"{cell}.cell_training_settings" in train.inputs
        assert f"{variant}.learning_rate" in train.inputs
        assert f"{cell}.split" in train.inputs
        features = "backbone_features" if variant == "frozen" else "decoded_images"
        assert features in train.inputs
        assert _node(ablation, f"{cell}.select_training_subset_node").inputs == ["ablation_split"]


def test_the_grid_check_runs_before_any_cell_trains(ablation):
    check = _node(ablation, "check_ablation_grid_node")
    assert check.outputs == ["ablation_split"]
    assert check.inputs == ["split", "params:data_size_ablation"]
    after_check = {node.name for node in ablation.from_nodes("check_ablation_grid_node").nodes}
    trainings = {node.name for node in ablation.nodes if node.name.endswith(".train_node")}
    assert trainings
    assert trainings <= after_check


def test_the_near_copy_check_runs_before_any_cell_trains(ablation):
    after_check = {node.name for node in ablation.from_nodes("check_near_copies_node").nodes}
    trainings = {node.name for node in ablation.nodes if node.name.endswith(".train_node")}
    assert trainings
    assert trainings <= after_check


def test_registered_ablation_contains_data_processing_and_the_embedding(ablation):
    names = {node.name for node in ablation.nodes}
    assert {node.name for node in data_processing.create_pipeline().nodes} <= names
    # Whatever the grid: the near-copy check reads the frozen backbone's features.
    assert {"embed_images_node", "check_near_copies_node"} <= names
    assert {name for name in ablation.inputs() if not name.startswith("params:")} == {"raw_images"}
    assert ablation.outputs() >= REPORT_OUTPUTS


def test_partial_fine_tune_cells_reuse_the_studys_cache_of_early_stages(
    configured_grid, monkeypatch
):
    grid = {**configured_grid, "variants": ["finetune_top"], "n_samples": [4], "n_angles": [1]}
    grid["seeds"] = [0]
    monkeypatch.setattr(ablation_module, "configured_grid", lambda: grid)
    monkeypatch.setattr(pipeline_registry, "configured_grid", lambda: grid)
    monkeypatch.chdir(REPO_ROOT)
    ablation = pipeline_registry.register_pipelines()["data_size_ablation"]
    # One cache per study, made by the variant's own node, before the cells.
    embed = _node(ablation, "finetune_top.embed_intermediate_node")
    (cell,) = _cells(grid)
    train = _node(ablation, f"{cell}.train_node")
    assert embed.outputs == ["finetune_top.intermediate_features"]
    assert "finetune_top.intermediate_features" in train.inputs
    assert "decoded_images" not in train.inputs
    # Its head is probed on the cell's subset, with the frozen variant's chosen settings.
    probe = _node(ablation, f"{cell}.probe_head_node")
    assert {"frozen.training_settings", "frozen.learning_rate"} <= set(probe.inputs)


def test_report_summarises_fake_results_for_every_cell_of_the_grid(ablation, configured_grid):
    """Only the report node, fed one made-up record per configured cell."""
    report_only = ablation.only_nodes("report_ablation_node")
    records = {}
    for cell in _cells(configured_grid):
        match = CELL_NAMESPACE.match(cell)
        n, a, s = int(match["n"]), int(match["a"]), int(match["s"])
        accuracy = min(0.5 + 0.004 * n * a, 0.95)
        correct = [i < round(accuracy * 20) for i in range(20)]
        records[f"{cell}.result"] = {
            "variant": match["variant"],
            "n_samples": n,
            "n_angles": a,
            "seed": s,
            "n_samples_used": n,
            "n_images": n * a,
            "accuracy": sum(correct) / len(correct),
            "accuracy_ci_low": 0.0,
            "accuracy_ci_high": 1.0,
            "balanced_accuracy": accuracy,
            "train_seconds": 1.0,
            "steps": 10,
            "converged": True,
            "metric": "accuracy",
            "val_metric": accuracy + (0.01 if match["variant"] == "frozen" else 0.0),
            "sample_id": [f"s{i // 2:04d}" for i in range(20)],
            "correct": correct,
        }
    parameters = project_parameters(
        {"data_size_ablation.report.bootstrap_resamples": 50}, report_only
    )
    outputs = run_in_memory(report_only, {**parameters, "grouping": GROUPING, **records})
    assert "**Samples.** " + GROUPING["statement"] in outputs["ablation_report"]
    per_seed = outputs["ablation_per_seed"]
    assert len(per_seed) == len(records)
    curve = outputs["ablation_learning_curve"]
    expected_sizes = set(
        product(
            configured_grid["variants"], configured_grid["n_samples"], configured_grid["n_angles"]
        )
    )
    assert set(zip(curve["variant"], curve["n_samples"], curve["n_angles"], strict=True)) == (
        expected_sizes
    )
    assert (curve["n_seeds"] == len(configured_grid["seeds"])).all()
    recommendation = outputs["ablation_recommendation"]
    assert set(recommendation["variants"]) == set(configured_grid["variants"])
    assert recommendation["recommended_variant"] in configured_grid["variants"]
    largest = f"{max(configured_grid['n_samples'])} × {max(configured_grid['n_angles'])}"
    assert recommendation["reference"]["budget"] == largest
    assert (
        len(recommendation["order"]) == len(expected_sizes) // len(configured_grid["variants"]) - 1
    )
    assert recommendation["verdict"] in outputs["ablation_report"]


# --- a tiny grid, run --------------------------------------------------------------------


@pytest.fixture(scope="module")
def tiny_ablation(configured_project: None) -> Pipeline:
    """The registered ablation, built as for a conf/ whose grid is ``TINY_GRID``."""
    grid = raw_parameters(TINY_GRID)["data_size_ablation"]
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(ablation_module, "configured_grid", lambda: grid)
        patch.setattr(pipeline_registry, "configured_grid", lambda: grid)
        return pipeline_registry.register_pipelines()["data_size_ablation"]


def _tiny_inputs(pipeline: Pipeline, photos: Path, **overrides: Any) -> dict[str, Any]:
    parameters = project_parameters(
        {**TINY_TRAINING, **TINY_GRID, "raw_images.path": str(photos), **overrides}, pipeline
    )
    return {**parameters, "raw_images": PhotoFolderDataset(path=str(photos))}


@pytest.fixture(scope="module")
def photos(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_photo_folder(
        tmp_path_factory.mktemp("ablation") / "photos", {"ant": 10, "bee": 10}, size=32
    )


@pytest.fixture(scope="module")
def outputs(tiny_ablation: Pipeline, photos: Path) -> dict[str, Any]:
    return run_in_memory(tiny_ablation, _tiny_inputs(tiny_ablation, photos))


def test_tiny_grid_reports_one_row_per_cell_and_per_data_budget(outputs):
    per_seed = outputs["ablation_per_seed"]
    cells = set(
        zip(
            per_seed["variant"],
            per_seed["n_samples"],
            per_seed["n_angles"],
            per_seed["seed"],
            strict=True,
        )
    )
    assert cells == set(TINY_CELLS)
    assert (per_seed["n_images"] == per_seed["n_samples"] * per_seed["n_angles"]).all()
    curve = outputs["ablation_learning_curve"]
    assert len(curve) == len({cell[:3] for cell in TINY_CELLS})
    assert (curve["n_seeds"] == 2).all()
    assert set(outputs["ablation_recommendation"]["variants"]) == {"scratch", "frozen"}
    assert "frozen" in outputs["ablation_report"]
    # One angle count and two sample sizes: said in words, no crash and no number.
    assert "not estimable: the grid has one angle count" in outputs["ablation_report"]
    assert (
        "the grid has 2 sample sizes; extrapolation needs at least 5"
        in (outputs["ablation_report"])
    )
    recommendation = outputs["ablation_recommendation"]
    assert recommendation["variants"]["frozen"]["reference"]["budget"] == "8 × 2"
    assert recommendation["variants"]["frozen"]["order"] == ["4 × 2"]
    # The tiny trainings stop at their caps, so the study's rule chooses no variant.
    assert recommendation["recommended_variant"] is None
    assert "no variant's reference cells all converged" in recommendation["reason"]
    assert isinstance(outputs["ablation_heatmap"], Figure)
    assert isinstance(outputs["ablation_learning_curve_plot"], Figure)


def test_each_cell_trains_on_its_nested_subset_with_its_seed_and_overrides(outputs):
    study_split = outputs["split"]
    study_test = set(study_split.loc[study_split["split"] == "test", "path"])
    for variant, n, a, s in TINY_CELLS:
        cell = f"ablation.{variant}.n{n}_a{a}_s{s}"
        subset = outputs[f"{cell}.split"]
        train = subset[subset["split"] == "train"]
        assert train["sample_id"].nunique() == n, cell
        assert train.groupby("sample_id").size().eq(a).all(), cell
        assert set(subset.loc[subset["split"] == "test", "path"]) == study_test
        summary = outputs[f"{cell}.training_summary"]
        assert summary["seed"] == s
        assert summary["n_samples"] == n
        assert summary["steps"] == STEPS_RUN[variant]
        result = outputs[f"{cell}.result"]
        assert (result["variant"], result["n_samples"], result["n_angles"], result["seed"]) == (
            variant,
            n,
            a,
            s,
        )
        assert result["accuracy"] == pytest.approx(sum(result["correct"]) / len(result["correct"]))
    for variant, s in product(["scratch", "frozen"], [0, 1]):
        small = outputs[f"ablation.{variant}.n4_a2_s{s}.split"]
        large = outputs[f"ablation.{variant}.n8_a2_s{s}.split"]
        small_train = set(small.loc[small["split"] == "train", "path"])
        assert small_train < set(large.loc[large["split"] == "train", "path"])


def test_a_grid_changed_only_in_the_parameters_is_refused(tiny_ablation, photos):
    """Only the check node, fed a split, with one seed more than the pipeline was built for."""
    check_only = tiny_ablation.only_nodes("check_ablation_grid_node")
    split = pd.DataFrame(
        {"path": ["a.jpg"], "label": ["ant"], "sample_id": ["s0"], "angle": [0], "split": ["train"]}
    )
    inputs = _tiny_inputs(check_only, photos, **{"data_size_ablation.seeds": [0, 1, 2]})
    with pytest.raises(ParameterError, match="differs from the grid"):
        run_in_memory(check_only, {**inputs, "split": split})
