"""Tests for ``transfer_study.evaluation.pairs``: the variants' paired differences, with a
cluster bootstrap interval and a sign-flip permutation test over physical samples."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats
from scipy.special import expit
from sklearn.metrics import balanced_accuracy_score
from statsmodels.stats.contingency_tables import mcnemar

from transfer_study.evaluation.pairs import (
    EXACT_TEST,
    bootstrap_difference_ci,
    ordered_pairs,
    paired_differences,
    sign_flip_test,
)

SETTINGS = {"confidence": 0.95, "bootstrap_resamples": 999, "permutation_resamples": 999}
N_SAMPLES, N_ANGLES = 50, 4


def _groups(n_samples: int = N_SAMPLES, n_angles: int = N_ANGLES) -> np.ndarray:
    return np.repeat([f"s{i:03d}" for i in range(n_samples)], n_angles)


def _clustered(
    rng: np.random.Generator, logit_means: dict[str, float], *, spread: float = 1.5
) -> dict[str, np.ndarray]:
    """Per-photo correctness of each variant on N_SAMPLES × N_ANGLES test photos.

    Each sample has a difficulty that every variant shares, and each variant its own
    luck on the sample (``spread``): a model that misreads a sample from one angle tends
    to misread it from the others. That per-variant, per-sample effect is what a
    photo-level test mistakes for evidence.
    """
    shared = rng.normal(0.0, 1.0, N_SAMPLES)
    correct = {}
    for name, mean in logit_means.items():
        p = expit(mean + shared + rng.normal(0.0, spread, N_SAMPLES))
        correct[name] = (rng.random((N_SAMPLES, N_ANGLES)) < p[:, None]).ravel()
    return correct


def _photo_level_mcnemar(a: np.ndarray, b: np.ndarray) -> float:
    """The test the project used to report: McNemar on photos (exact below 25 discordant)."""
    n01, n10 = int(np.sum(~a & b)), int(np.sum(a & ~b))
    return float(mcnemar([[0, n10], [n01, 0]], exact=n01 + n10 < 25, correction=True).pvalue)


def _durkalski_p(a: np.ndarray, b: np.ndarray, groups: np.ndarray) -> float:
    """Durkalski et al. (2003)'s cluster-adjusted McNemar test, as a cross-check."""
    _, codes = np.unique(groups, return_inverse=True)
    discordance = np.bincount(codes, weights=a.astype(float) - b.astype(float))
    statistic = discordance.sum() ** 2 / np.sum(discordance**2)
    return float(stats.chi2.sf(statistic, df=1))


# --------------------------------------------------------------------------- pairs


def test_pairs_read_more_elaborate_minus_simpler_in_study_order():
    expected = [("finetune", "frozen"), ("finetune", "scratch"), ("frozen", "scratch")]
    assert ordered_pairs(["scratch", "frozen", "finetune"]) == expected
    assert ordered_pairs(["finetune", "scratch", "frozen"]) == expected
    assert ordered_pairs(["scratch", "finetune"]) == [("finetune", "scratch")]
    assert ordered_pairs(["frozen"]) == []


def test_table_has_the_documented_columns_one_row_per_pair():
    correct = _clustered(np.random.default_rng(0), {"scratch": 0, "frozen": 1, "finetune": 1})
    table = paired_differences(
        correct, _groups(), np.zeros(N_SAMPLES * N_ANGLES), metric="accuracy", seed=0, **SETTINGS
    )
    assert list(table.columns) == [
        "a",
        "b",
        "difference",
        "ci_low",
        "ci_high",
        "test",
        "p",
        "p_holm",
        "metric",
    ]
    assert list(zip(table["a"], table["b"], strict=True)) == ordered_pairs(list(correct))
    assert (table["metric"] == "accuracy").all()
    assert table[["difference", "ci_low", "ci_high", "p", "p_holm"]].notna().all().all()


def test_one_variant_gives_an_empty_table_with_the_columns():
    table = paired_differences(
        {"frozen": np.ones(8, bool)},
        np.arange(8),
        np.zeros(8),
        metric="accuracy",
        seed=0,
        **SETTINGS,
    )
    assert table.empty
    assert list(table.columns)[:3] == ["a", "b", "difference"]


def test_difference_is_a_minus_b_in_accuracy_and_weights_samples_by_their_photos():
    # Sample 0 has 3 photos, sample 1 one: frozen right on all 4, finetune on 1 of sample 0.
    correct = {"frozen": np.array([1, 1, 1, 1]), "finetune": np.array([1, 0, 0, 1])}
    table = paired_differences(
        correct,
        np.array(["x", "x", "x", "y"]),
        np.zeros(4),
        metric="accuracy",
        seed=0,
        **SETTINGS,
    )
    (row,) = table.to_dict("records")
    assert (row["a"], row["b"]) == ("finetune", "frozen")
    assert row["difference"] == pytest.approx(2 / 4 - 4 / 4)


def test_balanced_accuracy_is_used_when_asked_and_differs_from_accuracy():
    # 40 samples of class 0, 10 of class 1 (imbalanced): frozen misses every photo of
    # class 1 (40 photos); finetune misses 60 photos of class 0: worse in accuracy, better
    # in balanced accuracy.
    labels = np.repeat(np.r_[np.zeros(40), np.ones(10)], N_ANGLES)
    frozen = labels == 0
    finetune = np.ones_like(frozen)
    finetune[:60] = False
    correct = {"frozen": frozen, "finetune": finetune}
    rows = {
        metric: paired_differences(
            correct, _groups(), labels, metric=metric, seed=0, **SETTINGS
        ).iloc[0]
        for metric in ("accuracy", "balanced_accuracy")
    }
    balanced = {
        name: balanced_accuracy_score(labels, np.where(right, labels, 1 - labels))
        for name, right in correct.items()
    }
    assert rows["balanced_accuracy"]["difference"] == pytest.approx(
        balanced["finetune"] - balanced["frozen"]
    )
    assert rows["accuracy"]["difference"] == pytest.approx(finetune.mean() - frozen.mean())
    assert rows["balanced_accuracy"]["difference"] > 0 > rows["accuracy"]["difference"]
    assert rows["balanced_accuracy"]["metric"] == "balanced_accuracy"
    assert rows["balanced_accuracy"]["ci_low"] > 0  # 10 class-1 samples, all gained


def test_a_real_difference_is_detected_with_an_interval_away_from_zero():
    correct = _clustered(np.random.default_rng(1), {"scratch": -1.0, "finetune": 2.0})
    (row,) = paired_differences(
        correct, _groups(), np.zeros(N_SAMPLES * N_ANGLES), metric="accuracy", seed=0, **SETTINGS
    ).to_dict("records")
    assert row["difference"] > 0.3
    assert 0 < row["ci_low"] < row["difference"] < row["ci_high"]
    assert row["p_holm"] < 0.01


def test_holm_adjusts_the_p_values_across_the_pairs():
    rng = np.random.default_rng(2)
    correct = _clustered(rng, {"scratch": 0.0, "frozen": 0.6, "finetune": 0.9})
    table = paired_differences(
        correct, _groups(), np.zeros(N_SAMPLES * N_ANGLES), metric="accuracy", seed=0, **SETTINGS
    )
    # Holm by hand: the k-th smallest of m p-values times (m − k + 1), kept monotone.
    p = table["p"].to_numpy()
    order = np.argsort(p)
    stepped = np.minimum(1, np.maximum.accumulate(p[order] * (len(p) - np.arange(len(p)))))
    expected = np.empty_like(p)
    expected[order] = stepped
    assert table["p_holm"].to_numpy() == pytest.approx(expected)
    assert (table["p_holm"] > table["p"]).any()


def test_identical_variants_differ_by_zero_with_p_one():
    right = np.random.default_rng(3).random(40) < 0.7
    (row,) = paired_differences(
        {"frozen": right, "finetune": right.copy()},
        _groups(10),
        np.zeros(40),
        metric="accuracy",
        seed=0,
        **SETTINGS,
    ).to_dict("records")
    assert (row["difference"], row["ci_low"], row["ci_high"], row["p"]) == (0, 0, 0, 1)


def test_few_samples_are_tested_exactly_by_enumerating_every_sign_flip():
    # 5 samples × 2 photos; finetune gains one photo on each: exact two-sided p = 2 / 2^5.
    frozen = np.tile([True, False], 5)
    finetune = np.ones(10, bool)
    (row,) = paired_differences(
        {"frozen": frozen, "finetune": finetune},
        _groups(5, 2),
        np.zeros(10),
        metric="accuracy",
        seed=0,
        **SETTINGS,
    ).to_dict("records")
    assert row["p"] == pytest.approx(2 / 32)
    assert row["test"] == EXACT_TEST
    many = paired_differences(
        _clustered(np.random.default_rng(4), {"frozen": 0, "finetune": 0}),
        _groups(),
        np.zeros(N_SAMPLES * N_ANGLES),
        metric="accuracy",
        seed=0,
        **SETTINGS,
    )
    assert many["test"].item() == "sign-flip permutation over samples (999 resamples)"


def test_the_permutation_test_agrees_with_durkalskis_cluster_adjusted_mcnemar():
    # For accuracy the difference is proportional to the sum of per-sample discordances,
    # whose sign-flip distribution Durkalski's chi-square approximates for many samples.
    rng = np.random.default_rng(5)
    groups = np.repeat(np.arange(200), N_ANGLES)
    a = rng.random(800) < expit(rng.normal(0.2, 1.5, 200)).repeat(N_ANGLES)
    b = rng.random(800) < expit(rng.normal(0.0, 1.5, 200)).repeat(N_ANGLES)
    hits_a = np.bincount(groups, weights=a.astype(float))
    hits_b = np.bincount(groups, weights=b.astype(float))
    sizes, classes = np.full(200, float(N_ANGLES)), np.zeros(200)
    p, exact = sign_flip_test(
        hits_a, hits_b, sizes, classes, balanced=False, n_resamples=9999, seed=0
    )
    durkalski = _durkalski_p(a, b, groups)
    assert not exact
    assert 0.01 < durkalski < 0.5  # a p-value where the comparison means something
    assert p == pytest.approx(durkalski, abs=0.02)


_SAME = {"a": np.ones(4, bool), "b": np.ones(4, bool)}


@pytest.mark.parametrize(
    ("correct", "groups", "labels", "metric", "message"),
    [
        ({**_SAME, "b": np.ones(3, bool)}, np.arange(4), np.zeros(4), "accuracy", "same test"),
        (_SAME, np.array([0, 0, 1, 1]), np.array([0, 1, 0, 0]), "accuracy", "share one class"),
        (_SAME, np.zeros(4), np.zeros(4), "accuracy", "two physical"),
        (_SAME, np.arange(4), np.zeros(4), "f1", "metric"),
    ],
)
def test_malformed_input_is_refused(correct, groups, labels, metric, message):
    with pytest.raises(ValueError, match=message):
        paired_differences(correct, groups, labels, metric=metric, seed=0, **SETTINGS)


# --------------------------------------------------------------------------- simulations


def test_under_no_difference_the_test_keeps_its_level_where_photo_level_mcnemar_does_not():
    # 500 comparisons of two equally good variants on 50 samples × 4 angles.
    rng = np.random.default_rng(6)
    n_runs, alpha = 500, 0.05
    sizes, classes = np.full(N_SAMPLES, float(N_ANGLES)), np.zeros(N_SAMPLES)
    cluster_rejections = photo_rejections = 0
    for run in range(n_runs):
        correct = _clustered(rng, {"a": 1.0, "b": 1.0})
        hits = {k: v.reshape(N_SAMPLES, N_ANGLES).sum(axis=1) for k, v in correct.items()}
        p, _ = sign_flip_test(
            hits["a"], hits["b"], sizes, classes, balanced=False, n_resamples=999, seed=run
        )
        cluster_rejections += p < alpha
        photo_rejections += _photo_level_mcnemar(correct["a"], correct["b"]) < alpha
    assert cluster_rejections / n_runs <= 0.07
    assert photo_rejections > cluster_rejections


def test_the_cluster_interval_covers_the_true_difference():
    # Each variant's per-sample probability of being right is Beta-distributed with a known
    # mean, so the true difference in expected accuracy is exactly 0.80 − 0.70.
    rng = np.random.default_rng(7)
    n_runs = 100
    sizes, classes = np.full(N_SAMPLES, float(N_ANGLES)), np.zeros(N_SAMPLES)
    covered = 0
    for run in range(n_runs):
        p_a, p_b = rng.beta(4.0, 1.0, N_SAMPLES), rng.beta(3.5, 1.5, N_SAMPLES)
        hits_a, hits_b = rng.binomial(N_ANGLES, p_a), rng.binomial(N_ANGLES, p_b)
        low, high = bootstrap_difference_ci(
            hits_a.astype(float),
            hits_b.astype(float),
            sizes,
            classes,
            balanced=False,
            confidence=0.95,
            n_resamples=999,
            seed=run,
        )
        covered += low <= 0.80 - 0.70 <= high
    assert 0.88 <= covered / n_runs <= 1.0


def test_the_interval_resamples_both_variants_together():
    # Two variants that disagree on one photo of one sample out of 50: resampling them
    # together keeps the difference within the few photos' worth that drawing that sample
    # several times gives (3 points); resampling them apart would mix in their whole
    # accuracy spread (about ±10 points each here).
    a = np.random.default_rng(8).random(N_SAMPLES * N_ANGLES) < 0.6
    b = a.copy()
    b[0] = not b[0]
    (row,) = paired_differences(
        {"frozen": a, "finetune": b},
        _groups(),
        np.zeros(N_SAMPLES * N_ANGLES),
        metric="accuracy",
        seed=0,
        **SETTINGS,
    ).to_dict("records")
    assert abs(row["difference"]) == pytest.approx(1 / (N_SAMPLES * N_ANGLES))
    assert row["ci_high"] - row["ci_low"] <= 0.03
