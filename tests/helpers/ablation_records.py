"""Synthetic ``summarise_cell`` records whose truth is known, for the ablation's statistics."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from itertools import product
from typing import Any

import numpy as np
from scipy.special import expit
from scipy.stats import norm

# Probability that a photo is right, given (variant, n_samples, n_angles).
Truth = Callable[[str, int, int], float]


def ablation_records(
    truth: Truth,
    *,
    variants: Sequence[str] = ("finetune",),
    n_samples: Sequence[int] = (10, 20, 40),
    n_angles: Sequence[int] = (1, 2, 4),
    seeds: Sequence[int] = (0, 1, 2),
    n_test_samples: int = 200,
    photos_per_sample: int = 2,
    noise: float = 0.1,
    val_metric: Callable[[str], float] | None = None,
    converged: bool = True,
    rng_seed: int = 0,
) -> list[dict[str, Any]]:
    """One record per variant × samples × angles × seed, tested on the same photos.

    A photo is right when its difficulty (fixed per photo, shared by every cell and
    seed, as real test photos are easy or hard for every model) mixed with a share
    ``noise`` of cell-and-seed noise falls below the cell's ``truth``. The mix is
    uniform (a Gaussian copula), so a cell's expected accuracy is its truth, and cells
    with equal truth agree on most photos.
    """
    rng = np.random.default_rng(rng_seed)
    n_photos = n_test_samples * photos_per_sample
    ids = [f"t{i:04d}" for i in range(n_test_samples) for _ in range(photos_per_sample)]
    labels = [
        ("ant", "bee")[i % 2] for i in range(n_test_samples) for _ in range(photos_per_sample)
    ]
    difficulty = rng.standard_normal(n_photos)
    records = []
    for variant, n, k, seed in product(variants, n_samples, n_angles, seeds):
        own = rng.standard_normal(n_photos)
        mixed = norm.cdf(np.sqrt(1 - noise) * difficulty + np.sqrt(noise) * own)
        correct = [bool(c) for c in mixed < truth(variant, n, k)]
        accuracy = float(np.mean(correct))
        records.append(
            {
                "variant": variant,
                "n_samples": n,
                "n_angles": k,
                "seed": seed,
                "n_samples_used": n,
                "n_images": n * k,
                "accuracy": accuracy,
                "accuracy_ci_low": 0.0,
                "accuracy_ci_high": 1.0,
                "balanced_accuracy": accuracy,
                "train_seconds": 1.0,
                "steps": 10 * n,
                "best_step": 5 * n,
                "lr": 0.01,
                "converged": converged,
                "metric": "accuracy",
                "val_metric": val_metric(variant) if val_metric else accuracy,
                "sample_id": ids,
                "label": labels,
                "correct": correct,
            }
        )
    return records


def logistic_records(
    slopes: dict[str, tuple[float, float]],
    *,
    n_samples: Sequence[int] = (10, 20, 40),
    n_angles: Sequence[int] = (1, 2, 4),
    seeds: Sequence[int] = (0, 1),
    n_test_samples: int = 150,
    photos_per_sample: int = 3,
    rng_seed: int = 0,
) -> list[dict[str, Any]]:
    """Records drawn from ``logit P(right) = −1 + s·log2(n/n₀) + a·log2(k) + u_sample``.

    ``slopes`` maps each variant to its ``(s, a)``: what a doubling of samples and of
    angles adds to the log-odds; ``u_sample`` (sd 1) makes a test sample's photos alike.
    """
    rng = np.random.default_rng(rng_seed)
    effect = np.repeat(rng.normal(0, 1, n_test_samples), photos_per_sample)
    ids = [f"t{i:04d}" for i in range(n_test_samples) for _ in range(photos_per_sample)]
    records = []
    for variant, (s, a) in slopes.items():
        for n, k, seed in product(n_samples, n_angles, seeds):
            logit = -1 + s * np.log2(n / n_samples[0]) + a * np.log2(k) + effect
            correct = rng.random(effect.size) < expit(logit)
            records.append(
                {
                    "variant": variant,
                    "n_samples": n,
                    "n_angles": k,
                    "seed": seed,
                    "n_images": n * k,
                    "sample_id": ids,
                    "correct": [bool(c) for c in correct],
                }
            )
    return records
