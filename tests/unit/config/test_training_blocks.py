"""The shipped training blocks: every variant is the defaults updated with its own block."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from pydantic import ValidationError

from transfer_study.config import (
    TrainingSettings,
    VariantOverrides,
    resolve_training_settings,
    with_overrides,
)

TRAINING_YAML = Path(__file__).parents[3] / "conf" / "base" / "parameters_training.yml"


@pytest.fixture(scope="module")
def training_blocks() -> dict:
    return yaml.safe_load(TRAINING_YAML.read_text())


def _settings(blocks: dict, variant: str) -> TrainingSettings:
    return resolve_training_settings(
        variant,
        VariantOverrides.model_validate(blocks["training_defaults"]),
        VariantOverrides.model_validate(blocks[variant]),
    )


def test_each_variant_is_the_defaults_updated_with_its_block(training_blocks: dict):
    finetune = _settings(training_blocks, "finetune")
    frozen = _settings(training_blocks, "frozen")
    defaults = training_blocks["training_defaults"]
    assert (finetune.name, finetune.weights, finetune.lr) == ("finetune", "imagenet", "auto")
    assert (finetune.head_init, finetune.backbone_lr_multiplier) == ("probe", 1.0)
    assert (frozen.head_init, finetune.head_warmup_steps) == ("random", 0)
    assert frozen.patience == training_blocks["frozen"]["patience"]  # its own
    assert finetune.patience == defaults["patience"]  # the default
    assert (
        finetune.batch_size
        == frozen.batch_size
        == training_blocks["training_defaults"]["batch_size"]
    )
    assert finetune.augmentation_specs() == training_blocks["training_defaults"]["augmentations"]


def test_variant_blocks_state_only_what_differs_from_the_defaults(training_blocks: dict):
    defaults = training_blocks["training_defaults"]
    for variant in ("scratch", "frozen", "finetune"):
        repeated = {k for k, v in training_blocks[variant].items() if defaults.get(k) == v}
        assert not repeated, f"{variant} repeats {repeated} from training_defaults"


def test_with_overrides_replaces_fields_and_checks_them_again(training_blocks: dict):
    frozen = _settings(training_blocks, "frozen")
    changed = with_overrides(frozen, VariantOverrides(patience=6), seed=3)
    assert (changed.patience, changed.seed, changed.lr) == (6, 3, frozen.lr)
    with pytest.raises(ValidationError, match="seed"):
        with_overrides(frozen, seed=-1)


def test_resolved_settings_print_as_the_json_that_mlflow_records(
    training_blocks: dict,
):
    settings = _settings(training_blocks, "finetune")
    assert json.loads(str(settings)) == settings.model_dump(mode="json")
