"""Tiny trained-looking checkpoints for prediction tests: built in a blink, never downloaded."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from transfer_study.models.checkpoint import make_checkpoint
from transfer_study.models.factory import create_classifier
from transfer_study.models.preprocessing import pretrained_preprocessing, scaled_to_input_size

# timm's smallest EfficientNet (a few thousand parameters), at a small input size.
TINY_BACKBONE = "test_efficientnet"
TINY_INPUT_SIZE = 32
CLASS_NAMES = ("ant", "bee", "cat")
# A random head gives nearly uniform probabilities; scaled up, the classes differ clearly.
HEAD_SCALE = 25.0


def tiny_checkpoint(
    class_names: tuple[str, ...] = CLASS_NAMES, *, seed: int = 0, variant: str = "tiny"
) -> dict[str, Any]:
    """A checkpoint of a randomly initialised tiny classifier, as ``make_checkpoint`` makes."""
    torch.manual_seed(seed)
    model = create_classifier(TINY_BACKBONE, weights="none", num_classes=len(class_names))
    with torch.no_grad():
        for parameter in model.head.parameters():
            parameter.mul_(HEAD_SCALE)
    return make_checkpoint(
        model.eval(),
        backbone=TINY_BACKBONE,
        weights="none",
        head=None,
        class_names=list(class_names),
        preprocessing=scaled_to_input_size(
            pretrained_preprocessing(TINY_BACKBONE), TINY_INPUT_SIZE
        ),
        extra={"variant": variant},
    )


def save_tiny_checkpoint(path: Path, **kwargs: Any) -> Path:
    """Writes ``tiny_checkpoint(**kwargs)`` with ``torch.save``, as ``TorchDataset`` does."""
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(tiny_checkpoint(**kwargs), path)
    return path
