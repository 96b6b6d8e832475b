"""Evaluating a trained checkpoint on the test split, rebuilt as a user would load it."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import Any

import pandas as pd
import torch
from matplotlib.figure import Figure

from transfer_study.config import EvaluationSettings
from transfer_study.evaluation.figures import confusion_matrix_figure
from transfer_study.evaluation.metrics import classification_metrics
from transfer_study.models.checkpoint import rebuild_classifier
from transfer_study.models.preprocessing import Preprocessing
from transfer_study.models.transforms import build_eval_transform
from transfer_study.training.data import _image_loader
from transfer_study.training.device import _device_settings
from transfer_study.training.image_cache import select_image_cache
from transfer_study.training.loops import predict_logits

logger = logging.getLogger(__name__)


def evaluate_on_test(
    checkpoint: Mapping[str, Any],
    decoded_images: Mapping[str, Callable[[], dict]],
    split: pd.DataFrame,
    settings: EvaluationSettings,
) -> tuple[pd.DataFrame, dict[str, float], Figure]:
    """Evaluates a checkpoint on the test split, rebuilt as a user would load it.

    Args:
        checkpoint: The trained variant's checkpoint.
        decoded_images: The decoded-image cache.
        split: The split table.
        settings: The ``evaluation`` parameters: ``confidence``, ``bootstrap_resamples``,
            ``bootstrap_seed``, ``batch_size``, ``top_k``, ``device``.

    Returns:
        Per-photo predictions (``path,sample_id,label,predicted,prob_<class>…``), the
        metrics (accuracy with a cluster-bootstrap CI over physical samples, balanced
        accuracy, per-class precision/recall/F1, ROC-AUC or top-k) and the confusion
        matrix figure.
    """
    model, metadata = rebuild_classifier(checkpoint)
    class_names = metadata["class_names"]
    spec = Preprocessing.from_dict(metadata["preprocessing"])
    device = _device_settings(settings.device, channels_last=True, amp=True)
    model = model.to(device.device, memory_format=torch.channels_last)
    test = split[split["split"] == "test"].reset_index(drop=True)
    cache = select_image_cache(decoded_images, split, spec)
    loader = _image_loader(
        cache,
        test,
        class_names,
        build_eval_transform(preprocessing=spec),
        batch_size=settings.batch_size,
        num_workers=0,
        shuffle=False,
        generator=torch.Generator(),
        settings=device,
    )
    logits, labels = predict_logits(model, loader, device)
    probabilities = torch.softmax(logits, dim=1).numpy()
    predicted = probabilities.argmax(axis=1)
    y_true = labels.numpy()
    metrics = classification_metrics(
        y_true,
        predicted,
        probabilities,
        class_names,
        groups=test["sample_id"].to_numpy(),
        confidence=settings.confidence,
        n_resamples=settings.bootstrap_resamples,
        seed=settings.bootstrap_seed,
        top_k=tuple(settings.top_k),
    )
    predictions = pd.DataFrame(
        {
            "path": test["path"],
            "sample_id": test["sample_id"],
            "label": test["label"],
            "predicted": [class_names[i] for i in predicted],
            **{f"prob_{name}": probabilities[:, i] for i, name in enumerate(class_names)},
        }
    )
    variant = metadata.get("variant", "")
    title = f"{variant} ({metadata['backbone']}): test accuracy {metrics['accuracy']:.1%}"
    figure = confusion_matrix_figure(y_true, predicted, class_names, title=title)
    logger.info(
        "%s test accuracy %.3f [%.3f, %.3f]",
        metadata.get("variant"),
        metrics["accuracy"],
        metrics["accuracy_ci_low"],
        metrics["accuracy_ci_high"],
    )
    return predictions, {k: float(v) for k, v in metrics.items()}, figure
