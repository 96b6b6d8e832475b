"""Test-time augmentation (TTA): average the softmax over several views of each photo.

A photo is classified once per view and the class probabilities are averaged, which
smooths out what one framing of the photo gets wrong. The views are made from the model
input, i.e. after the eval transform (resize, centre crop, normalisation): that keeps
the pixels the model sees at test time exactly those it saw when validated, and makes
TTA a wrapper around any batch rather than another image pipeline. Flipping and
resizing a normalised tensor commute with the per-channel normalisation, so this is the
same as transforming the photo first.

Modes (``TTA_MODES``), for a batch of ``N`` photos of ``H x W`` pixels:

- ``none``: the batch itself (1 view).
- ``flip``: the batch and its horizontal mirror (2 views).
- ``flip+crops``: the classic ten-crop adapted to an input that is already a centre
  crop: the batch, the four corner crops and the centre crop of side
  ``round(0.875 * H) x round(0.875 * W)`` (each resized back to ``H x W``, bilinear with
  antialiasing), and the horizontal mirror of each of those 6 (12 views).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal, get_args

import torch
from torchvision.transforms.v2 import functional as F

__all__ = ["TTA_MODES", "TTA_NONE", "VIEWS_PER_MODE", "TtaMode", "tta_probabilities", "tta_views"]

# The values of transfer_study.config's TtaMode, which the parameter models use (a test
# checks they agree). Not imported from there: this module is part of the MLflow model
# (through the predictor), which ships neither pydantic nor the config package.
TtaMode = Literal["none", "flip", "flip+crops"]
TTA_MODES: tuple[str, ...] = get_args(TtaMode)  # ("none", "flip", "flip+crops")
TTA_NONE: TtaMode = "none"
# Side of each crop as a share of the input's side: 224 of 256, the ratio of the usual
# ImageNet resize-then-crop, so a crop drops about as much as the centre crop did.
CROP_FRACTION = 0.875
VIEWS_PER_MODE = {"none": 1, "flip": 2, "flip+crops": 12}


def tta_views(batch: torch.Tensor, mode: str) -> list[torch.Tensor]:
    """The views of a model-input batch that ``mode`` averages over.

    Args:
        batch: ``(N, C, H, W)``, already through the eval transform.
        mode: One of ``TTA_MODES``.

    Returns:
        ``VIEWS_PER_MODE[mode]`` tensors shaped like ``batch``, on its device, in the
        order of the module docstring (the unchanged batch first).

    Raises:
        ValueError: If ``mode`` is not one of ``TTA_MODES``.
    """
    if mode not in TTA_MODES:
        raise ValueError(f"Unknown tta mode {mode!r}; use one of {list(TTA_MODES)}.")
    if batch.dim() != 4:
        raise ValueError(f"Expected a (N, C, H, W) batch, got shape {tuple(batch.shape)}.")
    views = [batch]
    if mode == "flip+crops":
        views += _resized_crops(batch)
    if mode != TTA_NONE:
        views += [F.horizontal_flip(view) for view in views]
    return views


def _resized_crops(batch: torch.Tensor) -> list[torch.Tensor]:
    """The four corner crops and the centre crop, each resized back to the input size."""
    height, width = batch.shape[-2:]
    crop = [max(1, round(CROP_FRACTION * height)), max(1, round(CROP_FRACTION * width))]
    # five_crop: top-left, top-right, bottom-left, bottom-right, centre.
    return [F.resize(view, [height, width], antialias=True) for view in F.five_crop(batch, crop)]


def tta_probabilities(
    logits_of: Callable[[torch.Tensor], torch.Tensor], batch: torch.Tensor, mode: str
) -> torch.Tensor:
    """The mean softmax probability over the views of ``batch``.

    Probabilities, not logits, are averaged: each view then counts as one vote of
    confidence, and the result is still a distribution (rows sum to 1). The sum is kept
    in float32 on the batch's device so that mixed-precision logits lose nothing.

    Args:
        logits_of: Runs the model on one view (moving it, setting its memory format or
            autocast as the caller needs) and returns ``(N, classes)`` logits.
        batch: ``(N, C, H, W)`` model input, on the device the views should be made on.
        mode: One of ``TTA_MODES``; ``none`` is exactly ``softmax(logits_of(batch))``.

    Returns:
        ``(N, classes)`` float32 probabilities.
    """
    views = tta_views(batch, mode)
    total = torch.softmax(logits_of(views[0]).float(), dim=1)
    for view in views[1:]:
        total = total + torch.softmax(logits_of(view).float(), dim=1)
    return total if len(views) == 1 else total / len(views)
