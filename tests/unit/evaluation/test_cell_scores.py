"""Cells scored seed by seed on the same test photos, and their paired bootstrap replicates."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import balanced_accuracy_score

from tests.helpers.ablation_records import ablation_records
from transfer_study.evaluation.cell_scores import score_cells

BOOTSTRAP = {"n_resamples": 300, "seed": 0}


def _imbalanced(records: list[dict], metric: str) -> list[dict]:
    """Three test samples in four are ants; the records name ``metric``."""
    for record in records:
        record["label"] = ["ant" if int(s[1:]) % 4 else "bee" for s in record["sample_id"]]
        record["metric"] = metric
    return records


def test_cells_are_arranged_by_size_with_one_column_per_seed() -> None:
    records = ablation_records(lambda v, n, k: 0.5 + n / 100, n_samples=(20, 10), n_angles=(2, 1))
    (scores,) = score_cells(records, **BOOTSTRAP).values()
    assert scores.cells.values.tolist() == [[10, 1], [10, 2], [20, 1], [20, 2]]
    assert scores.seeds == (0, 1, 2)
    assert scores.point.shape == scores.n_images.shape == (4, 3)
    assert scores.replicates.shape == (300, 4, 3)
    assert scores.n_images[3].tolist() == [40, 40, 40]
    by_cell = {(r["n_samples"], r["n_angles"], r["seed"]): r["accuracy"] for r in records}
    assert scores.point[2, 1] == pytest.approx(by_cell[(20, 1, 1)])


def test_balanced_accuracy_matches_scikit_learn_and_is_the_mean_recall_in_replicates() -> None:
    records = _imbalanced(
        ablation_records(lambda v, n, k: 0.7, n_samples=(10,), n_angles=(1, 2)),
        "balanced_accuracy",
    )
    # Cell 10×1: every ant right, every bee wrong: a balanced accuracy of 0.5 however drawn.
    for record in records:
        if record["n_angles"] == 1:
            record["correct"] = [label == "ant" for label in record["label"]]
    (scores,) = score_cells(records, **BOOTSTRAP).values()
    assert scores.metric == "balanced_accuracy"
    for record in records:
        row = int(record["n_angles"] == 2)
        truth = np.asarray(record["label"])
        other = np.where(truth == "ant", "bee", "ant")
        predicted = np.where(record["correct"], truth, other)
        expected = balanced_accuracy_score(truth, predicted)
        assert scores.point[row, record["seed"]] == pytest.approx(expected)
    assert np.allclose(scores.replicates[:, 0], 0.5)
    assert scores.replicates[:, 1].std() > 0.01  # the other cell varies with the draw


def test_replicates_are_paired_a_cell_equal_to_another_differs_by_nothing() -> None:
    records = ablation_records(lambda v, n, k: 0.7, n_samples=(10, 20), n_angles=(1,))
    small = [r for r in records if r["n_samples"] == 10]
    for record, twin in zip(small, [r for r in records if r["n_samples"] == 20], strict=True):
        twin["correct"] = list(record["correct"])
    (scores,) = score_cells(records, **BOOTSTRAP).values()
    means = scores.replicate_means()
    assert np.array_equal(means[:, 0], means[:, 1])
    assert means[:, 0].std() > 0.01  # while each cell alone varies


def test_cells_with_other_seeds_cannot_be_paired() -> None:
    records = [
        r
        for r in ablation_records(lambda v, n, k: 0.7, n_samples=(10, 20), n_angles=(1,))
        if not (r["n_samples"] == 20 and r["seed"] == 2)
    ]
    with pytest.raises(ValueError, match="same seeds"):
        score_cells(records, **BOOTSTRAP)


def test_balanced_accuracy_without_labels_says_what_to_rerun() -> None:
    records = _imbalanced(ablation_records(lambda v, n, k: 0.7), "balanced_accuracy")
    for record in records:
        del record["label"]
    with pytest.raises(ValueError, match="lack the test photos' labels"):
        score_cells(records, **BOOTSTRAP)


def test_records_naming_two_metrics_or_other_photos_are_refused() -> None:
    records = ablation_records(lambda v, n, k: 0.7)
    records[0]["metric"] = "balanced_accuracy"
    with pytest.raises(ValueError, match="metrics"):
        score_cells(records, **BOOTSTRAP)
    records = ablation_records(lambda v, n, k: 0.7)
    records[-1]["sample_id"] = list(reversed(records[-1]["sample_id"]))
    with pytest.raises(ValueError, match="different test photos"):
        score_cells(records, **BOOTSTRAP)
