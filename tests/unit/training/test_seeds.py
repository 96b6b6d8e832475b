"""Training once per seed: which model is kept, what the summary says, and the seed count."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from tests.helpers.settings import study_training_settings
from transfer_study.config import TrainingSettings, with_overrides
from transfer_study.evaluation.learning_curve import seed_pooled_accuracy
from transfer_study.training.seeds import seed_count, train_over_seeds

# Validation metric and convergence of each seed's training.
OUTCOMES = {0: (0.80, True), 1: (0.90, True), 2: (0.85, False)}


def _fake_training(settings: TrainingSettings):
    metric, converged = OUTCOMES[settings.seed]
    summary = {
        "seed": settings.seed,
        "best_val_metric": metric,
        "steps": 10 + settings.seed,
        "converged": converged,
        "train_seconds": 1.5,
    }
    return {"weights": settings.seed}, pd.DataFrame({"step": [1]}), summary


def test_every_seed_trains_and_the_best_on_validation_is_kept():
    settings = with_overrides(study_training_settings("frozen"), seed=0, seeds=3)
    checkpoint, _, summary, others = train_over_seeds(_fake_training, settings)
    assert checkpoint == {"weights": 1}  # seed 1 has the best validation metric
    assert summary["seed"] == 1
    assert [outcome["seed"] for outcome in summary["seeds"]] == [0, 1, 2]
    assert summary["converged"] is False  # seed 2 hit its cap
    assert summary["train_seconds"] == 4.5
    assert others == {"0": {"weights": 0}, "2": {"weights": 2}}


def test_one_seed_keeps_it_and_nothing_else():
    settings = with_overrides(study_training_settings("frozen"), seed=1, seeds=1)
    checkpoint, _, summary, others = train_over_seeds(_fake_training, settings)
    assert checkpoint == {"weights": 1} and others == {}
    assert summary["converged"] is True


def test_a_seed_that_diverged_is_not_kept_and_makes_the_variant_diverged():
    def training(settings: TrainingSettings):
        checkpoint, history, summary = _fake_training(settings)
        if settings.seed == 1:  # the best validation metric, from before it diverged
            summary |= {
                "converged": False,
                "diverged": True,
                "divergence_step": 7,
                "divergence_reason": "NaN loss at step 7",
            }
        return checkpoint, history, summary

    settings = with_overrides(study_training_settings("frozen"), seed=0, seeds=3)
    checkpoint, _, summary, _ = train_over_seeds(training, settings)
    assert checkpoint == {"weights": 2}  # the best of the seeds that did not diverge
    assert summary["diverged"] is True and summary["stop_reason"] == "diverged"
    assert summary["divergence_step"] == 7
    assert summary["divergence_reason"] == "seed 1: NaN loss at step 7"
    assert [outcome["diverged"] for outcome in summary["seeds"]] == [False, True, False]


def test_auto_means_one_seed_on_a_cpu():
    assert (
        seed_count(with_overrides(study_training_settings("frozen"), seeds="auto", device="cpu"))
        == 1
    )
    assert seed_count(with_overrides(study_training_settings("frozen"), seeds=4)) == 4


def test_the_seed_pooled_accuracy_is_the_mean_with_a_wider_interval_when_seeds_disagree():
    groups = np.repeat(np.arange(20), 2)  # 20 samples × 2 photos
    rng = np.random.default_rng(0)
    agreeing = np.tile(rng.random(40) < 0.8, (3, 1))
    disagreeing = np.stack([rng.random(40) < p for p in (0.6, 0.8, 1.0)])
    mean, low, high = seed_pooled_accuracy(
        agreeing, groups, confidence=0.95, n_resamples=2000, seed=0
    )
    assert mean == pytest.approx(agreeing[0].mean())
    assert low < mean < high
    mean2, low2, high2 = seed_pooled_accuracy(
        disagreeing, groups, confidence=0.95, n_resamples=2000, seed=0
    )
    assert mean2 == pytest.approx(disagreeing.mean())
    assert high2 - low2 > high - low  # the training variance widens it
