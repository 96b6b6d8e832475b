"""Tests for ``transfer_study.evaluation``: values computed by hand or known answers."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from matplotlib.figure import Figure

from tests.helpers.markdown_tables import markdown_tables
from transfer_study.evaluation.comparison_report import comparison_markdown
from transfer_study.evaluation.figures import (
    confusion_matrix_figure,
    training_curves_figure,
    variant_comparison_figure,
)
from transfer_study.evaluation.metrics import bootstrap_accuracy_ci, classification_metrics
from transfer_study.evaluation.pairs import paired_differences

N_RESAMPLES = 500


def _correct(n: int, n_right: int) -> np.ndarray:
    return np.arange(n) < n_right


def _one_hot_probabilities(
    labels: np.ndarray, n_classes: int, confidence: float = 0.7
) -> np.ndarray:
    rest = (1 - confidence) / (n_classes - 1)
    probs = np.full((labels.size, n_classes), rest)
    probs[np.arange(labels.size), labels] = confidence
    return probs


def _saved_png(fig: Figure, tmp_path: Path, name: str) -> Path:
    path = tmp_path / f"{name}.png"
    fig.savefig(path)
    return path


# --------------------------------------------------------------------------- bootstrap


def test_bootstrap_interval_contains_accuracy():
    accuracy, low, high = bootstrap_accuracy_ci(_correct(100, 80), n_resamples=N_RESAMPLES)
    assert accuracy == pytest.approx(0.8)
    assert 0 <= low < accuracy < high <= 1


def test_bootstrap_interval_narrows_with_more_data():
    _, low_small, high_small = bootstrap_accuracy_ci(_correct(50, 40), n_resamples=N_RESAMPLES)
    _, low_large, high_large = bootstrap_accuracy_ci(_correct(500, 400), n_resamples=N_RESAMPLES)
    assert high_large - low_large < 0.6 * (high_small - low_small)


def test_bootstrap_is_deterministic_for_a_seed():
    correct = np.random.default_rng(1).random(120) < 0.7
    first = bootstrap_accuracy_ci(correct, n_resamples=N_RESAMPLES, seed=3)
    again = bootstrap_accuracy_ci(correct, n_resamples=N_RESAMPLES, seed=3)
    other = bootstrap_accuracy_ci(correct, n_resamples=N_RESAMPLES, seed=4)
    assert first == again
    assert first != other


def test_every_photo_right_gives_the_clopper_pearson_interval_over_samples():
    # 10 samples x 3 photos, all right: P(10 of 10 | p) = 0.025 at the lower bound, so
    # p = 0.025 ** (1 / 10); over the 30 photos it would be 0.025 ** (1 / 30).
    correct = np.full(30, True)
    groups = np.repeat(np.arange(10), 3)
    accuracy, low, high = bootstrap_accuracy_ci(correct, groups, confidence=0.95)
    assert (accuracy, high) == (1.0, 1.0)
    assert low == pytest.approx(0.025 ** (1 / 10))
    assert bootstrap_accuracy_ci(correct)[1] == pytest.approx(0.025 ** (1 / 30))


def test_every_photo_wrong_gives_the_clopper_pearson_interval_over_samples():
    correct = np.full(30, False)
    groups = np.repeat(np.arange(10), 3)
    accuracy, low, high = bootstrap_accuracy_ci(correct, groups, confidence=0.9)
    assert (accuracy, low) == (0.0, 0.0)
    assert high == pytest.approx(1 - 0.05 ** (1 / 10))


def test_cluster_bootstrap_is_wider_when_errors_are_clustered_within_samples():
    # 20 samples x 10 photos; whole samples right (14) or wrong (6): 20 independent units.
    groups = np.repeat(np.arange(20), 10)
    correct = np.repeat(_correct(20, 14), 10)
    accuracy, naive_low, naive_high = bootstrap_accuracy_ci(correct, n_resamples=N_RESAMPLES)
    cluster_accuracy, low, high = bootstrap_accuracy_ci(correct, groups, n_resamples=N_RESAMPLES)
    assert accuracy == cluster_accuracy == pytest.approx(0.7)
    assert high - low > 2 * (naive_high - naive_low)
    assert low < accuracy < high


def test_cluster_bootstrap_with_one_photo_per_group_equals_naive_bootstrap():
    correct = np.random.default_rng(2).random(80) < 0.6
    ids = np.array([f"s{i}" for i in range(80)])
    assert bootstrap_accuracy_ci(correct, ids, n_resamples=N_RESAMPLES) == bootstrap_accuracy_ci(
        correct, n_resamples=N_RESAMPLES
    )


def test_cluster_bootstrap_weights_groups_by_their_photo_count():
    # Sample "a": 3 photos, all right; sample "b": 1 photo, wrong -> 3 / 4, not 1 / 2.
    correct = np.array([1, 1, 1, 0])
    accuracy, _, _ = bootstrap_accuracy_ci(correct, np.array(["a", "a", "a", "b"]), n_resamples=100)
    assert accuracy == pytest.approx(0.75)


@pytest.mark.parametrize(
    ("correct", "groups", "kwargs", "message"),
    [
        (np.array([]), None, {}, "non-empty"),
        (np.array([0, 2, 1]), None, {}, "0/1"),
        (np.array([1, 0, 1]), np.array([1, 2]), {}, "one id per prediction"),
        (np.array([1, 0, 1]), np.array(["a", None, "b"], dtype=object), {}, "missing ids"),
        (np.array([1, 0, 1]), None, {"confidence": 95}, "confidence"),
        (np.array([1, 0]), np.array(["a", "a"]), {}, "at least two"),
    ],
)
def test_bootstrap_rejects_malformed_input(correct, groups, kwargs, message):
    with pytest.raises(ValueError, match=message):
        bootstrap_accuracy_ci(correct, groups, **kwargs)


# --------------------------------------------------------------------------- metrics


@pytest.fixture
def three_class_example():
    # Hand-counted: a 5/6 recalled, b 1/2, c 2/2; predicted a 5 (all right),
    # b 2 (1 right), c 3 (2 right).
    y_true = np.array([0, 0, 0, 0, 0, 0, 1, 1, 2, 2])
    y_pred = np.array([0, 0, 0, 0, 0, 1, 1, 2, 2, 2])
    return y_true, y_pred, _one_hot_probabilities(y_pred, 3), ["a", "b", "c"]


def test_metrics_on_a_hand_counted_example(three_class_example):
    y_true, y_pred, probs, names = three_class_example
    metrics = classification_metrics(y_true, y_pred, probs, names, n_resamples=N_RESAMPLES)
    assert metrics["accuracy"] == pytest.approx(0.8)
    assert metrics["balanced_accuracy"] == pytest.approx((5 / 6 + 1 / 2 + 1) / 3)
    assert [metrics[f"recall_{c}"] for c in names] == pytest.approx([5 / 6, 1 / 2, 1])
    assert [metrics[f"precision_{c}"] for c in names] == pytest.approx([1, 1 / 2, 2 / 3])
    assert [metrics[f"support_{c}"] for c in names] == [6.0, 2.0, 2.0]
    assert metrics["f1_c"] == pytest.approx(2 * (2 / 3) * 1 / (2 / 3 + 1))
    assert metrics["macro_recall"] == pytest.approx(metrics["balanced_accuracy"])
    assert metrics["accuracy_ci_low"] <= 0.8 <= metrics["accuracy_ci_high"]
    assert metrics["top_1_accuracy"] == pytest.approx(0.8)
    assert "top_3_accuracy" not in metrics  # k must be below the number of classes
    assert "roc_auc" not in metrics
    assert all(isinstance(v, float) and np.isfinite(v) for v in metrics.values())


def test_binary_metrics_report_roc_auc_of_the_positive_class():
    # Classic example: 3 of the 4 (negative, positive) pairs are ranked correctly.
    y_true = np.array([0, 0, 1, 1])
    positive = np.array([0.1, 0.4, 0.35, 0.8])
    probs = np.column_stack([1 - positive, positive])
    y_pred = (positive > 0.5).astype(int)
    metrics = classification_metrics(y_true, y_pred, probs, ["ok", "defect"], n_resamples=100)
    assert metrics["roc_auc"] == pytest.approx(0.75)
    assert "roc_auc_ovr_macro" not in metrics
    assert not any(key.startswith("top_") for key in metrics)


@pytest.mark.filterwarnings("ignore:y_pred contains classes not in y_true")
def test_binary_roc_auc_is_omitted_when_the_test_set_has_one_class():
    y_true = np.zeros(4, dtype=int)
    probs = _one_hot_probabilities(np.array([0, 0, 1, 0]), 2)
    metrics = classification_metrics(
        y_true, probs.argmax(1), probs, ["ok", "defect"], n_resamples=100
    )
    assert "roc_auc" not in metrics
    assert metrics["accuracy"] == pytest.approx(0.75)


def test_four_class_metrics_report_top_k_and_one_vs_rest_auc():
    y_true = np.array([0, 1, 2, 3, 0, 1, 2, 3])
    probs = _one_hot_probabilities(y_true, 4)
    # Last photo: the true class (3) gets the lowest score, so it is outside the top 3.
    probs[-1] = [0.4, 0.3, 0.2, 0.1]
    metrics = classification_metrics(
        y_true, probs.argmax(1), probs, ["w", "x", "y", "z"], n_resamples=100
    )
    assert metrics["top_1_accuracy"] == pytest.approx(7 / 8)
    assert metrics["top_3_accuracy"] == pytest.approx(7 / 8)
    assert "top_5_accuracy" not in metrics
    assert 0 < metrics["roc_auc_ovr_macro"] <= 1
    assert "roc_auc" not in metrics


def test_probabilities_summing_to_one_within_float16_precision_are_accepted():
    y_true = np.array([0, 1, 2, 0])
    probs = _one_hot_probabilities(y_true, 3) * (1 + 5e-4)
    metrics = classification_metrics(y_true, y_true, probs, ["a", "b", "c"], n_resamples=100)
    assert metrics["roc_auc_ovr_macro"] == pytest.approx(1.0)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"probabilities": np.full((10, 3), 1.0)}, "sum to 1"),
        ({"probabilities": np.full((10, 2), 0.5)}, "shape"),
        ({"probabilities": np.tile([1.5, -0.5, 0.0], (10, 1))}, "non-negative"),
        ({"y_pred": np.zeros(9, dtype=int)}, "lengths differ"),
        ({"y_true": np.full(10, 3)}, "outside"),
        ({"y_pred": np.zeros(10)}, "integer"),
        ({"class_names": ["a", "a", "c"]}, "unique"),
    ],
)
def test_metrics_reject_malformed_input(three_class_example, change, message):
    y_true, y_pred, probs, names = three_class_example
    arguments = {"y_true": y_true, "y_pred": y_pred, "probabilities": probs, "class_names": names}
    arguments.update(change)
    with pytest.raises(ValueError, match=message):
        classification_metrics(**arguments, n_resamples=100)


# --------------------------------------------------------------------------- figures


@pytest.mark.parametrize("n_classes", [2, 20])
def test_confusion_matrix_figure_can_be_saved(tmp_path, n_classes):
    rng = np.random.default_rng(n_classes)
    y_true = rng.integers(0, n_classes, 200)
    y_pred = np.where(rng.random(200) < 0.7, y_true, rng.integers(0, n_classes, 200))
    names = [f"class_{i}" for i in range(n_classes)]
    fig = confusion_matrix_figure(y_true, y_pred, names, title="Confusion")
    assert isinstance(fig, Figure)
    assert len(fig.axes) == 2  # matrix and colour bar
    matrix_texts = [t.get_text() for t in fig.axes[0].texts]
    assert len(matrix_texts) == n_classes**2
    assert _saved_png(fig, tmp_path, "confusion").stat().st_size > 0


def test_confusion_matrix_cells_show_count_and_row_percentage():
    fig = confusion_matrix_figure(
        np.array([0, 0, 0, 1]), np.array([0, 0, 1, 1]), ["a", "b"], title="t"
    )
    texts = [t.get_text() for t in fig.axes[0].texts]
    assert texts == ["2\n66.7 %", "1\n33.3 %", "0", "1\n100.0 %"]


def _history(with_lr: bool) -> pd.DataFrame:
    history = pd.DataFrame(
        {
            "epoch": [1, 2, 3, 4],
            "train_loss": [1.2, 0.8, 0.6, 0.5],
            "val_loss": [1.1, 0.9, 0.85, 0.95],
            "train_accuracy": [0.5, 0.7, 0.8, 0.85],
            "val_accuracy": [0.55, 0.7, 0.75, 0.75],
        }
    )
    if with_lr:
        history["lr"] = [1e-3, 5e-4, 2.5e-4, 1.25e-4]
    return history


@pytest.mark.parametrize(("with_lr", "n_axes"), [(False, 2), (True, 3)])
def test_training_curves_figure_has_loss_and_accuracy_panels(tmp_path, with_lr, n_axes):
    fig = training_curves_figure(_history(with_lr), title="Curves")
    assert isinstance(fig, Figure)
    assert len(fig.axes) == n_axes
    # Best epoch: highest val accuracy (0.75 at epochs 3 and 4), tie broken by lower loss.
    best_lines = [line for line in fig.axes[0].lines if line.get_label().startswith("best")]
    assert best_lines[0].get_label() == "best (epoch 3.0)"
    assert _saved_png(fig, tmp_path, "curves").stat().st_size > 0


def test_training_curves_figure_rejects_missing_columns():
    with pytest.raises(ValueError, match="val_loss"):
        training_curves_figure(_history(False).drop(columns="val_loss"), title="t")


def _pairs(correct: dict[str, np.ndarray], n_angles: int) -> pd.DataFrame:
    n_photos = next(iter(correct.values())).size
    return paired_differences(
        correct,
        np.arange(n_photos) // n_angles,
        np.zeros(n_photos),
        metric="accuracy",
        confidence=0.95,
        bootstrap_resamples=N_RESAMPLES,
        permutation_resamples=999,
        seed=0,
    )


@pytest.fixture
def comparison_example():
    # 50 samples x 4 photos; finetune right on 180, frozen on 175, scratch on 120, nested,
    # so finetune and frozen differ on 2 samples (5 photos) and finetune and scratch on 15.
    correct = {
        "scratch": _correct(200, 120),
        "frozen": _correct(200, 175),
        "finetune": _correct(200, 180),
    }
    rows = []
    for name, values in correct.items():
        accuracy, low, high = bootstrap_accuracy_ci(values, n_resamples=N_RESAMPLES)
        rows.append(
            {
                "variant": name,
                "backbone": "resnet18",
                "accuracy": accuracy,
                "accuracy_ci_low": low,
                "accuracy_ci_high": high,
                "balanced_accuracy": accuracy,
                "macro_f1": accuracy - 0.01,
                "train_seconds": 123.4,
                "trainable_params": 11_000_000,
                "best_epoch": 7.0,
                "val_metric": accuracy,
                "converged": True,
                "selected": name == "finetune",
            }
        )
    return pd.DataFrame(rows), _pairs(correct, n_angles=4)


def test_variant_comparison_figure_has_bars_whiskers_and_labels(tmp_path, comparison_example):
    comparison, _ = comparison_example
    fig = variant_comparison_figure(comparison, title="Variants")
    assert isinstance(fig, Figure)
    assert len(fig.axes) == 1
    labels = [t.get_text() for t in fig.axes[0].texts]
    assert labels == ["60.0 %", "87.5 %", "90.0 %"]
    assert _saved_png(fig, tmp_path, "variants").stat().st_size > 0


def test_variant_comparison_figure_rejects_missing_accuracy():
    with pytest.raises(ValueError, match="accuracy"):
        variant_comparison_figure(pd.DataFrame({"variant": ["a"]}), title="t")


def _points(fraction: float) -> str:
    """Points with a sign and a typographic minus, as the report writes them (no −0.0)."""
    return f"{100 * fraction + 0.0:+.1f}".replace("-", "−")


def _bullet(report: str, start: str) -> str:
    (line,) = [line for line in report.splitlines() if line.startswith(f"- {start}")]
    return line


def test_comparison_markdown_states_each_paired_difference_with_its_interval(comparison_example):
    comparison, pairs = comparison_example
    report = comparison_markdown(comparison, pairs, confidence=0.95)
    assert len(markdown_tables(report)) == 1  # the results, valid GitHub Markdown
    for name in ("scratch", "frozen", "finetune"):
        assert name in report
    assert (
        "Chosen on validation: **finetune** (validation accuracy 90.0 %; test accuracy 90.0 %"
        in report
    )
    finetune_row = comparison.iloc[2]
    assert (
        f"90.0 % [{100 * finetune_row['accuracy_ci_low']:.1f}, "
        f"{100 * finetune_row['accuracy_ci_high']:.1f}]"
    ) in report
    assert "11,000,000" in report
    section = report.split("## Paired differences")[1].split("## Conclusion")[0]
    rows = pairs.set_index(["a", "b"])
    close = rows.loc[("finetune", "frozen")]
    assert close["p_holm"] >= 0.05
    assert _bullet(section, "fine-tune − frozen") == (
        f"- fine-tune − frozen: +2.5 points [{_points(close['ci_low'])}, "
        f"{_points(close['ci_high'])}], no evidence of a difference "
        f"(p = {close['p_holm']:.2g}, Holm-adjusted)."
    )
    far = rows.loc[("finetune", "scratch")]
    assert far["p_holm"] < 0.05
    assert _bullet(section, "fine-tune − scratch") == (
        f"- fine-tune − scratch: +30.0 points [{_points(far['ci_low'])}, "
        f"{_points(far['ci_high'])}], evidence that fine-tune is better "
        f"(p = {far['p_holm']:.2g}, Holm-adjusted)."
    )
    assert _bullet(section, "frozen − scratch").startswith("- frozen − scratch: +27.5 points")
    assert "cluster-aware" in section and "physical samples, not photos" in section
    assert "Test accuracy of each pair" in section
    assert "not significant" not in report


def test_the_conclusion_reads_each_difference_from_the_chosen_variant(comparison_example):
    comparison, pairs = comparison_example
    chosen_frozen = comparison.assign(selected=comparison["variant"] == "frozen")
    conclusion = comparison_markdown(chosen_frozen, pairs, confidence=0.95).split("## Conclusion")[
        1
    ]
    # The pair holds finetune − frozen; the conclusion turns it round, interval included.
    rows = pairs.set_index(["a", "b"])
    row = rows.loc[("finetune", "frozen")]
    assert _bullet(conclusion, "frozen − fine-tune").startswith(
        f"- frozen − fine-tune: −2.5 points [{_points(-row['ci_high'])}, "
        f"{_points(-row['ci_low'])}], no evidence of a difference"
    )
    assert _bullet(conclusion, "frozen − scratch").endswith(
        f"evidence that frozen is better (p = {rows.loc[('frozen', 'scratch'), 'p_holm']:.2g}, "
        "Holm-adjusted)."
    )


def test_an_interval_that_excludes_zero_without_evidence_sends_the_reader_to_the_test():
    comparison = pd.DataFrame(
        {"variant": ["frozen", "finetune"], "accuracy": [0.8, 0.9], "selected": [False, True]}
    )
    row = {"a": "finetune", "b": "frozen", "difference": 0.1, "test": "t", "metric": "accuracy"}
    agreeing = pd.DataFrame([{**row, "ci_low": -0.02, "ci_high": 0.2, "p": 0.2, "p_holm": 0.2}])
    disagreeing = agreeing.assign(ci_low=0.02)
    note = "Where an interval excludes 0 but the test finds no evidence, trust the test"
    assert note not in comparison_markdown(comparison, agreeing, confidence=0.95)
    assert note in comparison_markdown(comparison, disagreeing, confidence=0.95)
    assert note not in comparison_markdown(
        comparison, disagreeing.assign(p=0.01, p_holm=0.01), confidence=0.95
    )


def test_comparison_markdown_names_balanced_accuracy_when_it_is_the_metric():
    comparison = pd.DataFrame(
        {"variant": ["frozen", "finetune"], "accuracy": [0.8, 0.85], "selected": [False, True]}
    )
    pairs = _pairs({"frozen": _correct(20, 16), "finetune": _correct(20, 17)}, n_angles=2)
    report = comparison_markdown(
        comparison, pairs.assign(metric="balanced_accuracy"), confidence=0.9
    )
    assert "Test balanced accuracy of each pair" in report
    assert "in test balanced accuracy" in report


def test_comparison_markdown_uses_only_the_columns_present():
    comparison = pd.DataFrame(
        {"variant": ["frozen", "finetune"], "accuracy": [0.8, 0.85], "selected": [False, True]}
    )
    pairs = _pairs({"frozen": _correct(20, 16), "finetune": _correct(20, 17)}, n_angles=2)
    report = comparison_markdown(comparison, pairs, confidence=0.9)
    (results,) = markdown_tables(report)
    assert results[0] == ["Variant", "Accuracy"]
    assert results[1:] == [["frozen", "80.0 %"], ["finetune", "85.0 %"]]
    assert "- fine-tune − frozen: +5.0 points [" in report
    assert "with its 90 % interval" in report
    assert "Backbone" not in report


def test_comparison_markdown_with_one_variant_has_nothing_to_compare():
    comparison = pd.DataFrame({"variant": ["frozen"], "accuracy": [0.8], "selected": [True]})
    pairs = _pairs({"frozen": _correct(20, 16)}, n_angles=2)
    assert "Only one variant; nothing to compare." in comparison_markdown(
        comparison, pairs, confidence=0.95
    )


def test_comparison_markdown_rejects_a_malformed_pairs_table():
    comparison = pd.DataFrame({"variant": ["a"], "accuracy": [0.8]})
    with pytest.raises(ValueError, match="p_holm"):
        comparison_markdown(comparison, pd.DataFrame({"a": [], "b": []}), confidence=0.95)


def test_a_zero_difference_read_from_the_other_side_has_no_minus_sign(comparison_example):
    comparison, pairs = comparison_example
    tied = pairs.assign(difference=0.0, ci_low=0.0, ci_high=0.0, p=1.0, p_holm=1.0)
    chosen_frozen = comparison.assign(selected=comparison["variant"] == "frozen")
    report = comparison_markdown(chosen_frozen, tied, confidence=0.95)
    assert "frozen − fine-tune: +0.0 points [+0.0, +0.0]" in report
    assert "−0.0" not in report
