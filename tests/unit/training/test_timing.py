"""The study's time estimate: what each variant is expected to cost, and the advice a long
study gets."""

from __future__ import annotations

import pytest

from tests.helpers.settings import study_training_settings
from transfer_study.config import with_overrides
from transfer_study.training.timing import (
    LONG_STUDY_SECONDS,
    TYPICAL_EPOCHS,
    VALIDATION_COST,
    advice,
    estimate_image_variant,
    study_time_estimate,
)

SPEED = 20.0  # training images a second
N_TRAIN, N_VAL = 240, 60


def _finetune(**changes: object):
    return with_overrides(study_training_settings("finetune"), **changes)


def _seconds(images: float, search: float = 0) -> int:
    validations = images / N_TRAIN
    return round((images + search + validations * N_VAL * VALIDATION_COST) / SPEED)


def test_a_pretrained_variant_is_expected_to_train_its_typical_epochs_and_validate_each():
    estimate = estimate_image_variant(_finetune(lr=0.001), SPEED, N_TRAIN, N_VAL)
    assert estimate["expected_seconds"] == _seconds(TYPICAL_EPOCHS["pretrained"] * N_TRAIN)


def test_scratch_is_expected_to_need_more_epochs_than_a_pretrained_variant():
    scratch = with_overrides(study_training_settings("scratch"), lr=0.001)
    estimate = estimate_image_variant(scratch, SPEED, N_TRAIN, N_VAL)
    assert estimate["expected_seconds"] == _seconds(TYPICAL_EPOCHS["scratch"] * N_TRAIN)


def test_choosing_the_learning_rate_adds_its_steps():
    given = estimate_image_variant(_finetune(lr=0.001), SPEED, N_TRAIN, N_VAL)
    chosen = estimate_image_variant(_finetune(lr="auto"), SPEED, N_TRAIN, N_VAL)
    search = _finetune().lr_search.steps * _finetune().batch_size
    assert chosen["expected_seconds"] - given["expected_seconds"] == pytest.approx(
        search / SPEED, abs=1
    )


def test_a_tiny_set_still_trains_min_steps_and_the_cap_bounds_the_expectation():
    tiny = estimate_image_variant(_finetune(lr=0.001, min_steps=500), SPEED, 8, 4)
    assert tiny["expected_seconds"] >= 500 * _finetune().batch_size / SPEED
    capped = _finetune(lr=0.001, max_images=480, min_steps=1)
    capped = estimate_image_variant(capped, SPEED, N_TRAIN, N_VAL)
    assert capped["expected_seconds"] == capped["cap_seconds"] == _seconds(480)


def test_the_study_total_is_the_sum_of_its_variants():
    variants = {
        "a": {"expected_seconds": 10, "cap_seconds": 100},
        "b": {"expected_seconds": 5, "cap_seconds": 7},
    }
    assert study_time_estimate(variants) == {"expected_seconds": 15, "cap_seconds": 107}


def test_a_short_study_gets_no_advice():
    assert advice(LONG_STUDY_SECONDS, 224, on_gpu=False) is None


def test_a_long_study_is_told_a_smaller_input_fewer_variants_and_a_gpu():
    told = advice(LONG_STUDY_SECONDS + 1, 224, on_gpu=False)
    assert "--params=model.image_size=160" in told
    assert "study.variants in conf/local/parameters_training.yml" in told
    assert "GPU" in told
    assert "GPU" not in advice(LONG_STUDY_SECONDS + 1, 224, on_gpu=True)
