"""What one training did, as plain data: the training summary every variant writes
(``training_summary.json``, the checkpoint's extras, the MLflow run's parameters)."""

from __future__ import annotations

import hashlib
from typing import Any

import pandas as pd
import torch

from transfer_study.config import ModelSettings, TrainingSettings
from transfer_study.models.factory import count_parameters
from transfer_study.training.fitting import Budget, FitResult
from transfer_study.training.setup import TrainingSetup


def training_data_profile(split: pd.DataFrame) -> dict[str, Any]:
    """How much training data a run had, and a fingerprint of the whole split.

    Args:
        split: The split table the run trained on.

    Returns:
        ``n_samples`` (physical training samples), ``n_angles`` (most photos of one
        training sample), ``n_images`` (training photos) and ``split_fingerprint`` (a
        hash of every photo's path, sample and split, so two runs on the same split and
        subset share it).
    """
    train = split[split["split"] == "train"]
    rows = split[["path", "sample_id", "split"]].astype(str).sort_values("path")
    digest = hashlib.sha256(rows.to_csv(index=False).encode()).hexdigest()[:16]
    return {
        "n_samples": int(train["sample_id"].nunique()),
        "n_angles": int(train.groupby("sample_id").size().max()) if len(train) else 0,
        "n_images": len(train),
        "split_fingerprint": digest,
    }


def training_summary(
    setup: TrainingSetup,
    result: FitResult,
    budget: Budget,
    split: pd.DataFrame,
    settings: TrainingSettings,
    model: ModelSettings,
) -> dict[str, Any]:
    # What trained: the head (frozen), the later stages and head (partial), or everything.
    trainable, _ = count_parameters(setup.module)
    _, total = count_parameters(setup.classifier)
    history, best = result.history, result.best
    return {
        "variant": settings.name,
        "backbone": model.backbone,
        "weights": settings.weights,
        "seed": settings.seed,
        **training_data_profile(split),
        "lr": settings.lr,
        "metric": setup.metric,
        "train_seconds": round(result.seconds, 2),
        "steps": int(history["step"].iloc[-1]),
        "epochs_run": float(history["epoch"].iloc[-1]),
        "images_seen": int(history["images_seen"].iloc[-1]),
        "max_steps": budget.max_steps,
        "best_step": int(best["step"]),
        "best_epoch": float(best["epoch"]),
        "best_val_metric": float(best["val_metric"]),
        "best_val_accuracy": float(best["val_accuracy"]),
        "stop_reason": result.stop_reason,
        "converged": result.converged,
        # Stopped by the divergence rule (training/divergence.py): where and why.
        "diverged": result.diverged,
        "divergence_step": int(history["step"].iloc[-1]) if result.diverged else None,
        "divergence_reason": result.divergence,
        "trainable_stages": settings.trainable_stages,  # partial fine-tuning only
        # Progressive resizing: the sides trained at in turn (None: one side only).
        "input_sizes": list(setup.input_sizes) if len(setup.input_sizes) > 1 else None,
        # How it computed: the CPU settings are measured per machine (training/cpu_tuning.py).
        "device": setup.device.device.type,
        "precision": setup.device.precision,
        "channels_last": setup.device.channels_last,
        "threads": torch.get_num_threads(),
        "trainable_params": trainable,
        "total_params": total,
        # The resolved settings, as plain data: what MLflow records for this training.
        "parameters": {
            "model": model.model_dump(mode="json"),
            "training": settings.model_dump(mode="json"),
        },
    }
