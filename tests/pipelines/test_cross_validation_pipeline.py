"""The study with ``split.folds: 3`` on ``SequentialRunner``: data processing assigns folds,
each ``fold_<i>`` namespace holds the embedding check and the three variants, and one node
per variant pools the folds into the datasets the report reads."""

from __future__ import annotations

from typing import Any

import pandas as pd
import pytest

from tests.helpers.in_memory_runs import run_in_memory
from tests.helpers.parameters import TINY_TRAINING, project_parameters
from tests.helpers.photos import write_photo_folder
from transfer_study.datasets import PhotoFolderDataset
from transfer_study.pipelines import data_processing
from transfer_study.pipelines import reporting as reporting_pipeline
from transfer_study.pipelines.data_processing import pipeline as data_processing_module
from transfer_study.pipelines.training.pipeline import cross_validation_pipeline
from transfer_study.pipelines.variant_template import VARIANTS

FOLDS = 3
CLASSES = {"ant": 6, "bee": 6}
OVERRIDES = {**TINY_TRAINING, "split.folds": FOLDS, "study.variants": list(VARIANTS)}


@pytest.fixture(scope="module")
def outputs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    photos = write_photo_folder(tmp_path_factory.mktemp("folds") / "photos", CLASSES, size=32)
    with pytest.MonkeyPatch.context() as patch:
        # As if conf/local/parameters.yml said split.folds: 3.
        patch.setattr(data_processing_module, "configured_folds", lambda: FOLDS)
        processing = data_processing.create_pipeline()
    every = tuple(VARIANTS)
    study = cross_validation_pipeline(FOLDS, every)
    study += reporting_pipeline.create_pipeline(variants=every)
    pipeline = processing + study
    parameters = project_parameters({**OVERRIDES, "raw_images.path": str(photos)}, pipeline)
    return run_in_memory(
        pipeline, {**parameters, "raw_images": PhotoFolderDataset(path=str(photos))}
    )


def test_each_fold_is_a_namespace_holding_the_embedding_check_and_every_variant():
    pipeline = cross_validation_pipeline(FOLDS, tuple(VARIANTS))
    namespaces = {node.namespace for node in pipeline.nodes}
    assert {f"fold_{f}" for f in range(FOLDS)} <= namespaces
    assert {f"fold_{f}.{v}" for f in range(FOLDS) for v in VARIANTS} <= namespaces
    assert set(VARIANTS) <= namespaces  # the pooling nodes: one child run per variant
    # What the folds share comes from the study; everything else is their own.
    assert pipeline.inputs() - {n for n in pipeline.inputs() if n.startswith("params:")} == {
        "decoded_images",
        "preprocessing",
        "sample_grouping",
        "split",
    }


def test_every_photo_is_tested_once_in_the_fold_of_its_sample(outputs):
    split = outputs["split"]
    for variant in VARIANTS:
        pooled = outputs[f"{variant}.test_predictions"]
        assert sorted(pooled["path"]) == sorted(split["path"])
        fold_of = dict(zip(split["path"], split["fold"], strict=True))
        assert (pooled["fold"] == pooled["path"].map(fold_of)).all()


def test_each_fold_trains_and_validates_on_the_other_folds_samples(outputs):
    for fold in range(FOLDS):
        roles = outputs[f"fold_{fold}.split"]
        tested = set(roles.loc[roles["split"] == "test", "sample_id"])
        assert tested == set(roles.loc[roles["fold"] == fold, "sample_id"])
        others = set(roles.loc[roles["split"].isin(["train", "val"]), "sample_id"])
        assert not tested & others
        assert set(roles.loc[roles["split"] == "val", "label"]) == set(CLASSES)


def test_pooled_metrics_are_those_of_the_pooled_predictions(outputs):
    for variant in VARIANTS:
        pooled: pd.DataFrame = outputs[f"{variant}.test_predictions"]
        accuracy = (pooled["label"] == pooled["predicted"]).mean()
        assert outputs[f"{variant}.test_metrics"]["accuracy"] == pytest.approx(accuracy)


def test_the_kept_model_is_the_fold_that_validated_best(outputs):
    for variant in VARIANTS:
        summary = outputs[f"{variant}.training_summary"]
        assert summary["folds"] == FOLDS
        kept = summary["kept_fold"]
        values = [fold["best_val_metric"] for fold in summary["per_fold"]]
        assert values[kept] == max(values)
        assert outputs[f"{variant}.model"] is outputs[f"fold_{kept}.{variant}.model"]


def test_the_report_says_it_pools_a_grouped_cross_validation(outputs):
    report = outputs["variant_comparison_report"]
    assert f"Grouped {FOLDS}-fold cross-validation" in report
    assert set(outputs["variant_comparison"]["folds"]) == {FOLDS}
    # The near-copy check is skipped (random weights) in every fold, so in the whole.
    assert outputs["grouping"]["near_copy"] == {"checked": False}


def test_folds_given_only_with_params_are_refused(tmp_path):
    photos = write_photo_folder(tmp_path / "photos", CLASSES, size=32)
    pipeline = data_processing.create_pipeline()  # built as conf/base says: no folds
    parameters = project_parameters({**OVERRIDES, "raw_images.path": str(photos)}, pipeline)
    with pytest.raises(ValueError, match="cannot be changed with --params"):
        run_in_memory(pipeline, {**parameters, "raw_images": PhotoFolderDataset(path=str(photos))})
