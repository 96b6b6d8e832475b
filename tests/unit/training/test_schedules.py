"""Optimisers and schedules by name: parameter groups and learning-rate trajectories."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from tests.helpers.optim import make_optimizer, make_scheduler

LR = 0.1
MULTIPLIER = 0.1
EPOCHS = 4
STEPS_PER_EPOCH = 3
# torch's OneCycleLR defaults: start at max_lr / 25, end at that / 1e4, peak after 30 %.
ONECYCLE_DIV_FACTOR = 25.0
ONECYCLE_FINAL_DIV_FACTOR = 1e4
ONECYCLE_PCT_START = 0.3


def _params(**overrides) -> dict:
    """An optimiser and schedule block as the variants' parameters give it."""
    return {
        "optimizer": "sgd",
        "lr": LR,
        "momentum": 0.9,
        "weight_decay": 0.0,
        "backbone_lr_multiplier": MULTIPLIER,
        "scheduler": "none",
        "step_size": 2,
        "gamma": 0.5,
        **overrides,
    }


def _optimizer(**overrides) -> torch.optim.Optimizer:
    torch.manual_seed(0)
    return make_optimizer(
        head=nn.Linear(3, 2), backbone=nn.Linear(4, 3), params=_params(**overrides)
    )


def _lrs(optimizer: torch.optim.Optimizer) -> dict[str, float]:
    return {group["name"]: group["lr"] for group in optimizer.param_groups}


def _trajectory(
    optimizer: torch.optim.Optimizer, scheduler: torch.optim.lr_scheduler.LRScheduler, steps: int
) -> list[dict[str, float]]:
    """Each group's lr before each of ``steps`` steps and after the last one."""
    lrs = [_lrs(optimizer)]
    for _ in range(steps):
        optimizer.step()
        scheduler.step()
        lrs.append(_lrs(optimizer))
    return lrs


def test_without_a_trained_backbone_there_is_only_the_head_group():
    optimizer = make_optimizer(head=nn.Linear(3, 2), backbone=None, params=_params())
    assert _lrs(optimizer) == {"head": LR}


def test_no_schedule_gives_no_scheduler():
    optimizer = _optimizer(scheduler="none")
    scheduler, per_batch = make_scheduler(
        optimizer, _params(scheduler="none"), epochs=EPOCHS, steps_per_epoch=STEPS_PER_EPOCH
    )
    assert scheduler is None
    assert per_batch is False


def test_step_schedule_multiplies_the_lr_by_gamma_every_step_size_epochs():
    params = _params(scheduler="step", step_size=2, gamma=0.5)
    optimizer = _optimizer(**params)
    scheduler, per_batch = make_scheduler(
        optimizer, params, epochs=EPOCHS, steps_per_epoch=STEPS_PER_EPOCH
    )
    assert per_batch is False
    head = [lrs["head"] for lrs in _trajectory(optimizer, scheduler, 4)]
    assert head == pytest.approx([LR, LR, LR / 2, LR / 2, LR / 4])


def test_cosine_schedule_anneals_every_group_to_zero_over_the_epochs():
    params = _params(scheduler="cosine")
    optimizer = _optimizer(**params)
    scheduler, per_batch = make_scheduler(
        optimizer, params, epochs=EPOCHS, steps_per_epoch=STEPS_PER_EPOCH
    )
    assert per_batch is False
    lrs = _trajectory(optimizer, scheduler, EPOCHS)
    expected = [LR * (1 + math.cos(math.pi * t / EPOCHS)) / 2 for t in range(EPOCHS + 1)]
    assert [step["head"] for step in lrs] == pytest.approx(expected, abs=1e-12)
    assert [step["backbone"] for step in lrs] == pytest.approx(
        [lr * MULTIPLIER for lr in expected], abs=1e-12
    )


def test_onecycle_steps_per_batch_and_peaks_at_each_groups_own_lr():
    params = _params(scheduler="onecycle")
    optimizer = _optimizer(**params)
    epochs, steps_per_epoch = 2, 5
    scheduler, per_batch = make_scheduler(
        optimizer, params, epochs=epochs, steps_per_epoch=steps_per_epoch
    )
    assert per_batch is True
    total = epochs * steps_per_epoch
    lrs = _trajectory(optimizer, scheduler, total - 1)
    head = [step["head"] for step in lrs]
    start = LR / ONECYCLE_DIV_FACTOR
    assert head[0] == pytest.approx(start)
    peak = round(ONECYCLE_PCT_START * total) - 1
    assert max(head) == pytest.approx(LR)
    assert head.index(max(head)) == peak
    assert head[:peak] == sorted(head[:peak])
    assert head[peak:] == sorted(head[peak:], reverse=True)
    assert head[-1] == pytest.approx(start / ONECYCLE_FINAL_DIV_FACTOR)
    for step in lrs:  # the backbone keeps its discriminative learning rate all along
        assert step["backbone"] == pytest.approx(step["head"] * MULTIPLIER)


def test_an_unknown_schedule_is_refused_with_the_choices():
    with pytest.raises(
        ValueError,
        match=r"Unknown scheduler 'warmup'; choose one of \['none', 'step', 'cosine', 'onecycle'\]",
    ):
        make_scheduler(_optimizer(), _params(scheduler="warmup"), epochs=EPOCHS, steps_per_epoch=1)
