"""A variant whose training diverged, in the comparison: flagged with the advice to lower
its learning rate, never chosen, never compared, and none of its figures shown."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from tests.helpers.markdown_tables import markdown_tables
from transfer_study.evaluation.comparison_report import comparison_markdown
from transfer_study.evaluation.diverged import lower_lr_advice, withhold_diverged_results
from transfer_study.evaluation.figures import variant_comparison_figure
from transfer_study.evaluation.pairs import paired_differences
from transfer_study.evaluation.selection import choose_best_variant

# 50 samples × 2 photos. Right photos per variant: fine-tune "best" on test and validation,
# but its training diverged at step 12 and those are an early checkpoint's figures.
RIGHT = {"scratch": 60, "frozen": 85, "finetune": 93}
VALIDATION = {"scratch": 0.70, "frozen": 0.88, "finetune": 0.97}
REASON = "mean training loss of the last 5 steps 643,023 > 10 × starting loss 0.693 at step 12"


def _comparison(diverged: set[str]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The comparison table and pairs as ``compare_variants`` makes them."""
    rows = []
    for variant, right in RIGHT.items():
        accuracy = right / 100
        rows.append(
            {
                "variant": variant,
                "metric": "accuracy",
                "accuracy": accuracy,
                "accuracy_ci_low": accuracy - 0.05,
                "accuracy_ci_high": accuracy + 0.04,
                "balanced_accuracy": accuracy,
                "macro_f1": accuracy - 0.011,
                "val_metric": VALIDATION[variant],
                "lr": 0.001,
                "steps": 12 if variant in diverged else 40,
                "best_epoch": 1.0,
                "converged": variant not in diverged,
                "diverged": variant in diverged,
                "divergence_step": 12 if variant in diverged else None,
                "divergence_reason": REASON if variant in diverged else None,
            }
        )
    comparison = withhold_diverged_results(pd.DataFrame(rows))
    comparison["selected"] = comparison["variant"] == choose_best_variant(comparison)
    correct = {v: np.arange(100) < right for v, right in RIGHT.items() if v not in diverged}
    pairs = paired_differences(
        correct,
        np.arange(100) // 2,
        np.zeros(100),
        metric="accuracy",
        confidence=0.95,
        bootstrap_resamples=200,
        permutation_resamples=99,
        seed=0,
    )
    return comparison, pairs


@pytest.fixture(scope="module")
def report() -> str:
    return comparison_markdown(*_comparison({"finetune"}), confidence=0.95)


def test_a_diverged_variant_is_never_chosen_even_with_the_best_validation():
    comparison, _ = _comparison({"finetune"})
    assert comparison.loc[comparison["selected"], "variant"].tolist() == ["frozen"]
    # Its validation metric is withheld; and were it not, nor its converged flag false:
    raw = pd.DataFrame(
        {
            "variant": ["frozen", "finetune"],
            "val_metric": [0.88, 0.97],
            "converged": [True, True],
            "diverged": [False, True],
        }
    )
    assert choose_best_variant(raw) == "frozen"


def test_the_table_shows_where_it_diverged_and_none_of_its_figures(report):
    (table, *_) = markdown_tables(report)
    header, rows = table[0], {row[0]: dict(zip(table[0], row, strict=True)) for row in table[1:]}
    finetune = rows["finetune"]
    assert finetune[header[1]] == "**diverged at step 12**"
    assert finetune["Balanced accuracy"] == finetune["Macro F1"] == "—"
    assert finetune["Val accuracy (choice)"] == "—"
    assert finetune["Converged"] == "**no: diverged**"
    assert rows["frozen"][header[1]].startswith("85.0 %")
    # 93.0 %, 91.9 % and 97.0 % are its early checkpoint's: nowhere in the report.
    for figure in ("93.0", "91.9", "97.0"):
        assert figure not in report


def test_the_conclusion_flags_it_with_the_reason_and_a_tenth_of_its_learning_rate(report):
    conclusion = report.split("## Conclusion")[1]
    assert f"**Flagged: fine-tune diverged at step 12** ({REASON})." in conclusion
    assert "lower its learning rate, e.g. `--params=finetune.lr=0.0001`" in conclusion
    assert "Chosen on validation: **frozen**" in conclusion
    assert "- frozen vs fine-tune: not compared, fine-tune diverged." in conclusion
    assert "hit its training cap" not in conclusion  # diverged is not "capped"


def test_the_paired_differences_leave_it_out_and_say_so(report):
    section = report.split("## Paired differences")[1].split("## Conclusion")[0]
    assert "- frozen − scratch:" in section
    assert "fine-tune −" not in section and "− fine-tune" not in section
    assert "Fine-tune diverged and is left out" in section


def test_with_every_variant_but_one_diverged_there_is_no_pair_and_no_false_cap_advice():
    report = comparison_markdown(*_comparison({"finetune", "scratch"}), confidence=0.95)
    assert "No pair of variants to compare: scratch and fine-tune diverged and are left" in report
    assert "Chosen on validation: **frozen**" in report
    assert report.count("**Flagged:") == 2
    report = comparison_markdown(*_comparison(set(RIGHT)), confidence=0.95)
    assert "No variant can be recommended: each diverged or hit its training cap" in report
    assert "raise max_images" not in report


def test_the_chart_draws_no_bar_for_it_only_the_word():
    comparison, _ = _comparison({"finetune"})
    figure = variant_comparison_figure(comparison, title="Variants")
    labels = [text.get_text() for text in figure.axes[0].texts]
    assert labels == ["60.0 %", "85.0 %", "diverged"]
    heights = [patch.get_height() for patch in figure.axes[0].patches]
    assert heights[2] == 0


def test_the_advice_is_a_tenth_of_the_learning_rate_it_diverged_with_as_typed():
    assert "`--params=frozen.lr=0.03` (a tenth of 0.3)" in lower_lr_advice("frozen", 0.3)
    assert "`--params=finetune.lr=100` (a tenth of 1000)" in lower_lr_advice("finetune", 1e3)
    assert "`--params=scratch.lr=0.00063` (a tenth of 0.0063)" in lower_lr_advice(
        "scratch", 0.006309573444801932
    )
