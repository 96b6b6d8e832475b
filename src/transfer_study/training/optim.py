"""Optimisers and learning-rate schedules chosen by name, with parameter groups."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

_OPTIMIZERS = {"sgd": torch.optim.SGD, "adam": torch.optim.Adam, "adamw": torch.optim.AdamW}
_SCHEDULERS = ("none", "step", "cosine", "onecycle")


def create_optimizer(
    name: str,
    *,
    head: nn.Module,
    backbone: nn.Module | None,
    lr: float,
    weight_decay: float,
    momentum: float,
    backbone_lr_multiplier: float,
) -> torch.optim.Optimizer:
    """Builds the optimiser: a head group and, if the backbone trains, a backbone group.

    The backbone group's learning rate is ``lr × backbone_lr_multiplier``
    (discriminative learning rates, as in fastai's ``fine_tune`` and Lightning's
    ``BackboneFinetuning``). During a head warm-up the backbone's parameters are in
    the optimiser but have ``requires_grad=False``; torch optimisers skip parameters
    without gradients, so they stay untouched until unfrozen, and schedules see every
    group from the start.

    Args:
        name: ``sgd``, ``adam`` or ``adamw``.
        head: The classification head.
        backbone: The backbone, or ``None`` when it is never trained.
        lr: The head's learning rate.
        weight_decay: Weight decay of every group.
        momentum: SGD's momentum (ignored by the others).
        backbone_lr_multiplier: The backbone's learning rate is ``lr`` times this.

    Returns:
        The optimiser.

    Raises:
        ValueError: For an unknown optimiser name.
    """
    name = name.lower()
    if name not in _OPTIMIZERS:
        raise ValueError(f"Unknown optimizer '{name}'; choose one of {sorted(_OPTIMIZERS)}.")
    options: dict[str, Any] = {"lr": lr, "weight_decay": weight_decay}
    if name == "sgd":
        options["momentum"] = momentum
    groups = [{"params": list(head.parameters()), "name": "head"}]
    if backbone is not None:
        backbone_lr = lr * backbone_lr_multiplier
        groups.append(
            {"params": list(backbone.parameters()), "name": "backbone", "lr": backbone_lr}
        )
    return _OPTIMIZERS[name](groups, **options)


def create_scheduler(
    optimizer: torch.optim.Optimizer,
    name: str,
    *,
    epochs: int,
    steps_per_epoch: int,
    step_size: int,
    gamma: float,
) -> tuple[torch.optim.lr_scheduler.LRScheduler | None, bool]:
    """Builds the learning-rate schedule.

    Args:
        optimizer: The optimiser it drives.
        name: ``none``, ``step``, ``cosine`` or ``onecycle``.
        epochs: Planned epochs.
        steps_per_epoch: Batches per epoch (one-cycle steps per batch).
        step_size: ``step`` only: epochs between decays.
        gamma: ``step`` only: the decay factor.

    Returns:
        The scheduler (or ``None``) and whether it steps per batch rather than per epoch.

    Raises:
        ValueError: For an unknown schedule name.
    """
    name = name.lower()
    if name not in _SCHEDULERS:
        raise ValueError(f"Unknown scheduler '{name}'; choose one of {list(_SCHEDULERS)}.")
    if name == "none":
        return None, False
    if name == "step":
        scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=step_size, gamma=gamma)
        return scheduler, False
    if name == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=max(epochs, 1)), False
    max_lrs = [group["lr"] for group in optimizer.param_groups]
    scheduler = torch.optim.lr_scheduler.OneCycleLR(
        optimizer, max_lr=max_lrs, epochs=max(epochs, 1), steps_per_epoch=max(steps_per_epoch, 1)
    )
    return scheduler, True
