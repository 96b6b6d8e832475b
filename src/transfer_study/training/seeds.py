"""Training a variant once per seed, so that the comparison sees the training variance."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pandas as pd

from transfer_study.config import TrainingSettings, with_overrides
from transfer_study.training.device import pick_device

Trained = tuple[dict[str, Any], pd.DataFrame, dict[str, Any]]
# On a GPU a training is cheap enough to repeat: three seeds show the training variance.
_SEEDS_ON_GPU = 3


def seed_count(settings: TrainingSettings) -> int:
    """How many trainings ``seeds`` asks for: ``auto`` is 1 on a CPU, 3 on a GPU."""
    if settings.seeds != "auto":
        return settings.seeds
    return 1 if pick_device(settings.device).type == "cpu" else _SEEDS_ON_GPU


def train_over_seeds(
    train: Callable[[TrainingSettings], Trained], settings: TrainingSettings
) -> tuple[dict[str, Any], pd.DataFrame, dict[str, Any], dict[str, dict[str, Any]]]:
    """Trains once per seed (``seed``, ``seed + 1``, …) and keeps the best on validation.

    Args:
        train: One training with the given settings (``train_on_images`` or
            ``train_on_features`` with its data bound).
        settings: The variant's settings; ``seeds`` says how many trainings.

    Returns:
        The kept checkpoint (best validation metric among the seeds that did not
        diverge, ties to the first seed), its history and summary (with every seed's
        outcome under ``seeds``, ``converged`` only when all converged, ``diverged`` when
        any diverged, and the total training time), and the other seeds' checkpoints by
        seed.
    """
    runs = [
        train(with_overrides(settings, seed=settings.seed + k)) for k in range(seed_count(settings))
    ]
    kept = max(
        range(len(runs)),
        key=lambda k: (not runs[k][2].get("diverged", False), runs[k][2]["best_val_metric"], -k),
    )
    checkpoint, history, summary = runs[kept]
    outcomes = [
        {
            **{
                key: run[2][key]
                for key in ("seed", "best_val_metric", "steps", "converged", "train_seconds")
            },
            "diverged": bool(run[2].get("diverged", False)),
        }
        for run in runs
    ]
    summary = {
        **summary,
        "seeds": outcomes,
        "converged": all(outcome["converged"] for outcome in outcomes),
        "train_seconds": round(sum(outcome["train_seconds"] for outcome in outcomes), 2),
        **_divergence([run[2] for run in runs]),
    }
    others = {str(run[2]["seed"]): run[0] for k, run in enumerate(runs) if k != kept}
    return checkpoint, history, summary, others


def _divergence(summaries: list[dict[str, Any]]) -> dict[str, Any]:
    """The variant diverged when any seed did: a learning rate that diverges on one seed
    is unstable, and the others' results would hide it."""
    diverged = [s for s in summaries if s.get("diverged")]
    if not diverged:
        return {}
    first = diverged[0]
    seed = f"seed {first['seed']}: " if len(summaries) > 1 else ""
    return {
        "diverged": True,
        "stop_reason": "diverged",
        "converged": False,
        "divergence_step": first["divergence_step"],
        "divergence_reason": f"{seed}{first['divergence_reason']}",
    }
