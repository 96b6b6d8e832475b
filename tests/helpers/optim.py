"""Optimisers and schedules built from a variant-like block of settings, for tests."""

from __future__ import annotations

import torch
from torch import nn

from transfer_study.training.optim import create_optimizer, create_scheduler


def make_optimizer(
    *, head: nn.Module, backbone: nn.Module | None, params: dict
) -> torch.optim.Optimizer:
    """``create_optimizer`` from a variant-like block of settings."""
    return create_optimizer(
        params["optimizer"],
        head=head,
        backbone=backbone,
        lr=params["lr"],
        weight_decay=params["weight_decay"],
        momentum=params["momentum"],
        backbone_lr_multiplier=params["backbone_lr_multiplier"],
    )


def make_scheduler(optimizer: torch.optim.Optimizer, params: dict, *, max_steps: int):
    """``create_scheduler`` from a variant-like block of settings."""
    return create_scheduler(
        optimizer,
        params["scheduler"],
        max_steps=max_steps,
        step_size=params["step_size"],
        gamma=params["gamma"],
        plateau_patience=params.get("plateau_patience", 2),
    )
