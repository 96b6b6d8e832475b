"""The training pipeline on ``SequentialRunner``: the variant template under the ``scratch``,
``frozen``, ``finetune_top`` and ``finetune`` namespaces, each with its own parameter block,
trained on the outputs of data processing for a tiny photo folder with a tiny backbone."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pytest
import torch
from kedro.pipeline import Node
from matplotlib.figure import Figure

from tests.helpers.in_memory_runs import run_in_memory
from tests.helpers.parameters import TINY_TRAINING, project_parameters
from tests.helpers.photos import write_photo_folder
from transfer_study.datasets import PhotoFolderDataset
from transfer_study.models.checkpoint import rebuild_classifier
from transfer_study.models.preprocessing import Preprocessing
from transfer_study.models.transforms import build_eval_transform
from transfer_study.pipelines import data_processing
from transfer_study.pipelines.training import create_pipeline as create_study_pipeline
from transfer_study.pipelines.variant_template import VARIANTS
from transfer_study.training.data import rows_in_cache

CLASSES = ("ant", "bee", "cat")
# Training caps in steps of 8 photos, different per variant, so that each history shows
# which block its training read. Fine-tune: 2 warm-up steps, then 2 with the backbone.
STEPS = {"scratch": 1, "frozen": 3, "finetune_top": 2, "finetune": 4}
PER_VARIANT_OUTPUTS = (
    "model",
    "training_history",
    "training_summary",
    "test_predictions",
    "test_metrics",
    "confusion_matrix",
    "training_curves",
    "learning_rate",
    "lr_range_test",
    "seed_models",
)
STUDY_INPUTS = {"decoded_images", "split", "preprocessing", "sample_grouping"}
OVERRIDES = {
    **TINY_TRAINING,
    "study.variants": list(VARIANTS),
    **{f"{variant}.max_images": 8 * n for variant, n in STEPS.items()},
    **{f"{variant}.min_steps": 1 for variant in STEPS},
    "training_defaults.patience": None,
    "training_defaults.val_every_steps": 2,  # an epoch is 4 steps
}


def create_pipeline():
    """The study with every variant, whatever ``study.variants`` says in conf/base."""
    return create_study_pipeline(variants=tuple(VARIANTS))


def _node(pipeline, name: str) -> Node:
    (node,) = [node for node in pipeline.nodes if node.name == name]
    return node


def _variant_blocks(node: Node) -> set[str]:
    """The node's ``params:`` inputs that belong to a variant's block."""
    return {
        name
        for name in node.inputs
        if name.startswith("params:") and name.removeprefix("params:").split(".")[0] in VARIANTS
    }


@pytest.fixture(scope="module")
def study_inputs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """Data processing's split, preprocessing and decoded images for 3 × 8 samples."""
    photos = write_photo_folder(
        tmp_path_factory.mktemp("training") / "photos", dict.fromkeys(CLASSES, 8), size=32
    )
    pipeline = data_processing.create_pipeline()
    parameters = project_parameters({**OVERRIDES, "raw_images.path": str(photos)}, pipeline)
    processed = run_in_memory(
        pipeline, {**parameters, "raw_images": PhotoFolderDataset(path=str(photos))}
    )
    # checked_split: what the near-copy check hands on, for runs of one namespace only.
    return {name: processed[name] for name in STUDY_INPUTS} | {"checked_split": processed["split"]}


@pytest.fixture(scope="module")
def outputs(study_inputs: dict[str, Any]) -> dict[str, Any]:
    pipeline = create_pipeline()
    return run_in_memory(pipeline, {**project_parameters(OVERRIDES, pipeline), **study_inputs})


# --- wiring ----------------------------------------------------------------------------


def test_each_variant_namespace_trains_with_its_own_parameter_block():
    pipeline = create_pipeline()
    for variant in VARIANTS:
        resolve = _node(pipeline, f"{variant}.resolve_training_settings_node")
        train = _node(pipeline, f"{variant}.train_node")
        blocks = _variant_blocks(resolve)
        assert blocks, f"{variant}.resolve_training_settings_node reads no variant block"
        assert {name.removeprefix("params:").split(".")[0] for name in blocks} == {variant}
        assert "params:training_defaults" in resolve.inputs
        assert resolve.outputs == [f"{variant}.training_settings"]
        assert f"{variant}.training_settings" in train.inputs
        assert not _variant_blocks(train), "the training reads only its resolved settings"
        assert "params:model" in train.inputs
        assert train.namespace == variant
    resolve_blocks = [
        frozenset(_variant_blocks(_node(pipeline, f"{v}.resolve_training_settings_node")))
        for v in VARIANTS
    ]
    assert len(set(resolve_blocks)) == len(VARIANTS)


def test_frozen_trains_on_backbone_features_the_others_on_images():
    pipeline = create_pipeline()
    embed = _node(pipeline, "embed_images_node")
    assert embed.outputs == ["backbone_features"]
    assert "embedding_settings" in embed.inputs
    resolve = _node(pipeline, "resolve_embedding_settings_node")
    assert {name.removeprefix("params:").split(".")[0] for name in _variant_blocks(resolve)} == {
        "frozen"
    }
    assert "backbone_features" in _node(pipeline, "frozen.train_node").inputs
    for variant in ("scratch", "finetune"):
        train = _node(pipeline, f"{variant}.train_node")
        assert "decoded_images" in train.inputs
        assert "backbone_features" not in train.inputs


def test_the_partial_fine_tune_trains_on_the_early_stages_it_cached_itself():
    pipeline = create_pipeline()
    cache = _node(pipeline, "finetune_top.embed_intermediate_node")
    assert cache.outputs == ["finetune_top.intermediate_features"]
    assert {"decoded_images", "finetune_top.training_settings"} <= set(cache.inputs)
    for name in ("finetune_top.choose_learning_rate_node", "finetune_top.train_node"):
        inputs = _node(pipeline, name).inputs
        assert "finetune_top.intermediate_features" in inputs
        assert "decoded_images" not in inputs


def test_variants_share_the_study_inputs_and_write_namespaced_outputs():
    pipeline = create_pipeline()
    data_inputs = {name for name in pipeline.inputs() if not name.startswith("params:")}
    assert data_inputs == STUDY_INPUTS
    assert {"params:model", "params:evaluation"} <= pipeline.inputs()
    expected = {f"{v}.{name}" for v in VARIANTS for name in PER_VARIANT_OUTPUTS}
    settings = {f"{v}.training_settings" for v in VARIANTS} | {"embedding_settings"}
    shared = {"backbone_features", "study_time_estimate", "checked_split", "grouping"}
    shared |= {"study_split", "registry_target"}  # the split once the registry is checked
    # The fine-tunes' heads, probed on the cached features; the partial one's cache.
    probe = {"finetune.probe_head", "finetune_top.probe_head"}
    partial = {"finetune_top.intermediate_features"}
    assert pipeline.all_outputs() == expected | settings | shared | probe | partial
    for variant in VARIANTS:
        evaluate = _node(pipeline, f"{variant}.evaluate_node")
        assert evaluate.inputs[0] == f"{variant}.model"
        assert "params:evaluation" in evaluate.inputs


# --- a tiny run --------------------------------------------------------------------------


def test_every_variant_trains_to_the_cap_of_its_own_block(outputs):
    for variant, steps in STEPS.items():
        history = outputs[f"{variant}.training_history"]
        summary = outputs[f"{variant}.training_summary"]
        assert history["step"].iloc[-1] == steps == summary["steps"], variant
        assert summary["stop_reason"] == "cap" and summary["converged"] is False
        assert summary["variant"] == variant
        # Fine-tune's first row validates its probed start: no training loss yet.
        trained = history[history["step"] > 0]
        assert np.isfinite(trained["train_loss"].to_numpy()).all()
        assert np.isfinite(history["val_loss"].to_numpy()).all()
        assert history["val_accuracy"].between(0, 1).all()
        # Fine-tune's probed start is validated but never kept.
        assert 1 <= summary["best_step"] <= steps


def test_each_variant_trains_with_the_learning_rate_chosen_for_it(outputs):
    for variant in VARIANTS:
        choice = outputs[f"{variant}.learning_rate"]
        summary = outputs[f"{variant}.training_summary"]
        assert choice["source"] == "given"  # TINY_TRAINING gives lr
        assert summary["lr"] == choice["lr"] == TINY_TRAINING[f"{variant}.lr"]
        assert isinstance(outputs[f"{variant}.lr_range_test"], Figure)


def test_the_study_time_is_estimated_from_a_timing_of_this_machine(outputs):
    estimate = outputs["study_time_estimate"]
    assert estimate["images_per_second"] > 0
    assert set(estimate["variants"]) == set(VARIANTS)
    assert 0 <= estimate["expected_seconds"] <= estimate["cap_seconds"]


def test_finetune_validates_its_probed_start_warms_up_then_trains_everything(outputs):
    history = outputs["finetune.training_history"]
    # The probed start (step 0), then validations every 2 steps.
    assert history["step"].tolist() == [0, 2, 4]
    assert history["backbone_frozen"].tolist() == [True, True, False]
    summary = outputs["finetune.training_summary"]
    assert summary["trainable_params"] == summary["total_params"]


def test_only_the_frozen_variant_keeps_its_backbone_frozen(outputs):
    frozen = outputs["frozen.training_summary"]
    assert 0 < frozen["trainable_params"] < frozen["total_params"]
    scratch = outputs["scratch.training_summary"]
    assert scratch["trainable_params"] == scratch["total_params"]
    assert scratch["total_params"] == frozen["total_params"]
    partial = outputs["finetune_top.training_summary"]
    assert frozen["trainable_params"] < partial["trainable_params"] < partial["total_params"]
    assert partial["trainable_stages"] == 2


def test_summaries_count_the_training_samples_of_the_split(outputs, study_inputs):
    train = study_inputs["split"][study_inputs["split"]["split"] == "train"]
    for variant in VARIANTS:
        summary = outputs[f"{variant}.training_summary"]
        assert summary["n_samples"] == train["sample_id"].nunique()
        assert summary["n_images"] == len(train)
        assert summary["backbone"] == TINY_TRAINING["model.backbone"]


def test_checkpoints_rebuild_with_the_classes_and_preprocessing_of_the_study(outputs, study_inputs):
    batch = torch.zeros(2, 3, TINY_TRAINING["model.image_size"], TINY_TRAINING["model.image_size"])
    for variant in VARIANTS:
        model, metadata = rebuild_classifier(outputs[f"{variant}.model"])
        assert metadata["variant"] == variant
        assert metadata["class_names"] == sorted(CLASSES)
        assert metadata["preprocessing"] == study_inputs["preprocessing"]
        with torch.inference_mode():
            assert model(batch).shape == (2, len(CLASSES))


def test_frozen_checkpoint_holds_the_backbone_that_made_the_features(outputs, study_inputs):
    (features,) = outputs["backbone_features"].values()
    cached = features()
    model, metadata = rebuild_classifier(outputs["frozen.model"])
    (decoded,) = study_inputs["decoded_images"].values()
    images = decoded()
    spec = Preprocessing.from_dict(metadata["preprocessing"])
    transform = build_eval_transform(preprocessing=spec)
    rows = images["images"][rows_in_cache(images, cached["paths"])]
    with torch.inference_mode():
        recomputed = model.backbone(torch.stack([transform(image) for image in rows]))
    torch.testing.assert_close(recomputed, cached["features"], atol=1e-4, rtol=1e-4)


def test_every_variant_is_tested_on_the_same_test_photos(outputs, study_inputs):
    split = study_inputs["split"]
    test_paths = sorted(split.loc[split["split"] == "test", "path"])
    for variant in VARIANTS:
        predictions = outputs[f"{variant}.test_predictions"]
        assert sorted(predictions["path"]) == test_paths
        assert set(predictions["predicted"]) <= set(CLASSES)
        probabilities = predictions[[f"prob_{name}" for name in sorted(CLASSES)]]
        np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, atol=1e-5)


def test_test_metrics_agree_with_the_test_predictions(outputs):
    for variant in VARIANTS:
        predictions = outputs[f"{variant}.test_predictions"]
        metrics = outputs[f"{variant}.test_metrics"]
        correct = (predictions["label"] == predictions["predicted"]).mean()
        assert metrics["accuracy"] == pytest.approx(correct)
        assert metrics["accuracy_ci_low"] <= metrics["accuracy"] <= metrics["accuracy_ci_high"]
        assert metrics["accuracy_ci_low"] >= 0.0 and metrics["accuracy_ci_high"] <= 1.0


def test_figures_are_drawn_for_every_variant(outputs):
    for variant in VARIANTS:
        curves = outputs[f"{variant}.training_curves"]
        assert isinstance(curves, Figure)
        assert isinstance(outputs[f"{variant}.confusion_matrix"], Figure)
        titles = [text.get_text() for text in curves.texts] + [
            axes.get_title() for axes in curves.axes
        ]
        assert any(variant in title for title in titles), titles


def test_same_parameters_give_the_same_histories(outputs, study_inputs):
    """Seeds come from the parameter blocks: a second run of one variant repeats the first."""
    pipeline = create_pipeline().only_nodes_with_namespaces(["scratch"])
    again = run_in_memory(pipeline, {**project_parameters(OVERRIDES, pipeline), **study_inputs})
    columns = ["train_loss", "val_loss", "val_accuracy"]
    pd.testing.assert_frame_equal(
        again["scratch.training_history"][columns], outputs["scratch.training_history"][columns]
    )


def test_an_unknown_optimizer_in_one_block_stops_that_variant(study_inputs):
    pipeline = create_pipeline().only_nodes_with_namespaces(["finetune"])
    with pytest.raises(Exception, match="optimizer"):
        parameters = project_parameters({**OVERRIDES, "finetune.optimizer": "adamx"}, pipeline)
        run_in_memory(pipeline, {**parameters, **study_inputs})


def test_finetune_starts_from_a_head_probed_with_the_frozen_variants_choice():
    pipeline = create_pipeline()
    probe = _node(pipeline, "finetune.probe_head_node")
    assert {
        "backbone_features",
        "finetune.training_settings",
        "frozen.training_settings",
        "frozen.learning_rate",
    } <= set(probe.inputs)
    assert probe.outputs == ["finetune.probe_head"]
    # The range test and the training both start from the probed head.
    for name in ("finetune.choose_learning_rate_node", "finetune.train_node"):
        assert "finetune.probe_head" in _node(pipeline, name).inputs
    for variant in ("scratch", "frozen"):
        assert not [n for n in pipeline.nodes if n.name.startswith(f"{variant}.probe")]


def test_the_near_copy_check_runs_before_any_variant_chooses_its_lr_or_trains():
    pipeline = create_pipeline()
    after_check = {node.name for node in pipeline.from_nodes("check_near_copies_node").nodes}
    trainings = {
        node.name
        for node in pipeline.nodes
        if node.name.endswith((".train_node", ".choose_learning_rate_node"))
    }
    assert len(trainings) == 2 * len(VARIANTS)
    assert trainings <= after_check
