"""More samples or more angles: the GEE on records drawn from a known logistic model."""

from __future__ import annotations

import json

import pytest

from tests.helpers.ablation_records import logistic_records
from transfer_study.evaluation.angles_model import (
    MORE_ANGLES,
    MORE_SAMPLES,
    NO_CLEAR_DIFFERENCE,
    samples_vs_angles,
)


def test_samples_slope_above_angles_slope_is_recovered() -> None:
    result = samples_vs_angles(logistic_records({"finetune": (0.6, 0.1)}), confidence=0.95)
    model = result["all_variants"]
    assert model["status"] == "ok"
    # GEE estimates the population-averaged slope: attenuated by the test samples' spread.
    assert model["samples_slope"] > model["angles_slope"] + 0.2
    assert model["samples_ci"][0] < model["samples_slope"] < model["samples_ci"][1]
    low, high = model["difference_ci"]
    assert 0 < low < model["difference"] < high
    assert model["verdict"] == MORE_SAMPLES
    assert result["variants"] == {}  # one variant: no per-variant models
    assert "variant" not in result["model"]
    assert json.loads(json.dumps(result)) == result


def test_equal_slopes_give_no_clear_difference() -> None:
    model = samples_vs_angles(logistic_records({"x": (0.4, 0.4)}), confidence=0.95)
    assert model["all_variants"]["verdict"] == NO_CLEAR_DIFFERENCE
    low, high = model["all_variants"]["difference_ci"]
    assert low < 0 < high


def test_each_variant_gets_its_own_model_when_there_are_several() -> None:
    records = logistic_records({"frozen": (0.1, 0.6), "finetune": (0.6, 0.1)})
    result = samples_vs_angles(records, confidence=0.95)
    assert result["model"].endswith("+ variant")
    assert result["variants"]["frozen"]["verdict"] == MORE_ANGLES
    assert result["variants"]["finetune"]["verdict"] == MORE_SAMPLES
    assert result["all_variants"]["status"] == "ok"


@pytest.mark.parametrize(
    ("grid", "reason"),
    [
        ({"n_angles": (2,)}, "not estimable: the grid has one angle count"),
        ({"n_samples": (20,)}, "not estimable: the grid has one sample size"),
    ],
)
def test_a_grid_with_one_value_on_an_axis_is_not_estimable(grid: dict, reason: str) -> None:
    result = samples_vs_angles(logistic_records({"x": (0.5, 0.2)}, **grid), confidence=0.95)
    assert result["all_variants"]["status"] == "not estimable"
    assert result["all_variants"]["verdict"] == reason


def test_perfect_separation_is_caught_and_reported() -> None:
    records = logistic_records({"x": (0.5, 0.2)})
    for record in records:  # the smallest cells get everything wrong, the others right
        record["correct"] = [record["n_samples"] > 10] * len(record["correct"])
    result = samples_vs_angles(records, confidence=0.95)["all_variants"]
    assert result["status"] == "not estimable"
    assert "perfect separation" in result["verdict"]
    assert any("PerfectSeparationWarning" in warning for warning in result["warnings"])


def test_no_records_raise() -> None:
    with pytest.raises(ValueError, match="No ablation records"):
        samples_vs_angles([], confidence=0.95)
