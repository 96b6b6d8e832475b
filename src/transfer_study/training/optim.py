"""Optimisers and learning-rate schedules chosen by name, with parameter groups."""

from __future__ import annotations

from collections.abc import Mapping
from functools import partial
from typing import Any

import timm.optim
import torch
from torch import nn

from transfer_study.training.fitting import Schedule

# Our names to timm's: our "sgd" is classical momentum (timm's "sgd" adds Nesterov).
_OPTIMIZERS = {"sgd": "momentum", "adam": "adam", "adamw": "adamw"}
_SCHEDULERS = ("none", "plateau", "step", "cosine", "onecycle")


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
    """Builds the optimiser with timm: head groups and, if the backbone trains, backbone groups.

    The backbone's learning rate is ``lr × backbone_lr_multiplier`` (discriminative
    learning rates, as in fastai's ``fine_tune`` and Lightning's ``BackboneFinetuning``).
    timm's ``param_groups_weight_decay`` splits each module's parameters so that norm and
    bias parameters (all 1-d ones) get no weight decay. Parameters with
    ``requires_grad=False`` are left out, so create the optimiser while the backbone is
    trainable when it is to train later: ``fit``'s head warm-up then freezes it, and torch
    optimisers skip parameters without gradients until it is unfrozen.

    Args:
        name: ``sgd``, ``adam`` or ``adamw``.
        head: The classification head.
        backbone: The backbone, or ``None`` when it is never trained.
        lr: The head's learning rate.
        weight_decay: Weight decay of every group.
        momentum: SGD's momentum (ignored by the others).
        backbone_lr_multiplier: The backbone's learning rate is ``lr`` times this.

    Returns:
        The optimiser; the head's groups come first.

    Raises:
        ValueError: For an unknown optimiser name.
    """
    name = name.lower()
    momentum = momentum if name == "sgd" else 0.0  # timm passes it to sgd only
    multiplier = backbone_lr_multiplier if backbone is not None else 1.0
    if name not in _OPTIMIZERS:
        raise ValueError(f"Unknown optimizer '{name}'; choose one of {sorted(_OPTIMIZERS)}.")
    modules = nn.ModuleDict(
        {"head": head} if backbone is None else {"head": head, "backbone": backbone}
    )
    return timm.optim.create_optimizer_v2(
        modules,
        opt=_OPTIMIZERS[name],
        lr=lr,
        weight_decay=weight_decay,
        momentum=momentum,
        param_group_fn=partial(
            _param_groups, lrs={"head": lr, "backbone": lr * multiplier}, weight_decay=weight_decay
        ),
    )


def _param_groups(
    modules: nn.ModuleDict, *, lrs: Mapping[str, float], weight_decay: float
) -> list[dict[str, Any]]:
    """Each module's trainable parameters, split by timm into decay and no-decay groups."""
    groups = []
    for name, module in modules.items():
        no_decay = getattr(module, "no_weight_decay", set)()  # timm models name e.g. pos_embed
        split = timm.optim.param_groups_weight_decay(
            module, weight_decay=weight_decay, no_weight_decay_list=no_decay
        )
        groups += [{**group, "name": name, "lr": lrs[name]} for group in split]
    return groups


def create_scheduler(
    optimizer: torch.optim.Optimizer,
    name: str,
    *,
    max_steps: int,
    step_size: int,
    gamma: float,
    plateau_patience: int,
) -> Schedule | None:
    """Builds the learning-rate schedule and says when ``fit`` steps it.

    Args:
        optimizer: The optimiser it drives.
        name: ``none``, ``plateau``, ``step``, ``cosine`` or ``onecycle``.
        max_steps: The budget's cap: cosine and one-cycle anneal over it.
        step_size: ``step`` only: epochs between decays.
        gamma: ``step`` and ``plateau``: the decay factor.
        plateau_patience: ``plateau`` only: validations without improvement before the
            learning rate decays.

    Returns:
        The schedule, or ``None`` for ``none``.

    Raises:
        ValueError: For an unknown schedule name.
    """
    name = name.lower()
    if name not in _SCHEDULERS:
        raise ValueError(f"Unknown scheduler '{name}'; choose one of {list(_SCHEDULERS)}.")
    if name == "none":
        return None
    if name == "plateau":
        # torch decays after `patience` bad validations *plus one*; ours counts them all.
        scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(
            optimizer, mode="max", factor=gamma, patience=plateau_patience - 1
        )
        return Schedule(scheduler, "validation")
    if name == "step":
        return Schedule(
            torch.optim.lr_scheduler.StepLR(optimizer, step_size=step_size, gamma=gamma), "epoch"
        )
    if name == "cosine":
        return Schedule(
            torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=max(max_steps, 1)), "batch"
        )
    max_lrs = [group["lr"] for group in optimizer.param_groups]
    scheduler = torch.optim.lr_scheduler.OneCycleLR(
        optimizer, max_lr=max_lrs, total_steps=max(max_steps, 2)
    )
    return Schedule(scheduler, "batch")
