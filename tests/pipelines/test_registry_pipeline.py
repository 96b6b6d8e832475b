"""The registry pipeline on ``SequentialRunner``: the comparison and the registry target
(resolved by the training pipeline's ``resolve_registry_target_node``) in, the variant to
register out. The MLflow side (refusing a conflicting name, registering) is the hook's:
see tests/unit/tracking/test_registration.py and the end-to-end study run."""

from __future__ import annotations

import pandas as pd
import pytest

from tests.helpers.in_memory_runs import run_in_memory
from tests.helpers.parameters import project_parameters
from transfer_study.config import ModelSettings, RegistrySettings
from transfer_study.pipelines.registry import create_pipeline
from transfer_study.pipelines.variant_nodes import resolve_registry_target
from transfer_study.pipelines.variant_template import VARIANTS

SPLIT = pd.DataFrame(
    {
        "path": ["plastic/a.jpg", "natural/b.jpg", "plastic/c.jpg"],
        "label": ["plastic", "natural", "plastic"],
        "sample_id": ["a", "b", "c"],
        "split": ["train", "val", "test"],
    }
)


def _comparison(selected: str | None) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "variant": list(VARIANTS),
            "selected": [variant == selected for variant in VARIANTS],
            "val_metric": [0.70, 0.85, 0.88, 0.90],
            "metric": "accuracy",
            "accuracy": [0.68, 0.88, 0.89, 0.91],
            "accuracy_ci_low": [0.6, 0.8, 0.82, 0.85],
            "accuracy_ci_high": [0.75, 0.93, 0.94, 0.95],
            "weights": ["none", "imagenet", "imagenet", "imagenet"],
        }
    )


def _target(**registry: object) -> dict:
    params = project_parameters({f"registry.{k}": v for k, v in registry.items()})
    settings = RegistrySettings.model_validate(params["params:registry"])
    model = ModelSettings.model_validate(params["params:model"])
    split, target = resolve_registry_target(SPLIT, settings, model)
    assert split is SPLIT  # handed on unchanged: the study trains on it
    return target


def _run(selected: str | None, **registry: object) -> dict:
    pipeline = create_pipeline()
    summaries = {
        f"{variant}.training_summary": {"split_fingerprint": "f00d", "seed": i}
        for i, variant in enumerate(VARIANTS)
    }
    inputs = {
        "registry_target": _target(**registry),
        "variant_comparison": _comparison(selected),
        **summaries,
    }
    return run_in_memory(pipeline, inputs)


def test_the_target_is_named_from_the_backbone_and_lists_the_classes_in_output_order():
    assert _target() == {
        "register": True,
        "name": "transfer-study-efficientnet_lite0",
        "backbone": "efficientnet_lite0",
        "class_names": ["natural", "plastic"],
        "promote_across_splits": False,
    }


def test_the_variant_chosen_on_validation_is_to_be_registered_with_its_record():
    outputs = _run("finetune", name="fragments", promote_across_splits=True)
    registration = outputs["model_registration"]
    assert registration["register"] and registration["name"] == "fragments"
    assert registration["variant"] == "finetune"
    assert registration["val_metric"] == pytest.approx(0.90)
    assert registration["split_fingerprint"] == "f00d"
    assert registration["promote_across_splits"] is True
    assert registration["tags"] == {
        "variant": "finetune",
        "backbone": "efficientnet_lite0",
        "weights": "imagenet",
        "split_fingerprint": "f00d",
        "val_metric_name": "accuracy",
        "test_accuracy": "0.9100",
        "test_accuracy_ci": "[0.8500, 0.9500]",
        "seed": str(list(VARIANTS).index("finetune")),  # _run seeds each variant apart
    }


def test_nothing_is_to_be_registered_when_turned_off_or_when_no_variant_was_chosen():
    assert _run("finetune", enabled=False)["model_registration"] == {
        "register": False,
        "reason": "registry.enabled is false",
    }
    unchosen = _run(None)["model_registration"]
    assert unchosen["register"] is False and "chose no variant" in unchosen["reason"]
