"""A backbone cut in two: the early stages, frozen, and the later stages, which train.

Partial fine-tuning (the ``finetune_top`` variant) computes the frozen early stages once
per photo and per augmented view, caches their output, and trains only the later stages
and the head on it. Both parts are built from the backbone's own modules (shared, not
copied), so training the later part trains the classifier the checkpoint stores.

No library cuts a backbone into a frozen prefix and a trainable suffix at stage
boundaries (timm's ``forward_intermediates`` returns stage outputs but cannot resume from
one), so the cut is made here for the families whose forward pass is the sequence of
their stages, and checked numerically against the backbone before use.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from transfer_study.errors import UserError


class BackboneCutError(UserError, ValueError):
    """The backbone cannot be cut into frozen and trainable stages as asked."""


@dataclass(frozen=True)
class CutBackbone:
    """A backbone as ``trainable(frozen(images)) == backbone(images)``.

    Attributes:
        frozen: The stem and the early stages (computed once per photo and view).
        trainable: The last ``trainable_stages`` stages and the final pooling.
        stages: How many stages the backbone has in all.
        trainable_stages: How many of them are in ``trainable``.
    """

    frozen: nn.Sequential
    trainable: nn.Sequential
    stages: int
    trainable_stages: int


def _efficientnet_parts(backbone: nn.Module) -> tuple[list[nn.Module], list[nn.Module], list]:
    # timm's EfficientNet / MobileNet-V2-like family (efficientnet_lite0 included):
    # forward = conv_stem, bn1, blocks, conv_head, bn2, global_pool, dropout.
    tail = [backbone.conv_head, backbone.bn2, backbone.global_pool]
    if getattr(backbone, "drop_rate", 0.0):
        tail.append(nn.Dropout(backbone.drop_rate))
    return [backbone.conv_stem, backbone.bn1], list(backbone.blocks), tail


def _resnet_parts(backbone: nn.Module) -> tuple[list[nn.Module], list[nn.Module], list]:
    # torchvision's and timm's ResNet family: stem, layer1..layer4, global pooling.
    activation = backbone.relu if hasattr(backbone, "relu") else backbone.act1
    stem = [backbone.conv1, backbone.bn1, activation, backbone.maxpool]
    layers = [getattr(backbone, f"layer{i}") for i in range(1, 5)]
    if hasattr(backbone, "global_pool"):  # timm: pools and flattens
        return stem, layers, [backbone.global_pool]
    return stem, layers, [backbone.avgpool, nn.Flatten(1)]


def _parts(backbone: nn.Module, name: str) -> tuple[list[nn.Module], list[nn.Module], list]:
    names = {child for child, _ in backbone.named_children()}
    if {"conv_stem", "bn1", "blocks", "conv_head", "bn2", "global_pool"} <= names:
        return _efficientnet_parts(backbone)
    if {"conv1", "bn1", "maxpool", "layer1", "layer4"} <= names:
        return _resnet_parts(backbone)
    raise BackboneCutError(
        f"Partial fine-tuning cannot cut backbone '{name}' into stages: it knows timm's "
        "EfficientNet family (efficientnet_lite0, efficientnet_b0, ...) and the ResNet "
        "family (resnet18, resnet50, ...). Fine-tune it whole (the finetune variant)."
    )


def cut_backbone(backbone: nn.Module, name: str, trainable_stages: int) -> CutBackbone:
    """Cuts ``backbone`` so that its last ``trainable_stages`` stages train.

    Args:
        backbone: A classifier's backbone (images to pooled features).
        name: Its name, for messages.
        trainable_stages: How many of its last stages train (the final convolution and
            pooling after them always do; the stem never does).

    Returns:
        The two parts, sharing the backbone's modules.

    Raises:
        BackboneCutError: If the family is not known, ``trainable_stages`` is not below
            the number of stages, or the two parts do not compute what the backbone does.
    """
    stem, stages, tail = _parts(backbone, name)
    if not 1 <= trainable_stages < len(stages):
        raise BackboneCutError(
            f"trainable_stages is {trainable_stages}, but backbone '{name}' has "
            f"{len(stages)} stages: choose 1 to {len(stages) - 1} (all of them is the "
            "finetune variant)."
        )
    cut = len(stages) - trainable_stages
    parts = CutBackbone(
        frozen=nn.Sequential(*stem, *stages[:cut]),
        trainable=nn.Sequential(*stages[cut:], *tail),
        stages=len(stages),
        trainable_stages=trainable_stages,
    )
    _check_equivalent(backbone, parts, name)
    return parts


@torch.no_grad()
def _check_equivalent(backbone: nn.Module, parts: CutBackbone, name: str) -> None:
    """Refuses a cut whose two parts do not compute the backbone's features."""
    was_training = backbone.training
    backbone.eval()
    try:
        images = torch.randn(2, 3, 64, 64, generator=torch.Generator().manual_seed(0))
        device = next(backbone.parameters()).device
        images = images.to(device)
        whole = backbone(images)
        cut = parts.trainable(parts.frozen(images))
    finally:
        backbone.train(was_training)
    if whole.shape != cut.shape or not torch.allclose(whole, cut, rtol=1e-4, atol=1e-4):
        raise BackboneCutError(
            f"Backbone '{name}' does not compute its features as the sequence of its "
            "stages, so it cannot be fine-tuned partially; fine-tune it whole."
        )
