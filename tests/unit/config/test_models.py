"""Parameter models: bounds, unknown keys, training resolution, and how they print."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from pydantic import ValidationError

from transfer_study.config import (
    AblationGrid,
    AblationSettings,
    HeadSettings,
    ModelSettings,
    SplitSettings,
    VariantOverrides,
    resolve_training_settings,
)

TRAINING_YAML = Path(__file__).parents[3] / "conf" / "base" / "parameters_training.yml"


def test_a_setting_missing_from_both_blocks_is_an_error():
    defaults = VariantOverrides(batch_size=8)
    with pytest.raises(ValidationError, match="max_images"):
        resolve_training_settings("scratch", defaults, VariantOverrides(lr=0.1))


@pytest.mark.parametrize(
    ("values", "field"),
    [
        ({"lrr": 0.1}, "lrr"),
        ({"lr": 0.0}, "lr"),
        ({"lr": -1e-3}, "lr"),
        ({"lr": "fast"}, "lr"),
        ({"max_images": True}, "max_images"),
        ({"max_images": 2.5}, "max_images"),
        ({"patience": 0}, "patience"),
        ({"class_weights": "sometimes"}, "class_weights"),
        ({"lr_search": {"min_lr": 1.0, "max_lr": 0.1, "steps": 10}}, "lr_search"),
        ({"optimizer": "rmsprop"}, "optimizer"),
        ({"scheduler": "linear"}, "scheduler"),
        ({"device": "gpu"}, "device"),
        ({"label_smoothing": 1.0}, "label_smoothing"),
        ({"num_workers": -1}, "num_workers"),
        ({"compile": "sometimes"}, "compile"),
        ({"head": {"type": "mlp"}}, "head"),
        ({"augmentations": [{"degrees": 15}]}, "augmentations"),
    ],
)
def test_variant_blocks_refuse_unknown_keys_and_values_out_of_range(values: dict, field: str):
    with pytest.raises(ValidationError) as raised:
        VariantOverrides.model_validate(values)
    assert raised.value.errors()[0]["loc"][0] == field


def test_overrides_accept_what_the_command_line_gives():
    overrides = VariantOverrides.model_validate(
        {"compile": False, "num_workers": "auto", "patience": None, "lr": 1}
    )
    assert overrides.set_values() == {
        "compile": False,
        "num_workers": "auto",
        "patience": None,
        "lr": 1.0,
    }
    assert VariantOverrides.model_validate({"lr": "auto"}).lr == "auto"


def test_head_needs_hidden_units_exactly_when_it_is_an_mlp():
    assert HeadSettings(type="mlp", hidden_units=16).dropout == 0.0
    with pytest.raises(ValidationError, match="hidden_units"):
        HeadSettings(type="mlp")
    with pytest.raises(ValidationError, match="hidden_units"):
        HeadSettings(type="linear", hidden_units=16)
    with pytest.raises(ValidationError, match="dropout"):
        HeadSettings(type="linear", dropout=1.0)


@pytest.mark.parametrize(
    ("val", "test", "message"),
    [
        (0.0, 0.2, "greater than 0"),
        (0.2, 1.2, "less than 1"),
        (0.5, 0.5, "must be below 1"),
    ],
)
def test_split_fractions_must_leave_samples_to_train_on(val: float, test: float, message: str):
    with pytest.raises(ValidationError, match=message):
        SplitSettings(val_fraction=val, test_fraction=test, seed=1)


def test_models_are_frozen_and_refuse_unknown_keys():
    model = ModelSettings(backbone="resnet18", image_size="auto")
    with pytest.raises(ValidationError):
        model.backbone = "vgg16"
    with pytest.raises(ValidationError, match="image_siz"):
        ModelSettings.model_validate({"backbone": "resnet18", "image_siz": 64})
    with pytest.raises(ValidationError, match="image_size"):
        ModelSettings(backbone="resnet18", image_size=8)


def test_ablation_grid_takes_a_single_value_as_a_one_value_axis_and_refuses_empty_ones():
    grid = AblationGrid(n_samples=[2, 4], n_angles=1, seeds=0, clamp=False)
    assert (grid.n_angles, grid.seeds) == ([1], [0])
    with pytest.raises(ValidationError, match="n_samples"):
        AblationGrid(n_samples=[], n_angles=[1], seeds=[0], clamp=False)
    with pytest.raises(ValidationError, match="n_samples"):
        AblationGrid(n_samples=[0], n_angles=[1], seeds=[0], clamp=False)


def test_ablation_overrides_are_checked_per_variant():
    report = {
        "tolerance": 0.01,
        "confidence": 0.95,
        "bootstrap_resamples": 10,
        "bootstrap_seed": 0,
        "extrapolate_to": [2],
    }
    cluster = {"workers": 2, "scheduler": None, "cells_per_task": "auto", "retries": 2}
    grid = {"n_samples": [2], "n_angles": [1], "seeds": [0], "clamp": False, "report": report}
    grid["cluster"] = {**cluster, "dashboard": False}
    settings = AblationSettings.model_validate(
        {**grid, "variants": ["frozen"], "training_overrides": {"frozen": {"patience": 6}}}
    )
    assert settings.training_overrides["frozen"].patience == 6
    with pytest.raises(ValidationError, match="patience"):
        AblationSettings.model_validate(
            {**grid, "variants": ["frozen"], "training_overrides": {"frozen": {"patience": 0}}}
        )
    with pytest.raises(ValidationError, match="variants"):
        AblationSettings.model_validate({**grid, "variants": ["big"], "training_overrides": {}})


def test_models_print_as_compact_json_and_partial_blocks_only_what_they_set():
    model = ModelSettings(backbone="resnet18", image_size="auto")
    assert str(model) == '{"backbone":"resnet18","image_size":"auto"}'
    assert json.loads(str(VariantOverrides(lr=0.01, patience=3))) == {"lr": 0.01, "patience": 3}
