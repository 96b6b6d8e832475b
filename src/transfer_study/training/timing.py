"""How long a study will take on this machine, from a short timing of a few training steps,
said before the first training so that a user can stop and choose a smaller study."""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

import torch

from transfer_study.config import ModelSettings, TrainingSettings
from transfer_study.models.factory import create_classifier
from transfer_study.models.stages import cut_backbone
from transfer_study.training.device import (
    DeviceSettings,
    _device_settings,
    _memory_format,
)

# Epochs a variant typically needs before early stopping ends it (our development sets:
# the demo photos and the tutorial's ants and bees): a rough guide, not a promise.
TYPICAL_EPOCHS = {"pretrained": 15, "scratch": 25}
# A validation photo costs about a third of a training photo (no backward pass).
VALIDATION_COST = 1 / 3
# Studies expected to take longer than this get advice on making them shorter.
LONG_STUDY_SECONDS = 30 * 60
_TIMED_STEPS = 3


def training_images_per_second(
    model: ModelSettings, input_size: int, settings: TrainingSettings, num_classes: int
) -> float:
    """Times a few full training steps (forward, backward, update) on random images; for
    a partial fine-tune (``trainable_stages``), steps of its later stages and head on the
    early stages' output, which is what it trains on.

    Args:
        model: The backbone.
        input_size: The input side in pixels.
        settings: Batch size, device, memory format, mixed precision, trainable stages.
        num_classes: Outputs of the head.

    Returns:
        Training images per second on this machine.
    """
    device = _device_settings(
        settings.device, channels_last=settings.channels_last, amp=settings.amp
    )
    classifier = create_classifier(
        model.backbone, weights="none", num_classes=num_classes, head={"type": "linear"}
    ).to(device.device, memory_format=_memory_format(device))
    inputs = torch.randn(settings.batch_size, 3, input_size, input_size)
    trained: torch.nn.Module = classifier
    if settings.trainable_stages is not None:
        cut = cut_backbone(classifier.backbone, model.backbone, settings.trainable_stages)
        with torch.no_grad():
            inputs = cut.frozen.eval()(device.to_device(inputs))
        trained = torch.nn.Sequential(cut.trainable, classifier.head)
    return _timed_steps(trained, device.to_device(inputs), settings.batch_size, device)


def _timed_steps(
    trained: torch.nn.Module, inputs: torch.Tensor, batch_size: int, device: DeviceSettings
) -> float:
    optimizer = torch.optim.AdamW(trained.parameters(), lr=1e-4)
    labels = torch.zeros(batch_size, dtype=torch.long, device=device.device)
    trained.train()
    seconds = 0.0
    for step in range(_TIMED_STEPS + 1):  # the first step pays one-off costs: not timed
        started = time.perf_counter()
        with device.autocast():
            loss = torch.nn.functional.cross_entropy(trained(inputs), labels)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        if device.device.type == "cuda":
            torch.cuda.synchronize()
        seconds += (time.perf_counter() - started) if step else 0.0
    return _TIMED_STEPS * batch_size / seconds


def estimate_image_variant(
    settings: TrainingSettings, images_per_second: float, n_train: int, n_val: int
) -> dict[str, Any]:
    """Expected and worst-case seconds of one end-to-end variant (scratch or fine-tune).

    Args:
        settings: The variant's settings (lr search, cap, minimum steps).
        images_per_second: Measured training speed.
        n_train: Training photos.
        n_val: Validation photos.

    Returns:
        ``expected_seconds`` (range test + typical epochs to convergence) and
        ``cap_seconds`` (range test + the training cap).
    """
    kind = "scratch" if settings.weights == "none" else "pretrained"
    search = settings.lr_search.steps * settings.batch_size if settings.lr == "auto" else 0
    minimum = settings.min_steps * settings.batch_size
    typical = max(TYPICAL_EPOCHS[kind] * n_train, minimum)
    cap = max(settings.max_images, minimum)

    def seconds(images: int) -> float:
        validations = images / max(n_train, 1)
        return (images + search + validations * n_val * VALIDATION_COST) / images_per_second

    return {
        "variant": settings.name,
        "expected_seconds": round(seconds(min(typical, cap))),
        "cap_seconds": round(seconds(cap)),
    }


def advice(expected_seconds: float, input_size: int, on_gpu: bool) -> str | None:
    """How to make a study shorter, when it is expected to take long."""
    if expected_seconds <= LONG_STUDY_SECONDS:
        return None
    smaller = max(32, input_size // 32 * 32 - 64)
    hints = [
        f"a smaller input (--params=model.image_size={smaller})",
        "fewer variants (study.variants in conf/local/parameters_training.yml, e.g. "
        "[frozen, finetune])",
    ]
    if not on_gpu:
        hints.append("a machine with a GPU (it is picked automatically)")
    return "To make it shorter: " + "; ".join(hints) + "."


def study_time_estimate(variants: Mapping[str, dict[str, Any]]) -> dict[str, float]:
    """Totals of the per-variant estimates."""
    return {
        "expected_seconds": sum(v["expected_seconds"] for v in variants.values()),
        "cap_seconds": sum(v["cap_seconds"] for v in variants.values()),
    }
