"""How much data is enough: fixed-sequence non-inferiority on records whose truth is known."""

from __future__ import annotations

import re

import pandas as pd
import pytest

from tests.helpers.ablation_records import ablation_records
from transfer_study.evaluation.cell_scores import score_cells
from transfer_study.evaluation.noninferiority import budget_order, noninferiority

BOOTSTRAP = {"n_resamples": 1000, "seed": 0}
TEST = {"tolerance": 0.02, "confidence": 0.95}


def _result(truth, **grid) -> dict:
    (scores,) = score_cells(ablation_records(truth, **grid), **BOOTSTRAP).values()
    return noninferiority(scores, **TEST)


def _statuses(result: dict) -> dict[str, str]:
    return {budget["budget"]: budget["status"] for budget in result["budgets"]}


def test_order_runs_from_most_photos_to_fewest_ties_to_more_samples() -> None:
    cells = pd.DataFrame(
        [(n, k) for n in (10, 20, 40) for k in (1, 2, 4)], columns=["n_samples", "n_angles"]
    )
    reference, order = budget_order(cells)
    assert tuple(cells.iloc[reference]) == (40, 4)
    shapes = [tuple(int(v) for v in cells.iloc[p]) for p in order]
    assert shapes == [
        (40, 2),  # 80 photos
        (20, 4),
        (40, 1),  # 40 photos: more samples first
        (20, 2),
        (10, 4),
        (20, 1),  # 20
        (10, 2),
        (10, 1),  # 10
    ]


def test_a_grid_without_its_largest_cell_is_refused() -> None:
    cells = pd.DataFrame({"n_samples": [10, 20], "n_angles": [2, 1]})
    with pytest.raises(ValueError, match="most samples and its most angles"):
        budget_order(cells)


def test_no_loss_with_many_test_samples_is_enough_a_five_point_loss_is_not() -> None:
    # 40×2 loses nothing, 20×4 loses 5 points, 40×1 would lose nothing but comes after.
    truth = {(40, 4): 0.85, (40, 2): 0.85, (20, 4): 0.80, (40, 1): 0.85}
    result = _result(
        lambda v, n, k: truth.get((n, k), 0.6),
        n_samples=(20, 40),
        n_angles=(1, 2, 4),
        n_test_samples=400,
    )
    assert result["reference"]["budget"] == "40 × 4"
    assert result["order"] == ["40 × 2", "20 × 4", "40 × 1", "20 × 2", "20 × 1"]
    assert _statuses(result) == {
        "40 × 2": "enough",
        "20 × 4": "not enough",
        "40 × 1": "untested",  # stop at the first failure, even though it would pass
        "20 × 2": "untested",
        "20 × 1": "untested",
    }
    no_loss, five = result["budgets"][:2]
    assert no_loss["difference"] == pytest.approx(0, abs=0.01)
    assert no_loss["loss_upper"] < 0.02
    assert five["difference"] == pytest.approx(-0.05, abs=0.01)
    assert five["loss_upper"] > 0.05
    assert result["smallest_enough"]["budget"] == "40 × 2"
    assert result["verdict"].startswith("40 × 2 (80 photos) is enough")
    assert "Testing stopped at 20 × 4" in result["verdict"]


def test_the_smallest_budget_passed_is_the_answer_when_all_pass() -> None:
    result = _result(lambda v, n, k: 0.85, n_samples=(20, 40), n_angles=(1, 2), n_test_samples=400)
    assert set(_statuses(result).values()) == {"enough"}
    assert result["smallest_enough"]["budget"] == "20 × 1"
    assert "stopped" not in result["verdict"]


def test_wide_intervals_say_none_is_enough_and_give_the_half_width() -> None:
    # 12 test samples: even a budget that gains 3 points cannot be shown within 2 points.
    result = _result(
        lambda v, n, k: 0.8 if (n, k) == (40, 2) else 0.83,
        n_samples=(20, 40),
        n_angles=(1, 2),
        n_test_samples=12,
        noise=0.5,
    )
    first = result["budgets"][0]
    assert first["status"] == "not enough"
    assert -first["difference"] < 0.02 < first["half_width"]
    assert result["smallest_enough"] is None
    half_width = re.search(r"intervals are ±(\d+\.\d) points", result["verdict"])
    assert half_width is not None, result["verdict"]
    assert float(half_width[1]) == pytest.approx(100 * first["half_width"], abs=0.05)
    assert "more test samples or seeds are needed" in result["verdict"]


def test_a_clear_loss_with_narrow_intervals_names_the_loss_instead() -> None:
    result = _result(
        lambda v, n, k: 0.85 if (n, k) == (40, 2) else 0.7,
        n_samples=(20, 40),
        n_angles=(1, 2),
        n_test_samples=400,
    )
    assert result["smallest_enough"] is None
    loss = re.search(r"the first one tested, 40 × 1, loses (\d+\.\d) points", result["verdict"])
    assert loss is not None, result["verdict"]
    first = result["budgets"][0]
    assert float(loss[1]) == pytest.approx(-100 * first["difference"], abs=0.05)
    assert first["difference"] == pytest.approx(-0.15, abs=0.02)
    assert "more test samples" not in result["verdict"]


def test_a_grid_of_one_cell_tests_nothing() -> None:
    result = _result(lambda v, n, k: 0.8, n_samples=(40,), n_angles=(2,))
    assert result["budgets"] == [] and result["smallest_enough"] is None
    assert "nothing was tested" in result["verdict"]
