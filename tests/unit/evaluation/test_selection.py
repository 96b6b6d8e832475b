"""Choosing the best variant on validation: ties to the cheaper, never a capped one."""

from __future__ import annotations

import pandas as pd

from transfer_study.evaluation.selection import choose_best_variant


def _comparison(rows: list[tuple[str, float, float, bool]]) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=["variant", "val_metric", "accuracy", "converged"])


def test_the_best_validation_metric_wins_even_when_test_says_otherwise():
    comparison = _comparison(
        [("frozen", 0.90, 0.97, True), ("finetune", 0.96, 0.91, True), ("scratch", 0.7, 0.6, True)]
    )
    assert choose_best_variant(comparison) == "finetune"


def test_variants_within_half_a_point_go_to_the_cheaper_one():
    comparison = _comparison(
        [
            ("scratch", 0.952, 0.9, True),
            ("finetune", 0.950, 0.9, True),
            ("frozen", 0.948, 0.9, True),
        ]
    )
    assert choose_best_variant(comparison) == "frozen"
    comparison = _comparison([("finetune", 0.960, 0.9, True), ("frozen", 0.950, 0.9, True)])
    assert choose_best_variant(comparison) == "finetune"  # a full point apart: no tie


def test_a_variant_that_hit_its_cap_is_never_chosen():
    comparison = _comparison([("finetune", 0.99, 0.99, False), ("frozen", 0.90, 0.90, True)])
    assert choose_best_variant(comparison) == "frozen"
    assert choose_best_variant(comparison.assign(converged=False)) is None
