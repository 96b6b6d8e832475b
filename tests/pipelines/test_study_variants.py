"""``study.variants``: the study built and run with some of the variants only, on
``SequentialRunner`` with a tiny backbone; the report compares what was trained."""

from __future__ import annotations

from typing import Any

import pytest

from tests.helpers.in_memory_runs import run_in_memory
from tests.helpers.parameters import TINY_TRAINING, project_parameters
from tests.helpers.photos import write_photo_folder
from transfer_study.datasets import PhotoFolderDataset
from transfer_study.pipelines import data_processing, reporting
from transfer_study.pipelines import training as study

CLASSES = {"ant": 6, "bee": 6}
# Fine-tune without frozen: the probe still needs the frozen variant's chosen settings.
ONLY_FINETUNE = ("finetune",)
OVERRIDES = {**TINY_TRAINING, "study.variants": list(ONLY_FINETUNE)}


def _pipeline(variants: tuple[str, ...]):
    return study.create_pipeline(variants=variants) + reporting.create_pipeline(variants=variants)


def _node_names(pipeline) -> set[str]:
    return {node.name for node in pipeline.nodes}


@pytest.fixture(scope="module")
def processed(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    photos = write_photo_folder(tmp_path_factory.mktemp("variants") / "photos", CLASSES, size=32)
    pipeline = data_processing.create_pipeline()
    parameters = project_parameters({**OVERRIDES, "raw_images.path": str(photos)}, pipeline)
    outputs = run_in_memory(
        pipeline, {**parameters, "raw_images": PhotoFolderDataset(path=str(photos))}
    )
    return {name: outputs[name] for name in ("split", "preprocessing", "decoded_images")} | {
        "sample_grouping": outputs["sample_grouping"]
    }


def _run(processed: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    pipeline = _pipeline(ONLY_FINETUNE)
    return run_in_memory(pipeline, {**project_parameters(overrides, pipeline), **processed})


def test_only_the_listed_variants_train_and_a_probed_one_still_gets_frozens_lr():
    names = _node_names(study.create_pipeline(variants=("scratch", "finetune")))
    trained = {name.split(".")[0] for name in names if name.endswith(".train_node")}
    assert trained == {"scratch", "finetune"}
    assert "frozen.choose_learning_rate_node" in names  # the probe reads frozen.learning_rate
    assert not {n for n in names if n.startswith("finetune_top.")}
    # Scratch alone needs nothing of frozen's beyond the shared embedding.
    alone = _node_names(study.create_pipeline(variants=("scratch",)))
    assert not {n for n in alone if n.startswith("frozen.")}


def test_the_estimate_and_the_report_read_the_listed_variants_only():
    pipeline = _pipeline(("frozen", "finetune_top"))
    (estimate,) = [n for n in pipeline.nodes if n.name == "estimate_study_time_node"]
    assert "params:study" in estimate.inputs
    settings = {name for name in estimate.inputs if name.endswith(".training_settings")}
    assert settings == {"frozen.training_settings", "finetune_top.training_settings"}
    (compare,) = [n for n in pipeline.nodes if n.name == "compare_variants_node"]
    read = {name.split(".")[0] for name in compare.inputs if "." in name and ":" not in name}
    assert read == {"frozen", "finetune_top"}


def test_a_study_of_one_variant_trains_it_and_reports_it_without_pairs(processed):
    outputs = _run(processed, OVERRIDES)
    comparison = outputs["variant_comparison"]
    assert comparison["variant"].tolist() == ["finetune"]
    assert outputs["variant_pairs"].empty
    assert "finetune" in outputs["variant_comparison_report"]
    assert set(outputs["study_time_estimate"]["variants"]) == {"finetune"}
    assert "frozen.learning_rate" in outputs and "frozen.model" not in outputs


def test_variants_changed_only_with_params_are_refused_with_where_to_set_them(processed):
    with pytest.raises(ValueError, match="cannot be changed with --params") as caught:
        _run(processed, {**TINY_TRAINING, "study.variants": ["frozen", "finetune"]})
    assert "conf/local/parameters_training.yml" in str(caught.value)
