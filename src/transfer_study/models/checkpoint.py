"""Checkpoints: a ``state_dict`` plus everything needed to rebuild and feed the model.

Only tensors and plain Python values are stored, so a checkpoint loads with
``torch.load(..., weights_only=True)`` in any later PyTorch, without this project's
classes being importable.
"""

from __future__ import annotations

import platform
from collections.abc import Mapping
from typing import Any

import timm
import torch
import torchvision

from .factory import Classifier, create_classifier
from .preprocessing import WEIGHTS_NONE, Preprocessing

CHECKPOINT_FORMAT = "transfer-study-classifier/1"


def make_checkpoint(
    model: Classifier,
    *,
    backbone: str,
    weights: str,
    head: Mapping[str, Any] | None,
    class_names: list[str],
    preprocessing: Preprocessing,
    extra: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Bundles a trained classifier's weights with what is needed to use it.

    Args:
        model: The trained classifier.
        backbone: Backbone name it was built with.
        weights: Where its initial weights came from.
        head: The head specification.
        class_names: Class names in output order.
        preprocessing: Input size and normalisation the model expects.
        extra: More metadata (variant, seed, best epoch, …).

    Returns:
        ``{"format", "state_dict", "metadata"}``.
    """
    state_dict = {name: tensor.detach().cpu() for name, tensor in model.state_dict().items()}
    metadata = {
        "backbone": backbone,
        "weights": weights,
        "head": dict(head or {}),
        "class_names": list(class_names),
        "preprocessing": preprocessing.to_dict(),
        "versions": {
            "torch": str(torch.__version__),
            "torchvision": str(torchvision.__version__),
            "timm": str(timm.__version__),
            "python": platform.python_version(),
        },
        **dict(extra or {}),
    }
    return {"format": CHECKPOINT_FORMAT, "state_dict": state_dict, "metadata": metadata}


def rebuild_classifier(checkpoint: Mapping[str, Any]) -> tuple[Classifier, dict[str, Any]]:
    """Rebuilds the classifier from a checkpoint, in eval mode.

    Args:
        checkpoint: As made by ``make_checkpoint`` (e.g. loaded with ``weights_only=True``).

    Returns:
        The model and the checkpoint's metadata.

    Raises:
        ValueError: If the checkpoint is not in this format.
    """
    if checkpoint.get("format") != CHECKPOINT_FORMAT:
        raise ValueError(
            f"Not a transfer-study checkpoint (format {checkpoint.get('format')!r}, expected "
            f"{CHECKPOINT_FORMAT!r})."
        )
    metadata = checkpoint["metadata"]
    model = create_classifier(
        metadata["backbone"],
        weights=WEIGHTS_NONE,  # the state dict below replaces every weight
        num_classes=len(metadata["class_names"]),
        head=metadata["head"] or None,
    )
    model.load_state_dict(checkpoint["state_dict"])
    return model.eval(), dict(metadata)
