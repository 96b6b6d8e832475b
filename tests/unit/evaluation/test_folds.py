"""Pooling cross-validation folds into one result per variant (``evaluation.folds``) and
the folds' near-copy checks into one (``photos.near_copies.combine_fold_checks``)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from transfer_study.evaluation.folds import (
    best_fold,
    pool_predictions,
    pool_summaries,
    pooled_metrics,
)
from transfer_study.photos.near_copies import combine_fold_checks


def _predictions(samples: range, wrong: set[int]) -> pd.DataFrame:
    rows = []
    for sample in samples:
        label = "ant" if sample % 2 else "bee"
        other = "bee" if label == "ant" else "ant"
        for angle in range(2):
            predicted = other if sample in wrong else label
            p_ant = 0.8 if predicted == "ant" else 0.2
            rows.append(
                {
                    "path": f"s{sample}_a{angle}.jpg",
                    "sample_id": f"s{sample}",
                    "label": label,
                    "predicted": predicted,
                    "prob_ant": np.float32(p_ant),
                    "prob_bee": np.float32(1 - p_ant),
                }
            )
    return pd.DataFrame(rows)


def _summary(val: float, *, lr: float, steps: int, converged: bool = True) -> dict:
    return {
        "variant": "frozen",
        "weights": "imagenet",
        "metric": "accuracy",
        "seed": 0,
        "n_images": 40,
        "lr": lr,
        "train_seconds": 1.5,
        "steps": steps,
        "epochs_run": 10.0,
        "best_epoch": 4.0,
        "best_val_metric": val,
        "best_val_accuracy": val,
        "converged": converged,
        "stop_reason": "patience" if converged else "cap",
        "trainable_params": 10,
        "total_params": 100,
        "split_fingerprint": "abc",
        "seeds": [{"seed": 0}],
    }


def test_pooled_predictions_cover_every_fold_once_and_say_which_fold():
    pooled = pool_predictions([_predictions(range(0, 4), set()), _predictions(range(4, 10), {5})])
    assert len(pooled) == 20
    assert pooled.groupby("fold")["sample_id"].nunique().tolist() == [4, 6]


def test_a_photo_tested_in_two_folds_is_refused():
    with pytest.raises(ValueError, match="tested in two folds"):
        pool_predictions([_predictions(range(0, 4), set()), _predictions(range(3, 6), set())])


def test_pooled_metrics_weigh_every_sample_not_every_fold():
    # Fold 0: 2 samples, both wrong; fold 1: 8 samples, all right. Mean of fold
    # accuracies: 50 %; pooled over samples: 80 %.
    pooled = pool_predictions(
        [_predictions(range(0, 2), {0, 1}), _predictions(range(2, 10), set())]
    )
    metrics = pooled_metrics(pooled, confidence=0.95, n_resamples=500, seed=0, top_k=(3,))
    assert metrics["accuracy"] == pytest.approx(0.8)
    assert metrics["accuracy_ci_low"] < 0.8 < metrics["accuracy_ci_high"]


def test_the_pooled_summary_takes_the_mean_validation_and_flags_any_capped_fold():
    summaries = [
        _summary(0.9, lr=1e-3, steps=100),
        _summary(0.8, lr=1e-2, steps=300),
        _summary(0.7, lr=1e-4, steps=200, converged=False),
    ]
    pooled = pool_summaries(summaries)
    assert pooled["best_val_metric"] == pytest.approx(0.8)
    assert pooled["lr"] == pytest.approx(1e-3) and pooled["steps"] == 200
    assert pooled["converged"] is False and "fold(s) 2" in pooled["stop_reason"]
    assert pooled["folds"] == 3 and len(pooled["per_fold"]) == 3
    assert pooled["n_images"] == 120
    assert pool_summaries(summaries[:2])["converged"] is True


def test_the_kept_fold_is_the_one_that_validated_best():
    summaries = [_summary(v, lr=1e-3, steps=1) for v in (0.7, 0.95, 0.8)]
    assert best_fold(summaries) == 1


def _diverged(summary: dict, step: int) -> dict:
    return summary | {
        "converged": False,
        "stop_reason": "diverged",
        "diverged": True,
        "divergence_step": step,
        "divergence_reason": f"NaN loss at step {step}",
    }


def test_a_variant_that_diverged_in_one_fold_is_diverged():
    summaries = [
        _summary(0.9, lr=1e-3, steps=100),
        _diverged(_summary(0.95, lr=1e-3, steps=12), 12),
        _summary(0.8, lr=1e-3, steps=100),
    ]
    pooled = pool_summaries(summaries)
    assert pooled["diverged"] is True and pooled["converged"] is False
    assert pooled["stop_reason"] == "diverged" and pooled["divergence_step"] == 12
    assert pooled["divergence_reason"] == "fold 1: NaN loss at step 12"
    assert [fold["diverged"] for fold in pooled["per_fold"]] == [False, True, False]
    assert pool_summaries([summaries[0], summaries[2]])["diverged"] is False
    # Its early checkpoint validated best, but a diverged fold's model is not kept.
    assert best_fold(summaries) == 0


def _grouping(near_copies: int, test_photos: int, median: float, example: float) -> dict:
    return {
        "statement": "Every photo is its own sample.",
        "photos": 40,
        "samples": 40,
        "near_copy": {
            "checked": True,
            "near_copies": near_copies,
            "test_photos": test_photos,
            "share": near_copies / test_photos,
            "threshold": 0.9,
            "max_share": 0.05,
            "median_similarity": median,
            "examples": [["t.jpg", "a.jpg", example]],
        },
    }


def test_the_folds_near_copy_checks_add_up_to_one_over_every_photo():
    combined = combine_fold_checks([_grouping(1, 20, 0.6, 0.95), _grouping(0, 20, 0.7, 0.5)])
    check = combined["near_copy"]
    assert (check["near_copies"], check["test_photos"]) == (1, 40)
    assert check["share"] == pytest.approx(0.025)
    assert check["examples"][0][2] == 0.95
    assert combined["statement"] == "Every photo is its own sample."


def test_a_fold_without_a_near_copy_check_leaves_the_whole_unchecked():
    unchecked = {**_grouping(0, 20, 0.6, 0.5), "near_copy": {"checked": False}}
    combined = combine_fold_checks([_grouping(0, 20, 0.6, 0.5), unchecked])
    assert combined["near_copy"] == {"checked": False}


def test_the_pooled_summary_fingerprints_every_folds_split_together():
    folds = [_summary(0.9, lr=1e-3, steps=1) for _ in range(3)]
    for fold, summary in enumerate(folds):
        summary["split_fingerprint"] = f"fold{fold}"
    pooled = pool_summaries(folds)["split_fingerprint"]
    assert pooled and pooled not in {"fold0", "fold1", "fold2"}
    assert pool_summaries(folds)["split_fingerprint"] == pooled  # the same folds: the same
    folds[2]["split_fingerprint"] = "another"
    assert pool_summaries(folds)["split_fingerprint"] != pooled
