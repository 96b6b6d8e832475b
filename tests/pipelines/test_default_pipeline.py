"""``__default__`` (what a plain ``kedro run`` runs) on ``SequentialRunner``: data processing,
the registry target, training, reporting and the ONNX export wired into one study, run in
memory on demo photos."""

from __future__ import annotations

from typing import Any

import pytest
from kedro.pipeline import Pipeline

from tests.helpers.in_memory_runs import run_in_memory
from tests.helpers.parameters import TINY_TRAINING, project_parameters, shipped_study_variants
from tests.helpers.photos import encoded_photos
from transfer_study.pipelines import (
    data_processing,
    demo_data,
    export,
    registry,
    reporting,
    training,
)

TINY_DEMO = {"demo_data.n_samples": 16, "demo_data.n_angles": 2, "demo_data.image_size": 32}
STUDY_PACKAGES = (data_processing, registry, training, reporting, export)

# What a plain `kedro run` trains: the study of conf/base.
VARIANTS = shipped_study_variants()


def _names(pipeline: Pipeline) -> set[str]:
    return {node.name for node in pipeline.nodes}


@pytest.fixture(scope="module")
def default(registered_pipelines: dict[str, Pipeline]) -> Pipeline:
    return registered_pipelines["__default__"]


@pytest.fixture(scope="module")
def demo_photos() -> dict[str, Any]:
    """The demo pipeline's photos, as the photo folder's loaders of JPEG bytes."""
    pipeline = demo_data.create_pipeline()
    fragments = run_in_memory(pipeline, project_parameters(TINY_DEMO, pipeline))
    return encoded_photos(fragments["demo_fragments"])


@pytest.fixture(scope="module")
def outputs(default: Pipeline, demo_photos: dict[str, Any]) -> dict[str, Any]:
    parameters = project_parameters({**TINY_DEMO, **TINY_TRAINING}, default)
    return run_in_memory(default, {**parameters, "raw_images": demo_photos})


def test_default_is_data_processing_training_and_reporting(default):
    expected = sum((package.create_pipeline() for package in STUDY_PACKAGES), Pipeline([]))
    assert _names(default) == _names(expected)


def test_the_study_needs_only_the_photo_folder_and_parameters(default):
    data_inputs = {name for name in default.inputs() if not name.startswith("params:")}
    assert data_inputs == {"raw_images"}


def test_each_stage_reads_what_the_previous_one_writes():
    processed = data_processing.create_pipeline().all_outputs()
    trained = training.create_pipeline()
    assert {n for n in trained.inputs() if not n.startswith("params:")} <= processed
    compared = reporting.create_pipeline()
    assert {n for n in compared.inputs() if not n.startswith("params:")} <= trained.all_outputs()
    exported = export.create_pipeline()
    assert {n for n in exported.inputs() if not n.startswith("params:")} <= (
        processed | trained.all_outputs() | compared.all_outputs()
    )
    registered = registry.create_pipeline()
    assert {n for n in registered.inputs() if not n.startswith("params:")} <= (
        trained.all_outputs() | compared.all_outputs()
    )


def test_the_study_compares_every_variant_trained_on_the_demo_photos(outputs):
    comparison = outputs["variant_comparison"].set_index("variant")
    assert comparison.index.tolist() == list(VARIANTS)
    for variant in VARIANTS:
        metrics = outputs[f"{variant}.test_metrics"]
        assert comparison.loc[variant, "accuracy"] == pytest.approx(metrics["accuracy"])
        summary = outputs[f"{variant}.training_summary"]
        assert comparison.loc[variant, "epochs_run"] == summary["epochs_run"]
    assert len(outputs["variant_pairs"]) == len(VARIANTS) * (len(VARIANTS) - 1) // 2


def test_the_study_splits_the_demo_samples_and_trains_on_its_classes(outputs):
    split = outputs["split"]
    assert len(split) == TINY_DEMO["demo_data.n_samples"] * TINY_DEMO["demo_data.n_angles"]
    assert split.groupby("sample_id")["split"].nunique().eq(1).all()
    classes = sorted(project_parameters()["params:demo_data.classes"])
    assert sorted(split["label"].unique()) == classes
    for variant in VARIANTS:
        assert outputs[f"{variant}.model"]["metadata"]["class_names"] == classes
    assert outputs["data_quality"].empty
