"""Ablation reporting: learning-curve tables, the two-level bootstrap, the power-law fit,
figures."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd
import pytest

from tests.helpers.splits import make_split
from transfer_study.evaluation.figures import accuracy_heatmap_figure, learning_curve_figure
from transfer_study.evaluation.learning_curve import (
    extrapolate_power_law,
    fit_inverse_power_law,
    learning_curve_tables,
    two_level_bootstrap_ci,
)
from transfer_study.pipelines.data_size_ablation.nodes import (
    select_training_subset,
    summarise_cell,
)

# The report settings (data_size_ablation.report) as report_ablation passes them on.
BOOTSTRAP = {"confidence": 0.95, "n_resamples": 1000, "seed": 0}
SIZES = np.array([10, 20, 40, 80, 160, 320, 640], dtype=float)


def record(
    variant: str,
    n: int,
    k: int,
    seed: int,
    accuracy: float,
    n_test_samples: int = 40,
    photos_per_sample: int = 2,
) -> dict:
    """A cell record whose first test samples are right, ``accuracy`` of them in all."""
    n_right = round(accuracy * n_test_samples)
    correct = [i < n_right for i in range(n_test_samples) for _ in range(photos_per_sample)]
    ids = [f"t{i:03d}" for i in range(n_test_samples) for _ in range(photos_per_sample)]
    return {
        "variant": variant,
        "n_samples": n,
        "n_angles": k,
        "seed": seed,
        "n_samples_used": n,
        "n_images": n * k,
        "accuracy": float(np.mean(correct)),
        "accuracy_ci_low": 0.0,
        "accuracy_ci_high": 1.0,
        "balanced_accuracy": float(np.mean(correct)),
        "macro_f1": float(np.mean(correct)),
        "train_seconds": 10.0 * n * k,
        "sample_id": ids,
        "correct": correct,
    }


def curve_row(cells: pd.DataFrame, **key: object) -> pd.Series:
    match = cells.loc[(cells[list(key)] == pd.Series(key)).all(axis=1)]
    assert len(match) == 1
    return match.iloc[0]


# --------------------------------------------------------------------------- tables


def test_tables_have_one_row_per_record_and_per_cell() -> None:
    records = [
        record("frozen", n, k, seed, 0.5 + 0.05 * seed + 0.01 * n)
        for n in (4, 8)
        for k in (1, 2)
        for seed in range(3)
    ]
    per_seed, curve = learning_curve_tables(records, **BOOTSTRAP)
    assert len(per_seed) == 12
    assert "correct" not in per_seed.columns and "sample_id" not in per_seed.columns
    assert per_seed[["n_samples", "n_angles", "seed"]].iloc[0].tolist() == [4, 1, 0]
    assert len(curve) == 4
    row = curve_row(curve, n_samples=8, n_angles=2)
    assert row["n_images"] == 16
    assert row["n_seeds"] == 3
    expected = np.mean(
        [r["accuracy"] for r in records if (r["n_samples"], r["n_angles"]) == (8, 2)]
    )
    assert row["accuracy_mean"] == pytest.approx(expected)
    assert row["accuracy_std"] == pytest.approx(0.05, abs=0.01)
    assert row["train_seconds_mean"] == 160.0
    assert (curve["accuracy_ci_low"] <= curve["accuracy_mean"]).all()
    assert (curve["accuracy_mean"] <= curve["accuracy_ci_high"]).all()
    assert curve[["accuracy_ci_low", "accuracy_ci_high"]].notna().all().all()


def test_records_from_summarise_cell_feed_the_tables() -> None:
    split = make_split({"apple": 6, "pear": 6}, angles=2, held_out_per_class=10)
    records = []
    for seed in range(2):
        cell = {"n_samples": 4, "n_angles": 2, "seed": seed, "variant": "frozen"}
        subset = select_training_subset(split, cell)
        test = subset[subset["split"] == "test"]
        predictions = test[["path", "sample_id", "label"]].assign(predicted="apple")
        metrics = dict.fromkeys(
            ["accuracy", "accuracy_ci_low", "accuracy_ci_high", "balanced_accuracy"], 0.5
        )
        summary = {
            "variant": "frozen",
            "train_seconds": 2.0,
            "steps": 10 + seed,
            "best_step": 5,
            "lr": 0.01,
            "converged": seed == 0,
            "metric": "accuracy",
            "best_val_metric": 0.6,
        }
        records.append(summarise_cell(cell, summary, metrics, predictions, subset))
    per_seed, curve = learning_curve_tables(records, **BOOTSTRAP)
    assert per_seed["seed"].tolist() == [0, 1]
    row = curve.iloc[0]
    assert (row["n_images"], row["n_seeds"], row["accuracy_mean"]) == (8, 2, 0.5)
    assert (row["steps_mean"], row["n_converged"]) == (10.5, 1)  # how the cells trained
    # Half of the 20 test samples are apples: the interval is around 0.5, inside (0, 1).
    assert 0 < row["accuracy_ci_low"] < 0.5 < row["accuracy_ci_high"] < 1


def _width(records: list[dict]) -> float:
    _, curve = learning_curve_tables(records, **BOOTSTRAP)
    return float(curve["accuracy_ci_high"].iloc[0] - curve["accuracy_ci_low"].iloc[0])


def test_interval_narrows_with_more_test_samples() -> None:
    small = [record("x", 5, 1, seed, 0.8, n_test_samples=20) for seed in range(3)]
    large = [record("x", 5, 1, seed, 0.8, n_test_samples=400) for seed in range(3)]
    assert _width(large) < 0.5 * _width(small)


def test_interval_includes_the_variation_between_seeds() -> None:
    agreeing = [record("x", 5, 1, seed, 0.7) for seed in range(4)]
    disagreeing = [record("x", 5, 1, seed, acc) for seed, acc in enumerate([0.5, 0.6, 0.8, 0.9])]
    assert np.mean([r["accuracy"] for r in disagreeing]) == pytest.approx(0.7)
    assert _width(disagreeing) > _width(agreeing) + 0.02


def test_bootstrap_is_reproducible_and_degenerate_when_all_right() -> None:
    hits = np.array([[2.0, 1.0, 0.0, 2.0], [1.0, 1.0, 1.0, 2.0]])
    sizes = np.full(4, 2.0)
    args = {"confidence": 0.9, "n_resamples": 500, "seed": 3}
    low, high = two_level_bootstrap_ci(hits, sizes, **args)
    assert (low, high) == two_level_bootstrap_ci(hits, sizes, **args)
    assert 0 <= low < 0.625 < high <= 1
    assert two_level_bootstrap_ci(np.tile(sizes, (2, 1)), sizes, **args) == (1.0, 1.0)


def test_seeds_tested_on_different_photos_raise() -> None:
    records = [record("x", 5, 1, 0, 0.8), record("x", 5, 1, 1, 0.8, n_test_samples=30)]
    with pytest.raises(ValueError, match="different test photos"):
        learning_curve_tables(records, **BOOTSTRAP)


def test_records_without_photo_lists_raise() -> None:
    bad = {k: v for k, v in record("x", 5, 1, 0, 0.8).items() if k != "correct"}
    with pytest.raises(ValueError, match="missing keys"):
        learning_curve_tables([bad], **BOOTSTRAP)
    with pytest.raises(ValueError, match="No ablation records"):
        learning_curve_tables([], **BOOTSTRAP)


# --------------------------------------------------------------------------- power law


@pytest.mark.parametrize(("a", "b", "c"), [(0.92, 0.8, 0.6), (0.99, 2.0, 0.3), (0.7, 5.0, 1.2)])
def test_power_law_recovers_noiseless_parameters(a: float, b: float, c: float) -> None:
    fit = fit_inverse_power_law(SIZES, a - b * SIZES ** (-c))
    assert fit["status"] == "ok"
    assert (fit["a"], fit["b"], fit["c"]) == pytest.approx((a, b, c), rel=1e-5)
    assert fit["r2"] == pytest.approx(1.0)
    assert fit["rmse"] < 1e-8
    assert (fit["n_points"], fit["n_sizes"], fit["max_n_images"]) == (7, 7, 640.0)


def test_power_law_with_mild_noise_stays_close() -> None:
    a, b, c = 0.92, 0.8, 0.6
    noisy = a - b * SIZES ** (-c) + np.random.default_rng(0).normal(0, 0.005, SIZES.size)
    fit = fit_inverse_power_law(np.repeat(SIZES, 1), noisy)
    assert fit["a"] == pytest.approx(a, abs=0.02)
    assert fit["c"] == pytest.approx(c, abs=0.15)
    assert fit["r2"] > 0.99
    assert 0.001 < fit["rmse"] < 0.01


def test_power_law_needs_three_sizes() -> None:
    fit = fit_inverse_power_law([10, 10, 20, 20], [0.5, 0.6, 0.7, 0.7])
    assert fit["status"] == "not enough points"
    assert "got 2" in fit["message"]
    assert fit["a"] is None and fit["r2"] is None
    assert fit["n_points"] == 4
    assert extrapolate_power_law(fit, [2]) == [{"multiple": 2.0, "n_images": 40, "accuracy": None}]


def test_flat_accuracy_has_no_r2_and_ends_on_a_bound() -> None:
    fit = fit_inverse_power_law([10, 20, 40], [0.7, 0.7, 0.7])
    assert fit["status"] == "ok"
    assert fit["r2"] is None
    assert fit["rmse"] < 1e-3
    assert fit["at_bounds"]  # a flat curve has no rise or rate to fit: not identified


def test_a_curve_still_rising_at_full_accuracy_ends_on_the_plateau_bound() -> None:
    fit = fit_inverse_power_law(SIZES, 1.05 - 0.8 * SIZES ** (-0.3))
    assert fit["status"] == "ok"
    assert fit["at_bounds"] == ["a"]


def test_a_fit_inside_its_bounds_reports_none_and_a_warm_start_agrees() -> None:
    accuracy = 0.92 - 0.8 * SIZES ** (-0.6)
    fit = fit_inverse_power_law(SIZES, accuracy)
    assert fit["at_bounds"] == []
    warm = fit_inverse_power_law(SIZES, accuracy, initial=(fit["a"], fit["b"], fit["c"]))
    assert (warm["a"], warm["b"], warm["c"]) == pytest.approx((0.92, 0.8, 0.6), rel=1e-5)


def test_power_law_rejects_bad_input() -> None:
    with pytest.raises(ValueError, match="> 0"):
        fit_inverse_power_law([0, 10, 20], [0.5, 0.6, 0.7])
    with pytest.raises(ValueError, match="one length"):
        fit_inverse_power_law([10, 20, 40], [0.5, 0.6])


def test_extrapolation_evaluates_the_fitted_curve() -> None:
    fit = fit_inverse_power_law(SIZES, 0.92 - 0.8 * SIZES ** (-0.6))
    predictions = extrapolate_power_law(fit, [2, 10])
    assert [p["n_images"] for p in predictions] == [1280, 6400]
    assert predictions[0]["accuracy"] == pytest.approx(0.92 - 0.8 * 1280 ** (-0.6), abs=1e-9)
    assert predictions[1]["accuracy"] == pytest.approx(0.92 - 0.8 * 6400 ** (-0.6), abs=1e-9)


# --------------------------------------------------------------------------- figures' input


def synthetic_curve(accuracy: dict[str, Callable[[int, int], float]]) -> pd.DataFrame:
    rows = [
        {
            "variant": variant,
            "n_samples": n,
            "n_angles": k,
            "n_images": n * k,
            "n_seeds": 3,
            "accuracy_mean": f(n, k),
            "accuracy_std": 0.01,
            "accuracy_ci_low": f(n, k) - 0.03,
            "accuracy_ci_high": f(n, k) + 0.03,
        }
        for variant, f in accuracy.items()
        for n in (10, 20, 40)
        for k in (1, 2, 4)
    ]
    return pd.DataFrame(rows)


# finetune: samples matter most; frozen: angles matter most and it is worse overall.
CURVE = synthetic_curve(
    {
        "finetune": lambda n, k: 0.95 - 0.6 / np.sqrt(n) - 0.02 / k,
        "frozen": lambda n, k: 0.80 - 0.02 / np.sqrt(n) - 0.3 / k,
    }
)


# --------------------------------------------------------------------------- figures


def test_learning_curve_figure_has_a_panel_per_variant_and_a_line_per_angle_count() -> None:
    fig = learning_curve_figure(CURVE)
    assert len(fig.axes) == 2
    for ax, variant in zip(fig.axes, ["finetune", "frozen"], strict=True):
        assert ax.get_title() == variant
        assert ax.get_xscale() == "log"
        assert len(ax.get_lines()) == 3
        assert len(ax.collections) == 3  # one confidence band per line
        assert [t.get_text() for t in ax.get_legend().get_texts()] == [
            "1 angle(s)",
            "2 angle(s)",
            "4 angle(s)",
        ]
    line = fig.axes[0].get_lines()[0]
    assert line.get_xdata().tolist() == [10, 20, 40]
    labels = [t.get_text() for t in fig.axes[0].get_xticklabels()]
    assert labels == ["10", "20", "40", "80", "160"]


def test_heatmap_has_a_panel_per_variant_with_annotated_cells() -> None:
    fig = accuracy_heatmap_figure(CURVE)
    assert len(fig.axes) == 3  # two panels and the colour bar
    panel = fig.axes[0]
    assert panel.get_title() == "finetune"
    texts = [t.get_text() for t in panel.texts]
    assert len(texts) == 9
    assert f"{100 * (0.95 - 0.6 / np.sqrt(40) - 0.005):.1f}" in texts
    assert panel.images[0].get_array().shape == (3, 3)


def test_figures_reject_an_empty_curve() -> None:
    with pytest.raises(ValueError, match="no cells"):
        learning_curve_figure(CURVE.iloc[:0])
