"""The reporting pipeline on ``SequentialRunner``: three variants' test predictions, metrics
and summaries in, the comparison table, paired differences, Markdown report and chart out."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pytest
from matplotlib.figure import Figure

from tests.helpers.grouping import GROUPING
from tests.helpers.in_memory_runs import run_in_memory
from tests.helpers.parameters import project_parameters
from transfer_study.evaluation.metrics import classification_metrics
from transfer_study.pipelines import training
from transfer_study.pipelines.reporting import create_pipeline as create_reporting_pipeline
from transfer_study.pipelines.variant_template import VARIANTS

CLASSES = ["natural", "plastic"]
N_SAMPLES, N_ANGLES = 6, 2
# Photos each variant gets right, out of N_SAMPLES × N_ANGLES.
CORRECT = {"scratch": 6, "frozen": 9, "finetune_top": 9, "finetune": 12}
# Validation disagrees with test: frozen is best on validation. Scratch hit its cap.
VALIDATION = {"scratch": 0.99, "frozen": 0.95, "finetune_top": 0.92, "finetune": 0.90}
CONVERGED = {"scratch": False, "frozen": True, "finetune_top": True, "finetune": True}
TRAINABLE = {"scratch": 5000, "frozen": 1000, "finetune_top": 3000, "finetune": 5000}
PER_VARIANT = ("test_metrics", "training_summary", "test_predictions")
CONFIDENCE = 0.9
OVERRIDES = {"evaluation.confidence": CONFIDENCE, "evaluation.bootstrap_resamples": 100}
PAIR_COLUMNS = ["a", "b", "difference", "ci_low", "ci_high", "test", "p", "p_holm"]


def create_pipeline():
    """The report over every variant, whatever ``study.variants`` says in conf/base."""
    return create_reporting_pipeline(variants=tuple(VARIANTS))


def _test_photos() -> pd.DataFrame:
    rows = []
    for sample in range(N_SAMPLES):
        label = CLASSES[sample % 2]
        for angle in range(N_ANGLES):
            rows.append(
                {
                    "path": f"{label}/s{sample:04d}_a{angle:02d}.jpg",
                    "sample_id": f"s{sample:04d}",
                    "label": label,
                }
            )
    return pd.DataFrame(rows)


def _variant_results(
    variant: str, n_correct: int, seconds: float, photos: pd.DataFrame
) -> dict[str, Any]:
    """What the training pipeline writes for a variant: its first ``n_correct`` right."""
    labels = photos["label"].map(CLASSES.index).to_numpy()
    predicted = labels.copy()
    predicted[n_correct:] = 1 - predicted[n_correct:]
    probabilities = np.full((len(labels), 2), 0.2)
    probabilities[np.arange(len(labels)), predicted] = 0.8
    metrics = classification_metrics(
        labels,
        predicted,
        probabilities,
        CLASSES,
        groups=photos["sample_id"].to_numpy(),
        n_resamples=100,
    )
    predictions = photos.assign(
        predicted=[CLASSES[i] for i in predicted],
        **{f"prob_{name}": probabilities[:, i] for i, name in enumerate(CLASSES)},
    )
    summary = {
        "variant": variant,
        "backbone": "efficientnet_lite0",
        "weights": "none" if variant == "scratch" else "imagenet",
        "seed": 0,
        "train_seconds": seconds,
        "metric": "accuracy",
        "lr": 0.001,
        "steps": 30,
        "epochs_run": 3.0,
        "best_epoch": 2.0,
        "best_val_metric": VALIDATION[variant],
        "converged": CONVERGED[variant],
        "stop_reason": "patience" if CONVERGED[variant] else "cap",
        "trainable_params": TRAINABLE[variant],
        "total_params": 5000,
    }
    if variant == "finetune_top":
        summary["trainable_stages"] = 2
    if variant == "scratch":
        summary["input_sizes"] = [112, 224]  # progressive resizing
    return {
        f"{variant}.test_metrics": {k: float(v) for k, v in metrics.items()},
        f"{variant}.training_summary": summary,
        f"{variant}.test_predictions": predictions,
    }


def _inputs(photos_of: dict[str, pd.DataFrame] | None = None) -> dict[str, Any]:
    photos_of = photos_of or {}
    results: dict[str, Any] = {}
    for seconds, (variant, n_correct) in enumerate(CORRECT.items(), start=1):
        photos = photos_of.get(variant, _test_photos())
        results.update(_variant_results(variant, n_correct, float(seconds), photos))
    parameters = project_parameters(OVERRIDES, create_pipeline())
    return {**parameters, "grouping": GROUPING, **results}


@pytest.fixture(scope="module")
def outputs() -> dict[str, Any]:
    return run_in_memory(create_pipeline(), _inputs())


def test_reporting_reads_each_variant_in_the_order_compare_variants_expects():
    (node,) = create_pipeline().nodes
    assert node.inputs == [
        "params:model",
        "params:evaluation",
        "grouping",
        *(f"{variant}.{name}" for variant in VARIANTS for name in PER_VARIANT),
    ]


def test_every_variant_result_reporting_reads_is_written_by_training():
    data_inputs = {name for name in create_pipeline().inputs() if not name.startswith("params:")}
    assert data_inputs <= training.create_pipeline(variants=tuple(VARIANTS)).all_outputs()
    assert len(data_inputs) == len(VARIANTS) * len(PER_VARIANT) + 1  # and the grouping


def test_the_report_says_first_how_samples_were_formed(outputs):
    summary, blank, heading = outputs["variant_comparison_report"].split("\n")[:3]
    assert (blank, heading) == ("", "## Results")
    assert summary.startswith("**Samples.** " + GROUPING["statement"])
    assert "Near-copy check: 0 of 12 test photos" in summary


def test_comparison_has_one_row_per_variant_with_its_own_results(outputs):
    comparison = outputs["variant_comparison"]
    assert comparison["variant"].tolist() == list(VARIANTS)
    rows = comparison.set_index("variant")
    n_photos = N_SAMPLES * N_ANGLES
    for seconds, (variant, n_correct) in enumerate(CORRECT.items(), start=1):
        assert rows.loc[variant, "accuracy"] == pytest.approx(n_correct / n_photos)
        assert rows.loc[variant, "train_seconds"] == seconds
    assert rows.loc["frozen", "trainable_params"] == 1000
    assert rows.loc["scratch", "weights"] == "none"
    assert (rows["accuracy_ci_low"] <= rows["accuracy"]).all()
    assert (rows["accuracy"] <= rows["accuracy_ci_high"]).all()


def test_comparison_names_the_backbone_of_the_model_block(outputs):
    backbone = project_parameters()["params:model.backbone"]
    assert set(outputs["variant_comparison"]["backbone"]) == {backbone}
    assert backbone in outputs["variant_comparison_report"]


def test_every_pair_is_compared_on_the_same_photos_over_samples(outputs):
    pairs = outputs["variant_pairs"]
    assert list(pairs.columns[:8]) == PAIR_COLUMNS
    assert list(zip(pairs["a"], pairs["b"], strict=True)) == [
        ("finetune", "finetune_top"),
        ("finetune", "frozen"),
        ("finetune", "scratch"),
        ("finetune_top", "frozen"),
        ("finetune_top", "scratch"),
        ("frozen", "scratch"),
    ]
    row = pairs.set_index(["a", "b"]).loc[("finetune", "scratch")]
    n_photos = N_SAMPLES * N_ANGLES
    assert row["difference"] == pytest.approx((CORRECT["finetune"] - CORRECT["scratch"]) / n_photos)
    assert row["ci_low"] <= row["difference"] <= row["ci_high"]
    # 6 samples: every one of the 2^6 sign flips is enumerated. Fine-tune gains both photos
    # of samples 3, 4, 5, so only flips that keep or reverse all three reach the observed
    # difference: 2 × 2^3 of 64.
    assert row["test"] == "sign-flip permutation over samples (exact)"
    assert row["p"] == pytest.approx(16 / 64)
    assert (pairs["p_holm"] >= pairs["p"]).all()
    assert set(pairs["metric"]) == {"accuracy"}


def test_imbalanced_classes_compare_the_variants_in_balanced_accuracy():
    inputs = _inputs()
    for variant in VARIANTS:
        summary = inputs[f"{variant}.training_summary"]
        inputs[f"{variant}.training_summary"] = {**summary, "metric": "balanced_accuracy"}
    outputs = run_in_memory(create_pipeline(), inputs)
    assert set(outputs["variant_pairs"]["metric"]) == {"balanced_accuracy"}
    assert "Test balanced accuracy of each pair" in outputs["variant_comparison_report"]


def test_report_and_chart_use_the_evaluation_confidence(outputs):
    report = outputs["variant_comparison_report"]
    for variant in VARIANTS:
        assert variant in report
    assert f"{100 * CONFIDENCE:g} %" in report
    chart = outputs["variant_comparison_chart"]
    assert isinstance(chart, Figure)
    titles = [axes.get_title() for axes in chart.axes] + [t.get_text() for t in chart.texts]
    assert any(f"{CONFIDENCE:.0%}" in title for title in titles), titles


def test_a_diverged_variant_is_flagged_not_chosen_not_paired_and_shows_no_figures():
    inputs = _inputs()
    inputs["finetune.training_summary"] = {
        **inputs["finetune.training_summary"],
        "best_val_metric": 0.999,  # its early checkpoint's: it would be chosen
        "converged": False,
        "stop_reason": "diverged",
        "diverged": True,
        "divergence_step": 12,
        "divergence_reason": "NaN loss at step 12",
    }
    outputs = run_in_memory(create_pipeline(), inputs)
    rows = outputs["variant_comparison"].set_index("variant")
    assert rows.loc["finetune", ["accuracy", "balanced_accuracy", "val_metric"]].isna().all()
    assert rows.loc["frozen", "accuracy"] == pytest.approx(CORRECT["frozen"] / 12)
    assert rows.loc["finetune", "divergence_reason"] == "NaN loss at step 12"
    assert rows["selected"].tolist() == [False, True, False, False]  # frozen, as without it
    pairs = outputs["variant_pairs"]
    assert list(zip(pairs["a"], pairs["b"], strict=True)) == [
        ("finetune_top", "frozen"),
        ("finetune_top", "scratch"),
        ("frozen", "scratch"),
    ]
    report = outputs["variant_comparison_report"]
    assert "**Flagged: fine-tune diverged at step 12** (NaN loss at step 12)" in report
    assert "`--params=finetune.lr=0.0001`" in report


def test_variants_tested_on_different_photos_are_refused():
    other = _test_photos()
    other.loc[0, "path"] = "natural/elsewhere.jpg"
    with pytest.raises(ValueError, match="different test photos"):
        run_in_memory(create_pipeline(), _inputs({"frozen": other}))


def test_the_variant_is_chosen_on_validation_not_on_test(outputs):
    comparison = outputs["variant_comparison"].set_index("variant")
    assert comparison["selected"].to_dict() == {
        "scratch": False,
        "frozen": True,
        "finetune_top": False,
        "finetune": False,
    }
    assert comparison["accuracy"].idxmax() == "finetune"  # test would have said fine-tune
    report = outputs["variant_comparison_report"]
    assert "Chosen on validation: **frozen** (validation accuracy 95.0 %" in report
    assert "Test results are reported, never used to choose." in report


def test_a_variant_that_hit_its_cap_is_flagged_in_the_table_and_the_conclusion(outputs):
    report = outputs["variant_comparison_report"]
    (scratch_row,) = [
        line
        for line in report.splitlines()
        if line.split("|")[1:2] and line.split("|")[1].strip() == "scratch"
    ]
    assert "**no: hit the cap**" in scratch_row
    assert "**Flagged: scratch hit its training cap**" in report
    assert outputs["variant_comparison"].set_index("variant").loc["scratch", "converged"] == False  # noqa: E712


def test_the_report_says_how_many_stages_the_partial_fine_tune_trained(outputs):
    rows = outputs["variant_comparison"].set_index("variant")
    assert rows.loc["finetune_top", "trainable_stages"] == 2
    assert rows[["trainable_stages"]].drop(index="finetune_top").isna().all().all()
    report = outputs["variant_comparison_report"]
    assert "partial fine-tune (finetune_top) trained the backbone's last 2 stages" in report


def test_the_report_says_which_variant_trained_with_progressive_resizing(outputs):
    rows = outputs["variant_comparison"].set_index("variant")
    assert rows.loc["scratch", "input_sizes"] == "112 → 224"
    assert rows["input_sizes"].drop(index="scratch").isna().all()
    report = outputs["variant_comparison_report"]
    assert "scratch (scratch) trained with progressive resizing, at 112 → 224 px" in report
    assert report.count("progressive resizing") == 1
