"""Extrapolation only where the grid supports it, with refitted bootstrap intervals."""

from __future__ import annotations

import pytest

from tests.helpers.ablation_records import ablation_records
from transfer_study.evaluation.cell_scores import score_cells
from transfer_study.evaluation.extrapolation import extrapolate_learning_curve

FIVE_SIZES = (10, 20, 40, 80, 160)


def power_law(v: str, n: int, k: int) -> float:
    """The truth: accuracy 0.85 − 3·photos^(−1)."""
    return 0.85 - 3.0 / (n * k)


def _extrapolate(truth, n_samples, **grid) -> dict:
    records = ablation_records(truth, n_samples=n_samples, n_angles=(1, 2), **grid)
    (scores,) = score_cells(records, n_resamples=200, seed=0).values()
    return extrapolate_learning_curve(scores, multiples=[2, 10], confidence=0.95)


def test_five_sample_sizes_give_predictions_with_an_interval_around_the_truth() -> None:
    result = _extrapolate(power_law, FIVE_SIZES, n_test_samples=300)
    assert result["status"] == "ok", result["message"]
    assert result["n_sample_sizes"] == 5
    assert result["n_points"] == 15  # every seed's point at 2 angles, not 5 means
    assert result["refits"] == 200
    assert result["refits_failed"] + result["refits_at_bounds"] <= 5
    largest = 160 * 2
    assert [p["n_images"] for p in result["predictions"]] == [2 * largest, 10 * largest]
    for prediction in result["predictions"]:
        assert prediction["low"] < prediction["metric"] < prediction["high"]
        assert prediction["low"] < power_law("", prediction["n_images"], 1) < prediction["high"]
    assert result["a"] == pytest.approx(0.85, abs=0.03)


def test_three_sample_sizes_give_no_number_and_say_why() -> None:
    result = _extrapolate(power_law, (10, 20, 40))
    assert result["status"] == "not supported"
    assert result["message"] == "the grid has 3 sample sizes; extrapolation needs at least 5"
    assert result["predictions"] == []
    assert "a" not in result  # nothing was fitted


def test_four_sample_sizes_are_still_too_few() -> None:
    result = _extrapolate(power_law, (10, 20, 40, 80))
    assert result["status"] == "not supported"
    assert "4 sample sizes" in result["message"]


def test_a_flat_curve_ends_on_a_bound_and_is_not_identified() -> None:
    result = _extrapolate(lambda v, n, k: 0.8, FIVE_SIZES, noise=0.02)
    assert result["status"] == "not identified"
    assert result["at_bounds"]
    assert "bound" in result["message"]
    assert result["predictions"] == []


def test_refits_that_end_on_bounds_make_it_not_identified_even_when_the_fit_does_not() -> None:
    # A shallow curve: the fit stays inside its bounds, many bootstrap refits do not.
    result = _extrapolate(lambda v, n, k: 0.75 - (n * k) ** -0.5, FIVE_SIZES, n_test_samples=300)
    assert result["at_bounds"] == []
    assert result["status"] == "not identified"
    assert result["refits_failed"] + result["refits_at_bounds"] > 0.025 * result["refits"]
    assert result["message"].startswith("more than 5 of 200 bootstrap refits")
    assert result["predictions"] == []
