"""The ablation's recommendation and its report: variant chosen on validation, JSON, Markdown."""

from __future__ import annotations

import json
import re

import pytest

from tests.helpers.ablation_records import ablation_records
from tests.helpers.markdown_tables import markdown_tables
from transfer_study.evaluation.learning_curve import learning_curve_tables
from transfer_study.evaluation.markdown import recommendation_markdown
from transfer_study.evaluation.recommendation import recommend_data_budget

SETTINGS = {
    "tolerance": 0.02,
    "confidence": 0.95,
    "n_resamples": 200,
    "seed": 0,
    "extrapolate_to": [2, 10],
}
# finetune is better on test, frozen on validation: the choice must follow validation.
VALIDATION = {"frozen": 0.9, "finetune": 0.8}


def truth(variant: str, n: int, k: int) -> float:
    return (0.9 if variant == "finetune" else 0.8) - 3.0 / (n * k)


def records(**grid) -> list[dict]:
    return ablation_records(
        truth,
        variants=("frozen", "finetune"),
        val_metric=lambda v: VALIDATION[v],
        n_test_samples=300,
        **grid,
    )


def report(cells: list[dict]) -> tuple[dict, str]:
    recommendation = recommend_data_budget(cells, **SETTINGS)
    _, curve = learning_curve_tables(cells, confidence=0.95, n_resamples=50, seed=0)
    return recommendation, recommendation_markdown(recommendation, curve)


@pytest.fixture(scope="module")
def three_sizes() -> tuple[dict, str]:
    return report(records(n_samples=(10, 20, 40), n_angles=(1, 2)))


def test_the_variant_is_chosen_on_the_reference_cells_validation_metric(three_sizes) -> None:
    recommendation, _ = three_sizes
    assert recommendation["recommended_variant"] == "frozen"
    assert "the reference cell is the study's own setting" in recommendation["reason"]
    assert "test results play no part" in recommendation["reason"]
    frozen = recommendation["variants"]["frozen"]
    assert recommendation["reference"] == frozen["reference"]
    assert recommendation["verdict"] == frozen["verdict"]
    assert recommendation["budgets"] == frozen["budgets"]


def test_a_variant_within_half_a_point_ties_to_the_cheaper_and_a_capped_one_is_never_chosen():
    cells = records(n_samples=(10, 20), n_angles=(1, 2))
    for record in cells:
        record["val_metric"] = 0.9 if record["variant"] == "frozen" else 0.904
    assert recommend_data_budget(cells, **SETTINGS)["recommended_variant"] == "frozen"
    for record in cells:
        if record["variant"] == "frozen" and (record["n_samples"], record["seed"]) == (20, 1):
            record["converged"] = False  # one seed of frozen's reference hit its cap
    assert recommend_data_budget(cells, **SETTINGS)["recommended_variant"] == "finetune"


def test_a_diverged_cell_is_flagged_its_variants_verdict_withheld_and_never_chosen() -> None:
    cells = records(n_samples=(10, 20), n_angles=(1, 2))
    for record in cells:
        record["diverged"] = False
        where = (record["variant"], record["n_samples"], record["n_angles"], record["seed"])
        if where == ("frozen", 20, 2, 1):  # one seed of frozen's reference cell
            record |= {"diverged": True, "converged": False, "steps": 12}
    recommendation, markdown = report(cells)
    assert recommendation["diverged_cells"] == [
        {"variant": "frozen", "n_samples": 20, "n_angles": 2, "seed": 1, "steps": 12}
    ]
    assert recommendation["variants"]["frozen"]["verdict"].startswith("withheld: ")
    assert recommendation["variants"]["frozen"]["smallest_enough"] is None
    assert not recommendation["variants"]["finetune"]["verdict"].startswith("withheld")
    # Frozen validates best, but one of its reference seeds diverged.
    assert recommendation["recommended_variant"] == "finetune"
    assert "- **Flagged: 1 cell diverged** (frozen 20 × 2 seed 1 (step 12))" in markdown
    assert "`data_size_ablation.training_overrides.<variant>.lr`" in markdown
    cells_table = next(t for t in markdown_tables(markdown) if t[0][:2] == ["Variant", "Samples"])
    frozen_20_2 = next(row for row in cells_table if row[:3] == ["frozen", "20", "2"])
    assert frozen_20_2[-1] == "2 of 3, **1 diverged**"


def test_records_without_the_validation_metric_recommend_no_variant() -> None:
    cells = records(n_samples=(10, 20), n_angles=(1, 2))
    for record in cells:
        del record["val_metric"]
    recommendation, markdown = report(cells)
    assert recommendation["recommended_variant"] is None
    assert recommendation["verdict"] is None
    assert "validation metric" in recommendation["reason"]
    assert set(recommendation["variants"]) == {"frozen", "finetune"}
    assert markdown.splitlines()[2].startswith("**Answer:** no variant is recommended: the ")
    for variant, result in recommendation["variants"].items():  # each variant's own answer
        assert f"- {variant}: {result['verdict']}" in markdown


def test_recommendation_json_carries_the_test_and_survives_a_round_trip(three_sizes) -> None:
    recommendation, _ = three_sizes
    assert json.loads(json.dumps(recommendation)) == recommendation
    assert (recommendation["tolerance"], recommendation["confidence"]) == (0.02, 0.95)
    assert recommendation["reference"]["budget"] == "40 × 2"
    assert recommendation["order"] == ["40 × 1", "20 × 2", "20 × 1", "10 × 2", "10 × 1"]
    for budget in recommendation["budgets"]:
        assert {"difference", "loss_upper", "status"} <= set(budget)
        assert budget["status"] in {"enough", "not enough", "untested"}
    assert "conditional on this pool of training samples" in recommendation["intervals"]
    assert recommendation["seed_warning"] is None  # three seeds
    assert recommendation["samples_vs_angles"]["variants"].keys() == {"frozen", "finetune"}


def test_fewer_than_three_seeds_warn_that_the_seed_variance_is_underestimated() -> None:
    cells = [r for r in records(n_samples=(10, 20), n_angles=(1, 2)) if r["seed"] < 2]
    recommendation, markdown = report(cells)
    assert "seed-to-seed variance is underestimated" in recommendation["seed_warning"]
    assert "**Warning:** Only 2 seed(s)" in markdown


def test_markdown_answers_first_then_the_tests_in_order(three_sizes) -> None:
    recommendation, markdown = three_sizes
    lines = markdown.splitlines()
    assert lines[0] == "# How much data is enough?"
    assert lines[2] == f"**Answer (frozen):** {recommendation['verdict']}"
    sections = [line for line in lines if line.startswith("## ")]
    assert sections == [
        "## Is a smaller budget enough? (non-inferiority to the largest)",
        "## More samples or more angles?",
        "## Learning curve and extrapolation",
        "## Every cell (mean over seeds)",
        "## What this does not show",
    ]
    assert "conditional on this pool of training samples" in markdown
    tables = markdown_tables(markdown)
    frozen = tables[0]
    assert frozen[0][:3] == ["Order", "Budget", "Photos"]
    assert frozen[0][-2:] == ["Loss, 95 % upper bound (points)", "Verdict"]
    assert [row[1] for row in frozen[1:]] == recommendation["order"]
    first = recommendation["budgets"][0]
    assert frozen[1][4] == f"{100 * first['difference']:+.1f}"
    assert frozen[1][6] == first["status"]


def test_markdown_gives_the_samples_vs_angles_verdict_with_slopes(three_sizes) -> None:
    recommendation, markdown = three_sizes
    angles = next(t for t in markdown_tables(markdown) if t[0][0] == "Model")
    assert [row[0] for row in angles[1:]] == ["all variants", "finetune", "frozen"]
    overall = recommendation["samples_vs_angles"]["all_variants"]
    assert angles[1][1].startswith(f"{overall['samples_slope']:+.2f} [")
    assert angles[1][-1] == overall["verdict"]


def test_three_sizes_print_no_extrapolated_number_but_the_reason(three_sizes) -> None:
    _, markdown = three_sizes
    fits = next(t for t in markdown_tables(markdown) if t[0][0] == "Variant" and "b" in t[0])
    for row in fits[1:]:
        assert row[-1] == "none: the grid has 3 sample sizes; extrapolation needs at least 5"
        assert row[2:5] == ["", "", ""]
    assert not re.search(r"at \d+ photos \(\d+×\)", markdown)


def test_five_sizes_print_an_extrapolation_with_its_interval() -> None:
    cells = [r for r in records(n_samples=(10, 20, 40, 80, 160), n_angles=(1, 2))]
    cells = [r for r in cells if r["variant"] == "finetune"]  # one variant works alone too
    recommendation, markdown = report(cells)
    assert recommendation["recommended_variant"] == "finetune"
    assert recommendation["samples_vs_angles"]["variants"] == {}
    (prediction, _) = recommendation["variants"]["finetune"]["extrapolation"]["predictions"]
    text = f"{100 * prediction['metric']:.1f} % [{100 * prediction['low']:.1f}, "
    assert f"{text}{100 * prediction['high']:.1f}] at 640 photos (2×)" in markdown


def test_the_cells_table_keeps_how_each_cell_trained(three_sizes) -> None:
    _, markdown = three_sizes
    cells = next(t for t in markdown_tables(markdown) if t[0][:2] == ["Variant", "Samples"])
    assert cells[0][-2:] == ["Steps (mean)", "Converged"]
    assert cells[1][-2:] == ["100", "3 of 3"]
    assert len(cells) == 1 + 2 * 3 * 2


def test_with_balanced_accuracy_as_headline_the_report_names_it_and_lists_it_per_cell() -> None:
    cells = records(n_samples=(10, 20), n_angles=(1, 2))
    for record in cells:
        record["metric"] = "balanced_accuracy"
    recommendation, markdown = report(cells)
    assert recommendation["metric"] == "balanced_accuracy"
    assert "Headline metric: balanced accuracy" in markdown
    assert "best validation balanced accuracy" in recommendation["reason"]
    table = next(t for t in markdown_tables(markdown) if t[0][:2] == ["Variant", "Samples"])
    assert table[0][-3] == "Balanced accuracy"
    assert table[1][:3] == ["finetune", "10", "1"]
    first = [
        r["balanced_accuracy"]
        for r in cells
        if (r["variant"], r["n_samples"], r["n_angles"]) == ("finetune", 10, 1)
    ]
    assert table[1][-3] == f"{100 * sum(first) / len(first):.1f} %"
