"""Optimisers and learning-rate schedules chosen by name, with parameter groups."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

_OPTIMIZERS = {"sgd": torch.optim.SGD, "adam": torch.optim.Adam, "adamw": torch.optim.AdamW}
_SCHEDULERS = ("none", "step", "cosine", "onecycle")


def create_optimizer(
    *, head: nn.Module, backbone: nn.Module | None, params: Mapping[str, Any]
) -> torch.optim.Optimizer:
    """Builds the optimiser: a head group and, if the backbone trains, a backbone group.

    The backbone group's learning rate is ``lr × backbone_lr_multiplier``
    (discriminative learning rates, as in fastai's ``fine_tune`` and Lightning's
    ``BackboneFinetuning``). During a head warm-up the backbone's parameters are in
    the optimiser but have ``requires_grad=False``; torch optimisers skip parameters
    without gradients, so they stay untouched until unfrozen, and schedules see every
    group from the start.

    Args:
        head: The classification head.
        backbone: The backbone, or ``None`` when it is never trained.
        params: ``optimizer`` (sgd|adam|adamw), ``lr``, ``weight_decay``, ``momentum``
            (sgd), ``backbone_lr_multiplier``.

    Returns:
        The optimiser.

    Raises:
        ValueError: For an unknown optimiser name.
    """
    name = str(params["optimizer"]).lower()
    if name not in _OPTIMIZERS:
        raise ValueError(
            f"Unknown optimizer '{params['optimizer']}'; choose one of {sorted(_OPTIMIZERS)}."
        )
    lr = float(params["lr"])
    options: dict[str, Any] = {"lr": lr, "weight_decay": float(params["weight_decay"])}
    if name == "sgd":
        options["momentum"] = float(params["momentum"])
    groups = [{"params": list(head.parameters()), "name": "head"}]
    if backbone is not None:
        backbone_lr = lr * float(params["backbone_lr_multiplier"])
        groups.append(
            {"params": list(backbone.parameters()), "name": "backbone", "lr": backbone_lr}
        )
    return _OPTIMIZERS[name](groups, **options)


def create_scheduler(
    optimizer: torch.optim.Optimizer,
    params: Mapping[str, Any],
    *,
    epochs: int,
    steps_per_epoch: int,
) -> tuple[torch.optim.lr_scheduler.LRScheduler | None, bool]:
    """Builds the learning-rate schedule.

    Args:
        optimizer: The optimiser it drives.
        params: ``scheduler`` (none|step|cosine|onecycle) and its settings:
            ``step_size`` and ``gamma`` for step.
        epochs: Planned epochs.
        steps_per_epoch: Batches per epoch (one-cycle steps per batch).

    Returns:
        The scheduler (or ``None``) and whether it steps per batch rather than per epoch.

    Raises:
        ValueError: For an unknown schedule name.
    """
    name = str(params["scheduler"]).lower()
    if name not in _SCHEDULERS:
        raise ValueError(
            f"Unknown scheduler '{params['scheduler']}'; choose one of {list(_SCHEDULERS)}."
        )
    if name == "none":
        return None, False
    if name == "step":
        scheduler = torch.optim.lr_scheduler.StepLR(
            optimizer, step_size=int(params["step_size"]), gamma=float(params["gamma"])
        )
        return scheduler, False
    if name == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=max(epochs, 1)), False
    max_lrs = [group["lr"] for group in optimizer.param_groups]
    scheduler = torch.optim.lr_scheduler.OneCycleLR(
        optimizer, max_lr=max_lrs, epochs=max(epochs, 1), steps_per_epoch=max(steps_per_epoch, 1)
    )
    return scheduler, True
