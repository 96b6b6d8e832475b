"""Evaluating a trained checkpoint on the test split, rebuilt as a user would load it."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import numpy as np
import pandas as pd
import torch
from matplotlib.figure import Figure

from transfer_study.config import EvaluationSettings
from transfer_study.evaluation.figures import confusion_matrix_figure
from transfer_study.evaluation.learning_curve import seed_pooled_accuracy
from transfer_study.evaluation.metrics import classification_metrics
from transfer_study.models.checkpoint import rebuild_classifier
from transfer_study.models.preprocessing import Preprocessing
from transfer_study.models.transforms import build_eval_transform
from transfer_study.models.tta import TTA_NONE, tta_probabilities
from transfer_study.training.data import _image_loader
from transfer_study.training.device import DeviceSettings, _device_settings
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
            ``bootstrap_seed``, ``batch_size``, ``top_k``, ``device``, ``tta`` (the
            probabilities are then the mean softmax over ``transfer_study.models.tta``'s
            views; ``none`` = one view, the photo as validated).

    Returns:
        Per-photo predictions (``path,sample_id,label,predicted,prob_<class>…``), the
        metrics (accuracy with a cluster-bootstrap CI over physical samples, balanced
        accuracy, per-class precision/recall/F1, ROC-AUC or top-k) and the confusion
        matrix figure.
    """
    model, metadata = rebuild_classifier(checkpoint)
    class_names = metadata["class_names"]
    device = _device_settings(settings.device, channels_last=True, amp=True)
    model = model.to(device.device, memory_format=torch.channels_last)
    test = split[split["split"] == "test"].reset_index(drop=True)
    loader = _test_loader(metadata, decoded_images, split, settings.batch_size, device)
    if settings.tta == TTA_NONE:
        logits, labels = predict_logits(model, loader, device)
        probabilities = torch.softmax(logits, dim=1).numpy()
    else:
        probabilities, labels = _tta_probabilities(model, loader, device, settings.tta)
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
        "%s test accuracy %.3f [%.3f, %.3f] (tta: %s)",
        metadata.get("variant"),
        metrics["accuracy"],
        metrics["accuracy_ci_low"],
        metrics["accuracy_ci_high"],
        settings.tta,
    )
    return predictions, {k: float(v) for k, v in metrics.items()}, figure


@torch.inference_mode()
def _tta_probabilities(
    model: torch.nn.Module, loader: torch.utils.data.DataLoader, device: DeviceSettings, tta: str
) -> tuple[np.ndarray, torch.Tensor]:
    """``predict_logits`` with test-time augmentation: each batch's mean softmax over its
    views (made on the device, averaged in float32), with the labels, in loader order."""
    model.eval()

    def logits_of(view: torch.Tensor) -> torch.Tensor:
        with device.autocast():
            return model(device.to_device(view))

    all_probabilities, all_labels = [], []
    for inputs, labels in loader:
        probabilities = tta_probabilities(logits_of, device.to_device(inputs), tta)
        all_probabilities.append(probabilities.cpu())
        all_labels.append(labels)
    return torch.cat(all_probabilities).numpy(), torch.cat(all_labels)


def _test_loader(
    metadata: Mapping[str, Any],
    decoded_images: Mapping[str, Callable[[], dict]],
    split: pd.DataFrame,
    batch_size: int,
    device: DeviceSettings,
) -> torch.utils.data.DataLoader:
    """The test photos, preprocessed as the checkpoint expects, in the split's order."""
    spec = Preprocessing.from_dict(metadata["preprocessing"])
    return _image_loader(
        select_image_cache(decoded_images, split, spec),
        split[split["split"] == "test"].reset_index(drop=True),
        list(metadata["class_names"]),
        build_eval_transform(preprocessing=spec),
        batch_size=batch_size,
        num_workers=0,
        shuffle=False,
        generator=torch.Generator(),
        settings=device,
    )


def batches_of_test_photos(
    checkpoint: Mapping[str, Any],
    decoded_images: Mapping[str, Callable[[], dict]],
    split: pd.DataFrame,
    batch_size: int,
) -> Iterator[torch.Tensor]:
    """The test photos as the checkpoint's model takes them (float32, on the CPU), in
    batches: what another runtime is checked against (an ONNX export)."""
    cpu = _device_settings("cpu", channels_last=False, amp=False)
    for images, _ in _test_loader(checkpoint["metadata"], decoded_images, split, batch_size, cpu):
        yield images.float()


def evaluate_over_seeds(
    checkpoint: Mapping[str, Any],
    other_seeds: Mapping[str, Mapping[str, Any]],
    decoded_images: Mapping[str, Callable[[], dict]],
    split: pd.DataFrame,
    settings: EvaluationSettings,
) -> tuple[pd.DataFrame, dict[str, float], Figure]:
    """``evaluate_on_test`` of the kept model; with other seeds' models, the accuracy and
    its interval become the mean over every seed with a two-level bootstrap interval.

    Args:
        checkpoint: The kept model (the seed with the best validation metric).
        other_seeds: The other seeds' checkpoints by seed; empty with one seed.
        decoded_images: The decoded-image cache.
        split: The split table.
        settings: The ``evaluation`` parameters.

    Returns:
        The kept model's predictions and confusion matrix, and the metrics: the kept
        model's, with ``accuracy``, ``accuracy_ci_low`` and ``accuracy_ci_high`` over
        every seed when there are several, the kept model's own accuracy as
        ``accuracy_kept_seed`` and the number of seeds as ``n_seeds``.
    """
    predictions, metrics, figure = evaluate_on_test(checkpoint, decoded_images, split, settings)
    metrics["n_seeds"] = 1 + len(other_seeds)
    if not other_seeds:
        return predictions, metrics, figure
    correct = [(predictions["label"] == predictions["predicted"]).to_numpy()]
    for other in other_seeds.values():
        other_predictions, _, _ = evaluate_on_test(other, decoded_images, split, settings)
        correct.append((other_predictions["label"] == other_predictions["predicted"]).to_numpy())
    mean, low, high = seed_pooled_accuracy(
        np.stack(correct),
        predictions["sample_id"].to_numpy(),
        confidence=settings.confidence,
        n_resamples=settings.bootstrap_resamples,
        seed=settings.bootstrap_seed,
    )
    metrics["accuracy_kept_seed"] = metrics["accuracy"]
    metrics |= {"accuracy": mean, "accuracy_ci_low": low, "accuracy_ci_high": high}
    logger.info(
        "%s test accuracy over %d seeds %.3f [%.3f, %.3f]",
        checkpoint["metadata"].get("variant", ""),
        len(correct),
        mean,
        low,
        high,
    )
    return predictions, metrics, figure
