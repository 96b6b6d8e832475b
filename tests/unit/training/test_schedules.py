"""Optimisers and schedules by name: parameter groups and learning-rate trajectories."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from tests.helpers.optim import make_optimizer, make_scheduler

LR = 0.1
MULTIPLIER = 0.1
MAX_STEPS = 4
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
    assert make_scheduler(optimizer, _params(scheduler="none"), max_steps=MAX_STEPS) is None


def test_step_schedule_multiplies_the_lr_by_gamma_every_step_size_epochs():
    params = _params(scheduler="step", step_size=2, gamma=0.5)
    optimizer = _optimizer(**params)
    schedule = make_scheduler(optimizer, params, max_steps=MAX_STEPS)
    assert schedule.mode == "epoch"
    head = [lrs["head"] for lrs in _trajectory(optimizer, schedule.scheduler, 4)]
    assert head == pytest.approx([LR, LR, LR / 2, LR / 2, LR / 4])


def test_cosine_schedule_anneals_every_group_to_zero_over_the_cap():
    params = _params(scheduler="cosine")
    optimizer = _optimizer(**params)
    schedule = make_scheduler(optimizer, params, max_steps=MAX_STEPS)
    assert schedule.mode == "batch"
    lrs = _trajectory(optimizer, schedule.scheduler, MAX_STEPS)
    expected = [LR * (1 + math.cos(math.pi * t / MAX_STEPS)) / 2 for t in range(MAX_STEPS + 1)]
    assert [step["head"] for step in lrs] == pytest.approx(expected, abs=1e-12)
    assert [step["backbone"] for step in lrs] == pytest.approx(
        [lr * MULTIPLIER for lr in expected], abs=1e-12
    )


def test_onecycle_steps_per_batch_and_peaks_at_each_groups_own_lr():
    params = _params(scheduler="onecycle")
    optimizer = _optimizer(**params)
    total = 10
    schedule = make_scheduler(optimizer, params, max_steps=total)
    assert schedule.mode == "batch"
    lrs = _trajectory(optimizer, schedule.scheduler, total - 1)
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
        match=r"Unknown scheduler 'warmup'; choose one of "
        r"\['none', 'plateau', 'step', 'cosine', 'onecycle'\]",
    ):
        make_scheduler(_optimizer(), _params(scheduler="warmup"), max_steps=MAX_STEPS)


def test_plateau_schedule_decays_every_group_after_its_patience_in_validations():
    params = _params(scheduler="plateau", plateau_patience=2, gamma=0.5)
    optimizer = _optimizer(**params)
    schedule = make_scheduler(optimizer, params, max_steps=MAX_STEPS)
    assert schedule.mode == "validation"
    heads = []
    for metric in [0.5, 0.6, 0.6, 0.6, 0.6, 0.6]:  # improves once, then stays
        schedule.scheduler.step(metric)
        heads.append(_lrs(optimizer)["head"])
    # Two validations without improvement, then a decay; two more, another decay.
    assert heads == pytest.approx([LR, LR, LR, LR / 2, LR / 2, LR / 4])
    assert _lrs(optimizer)["backbone"] == pytest.approx(LR / 4 * MULTIPLIER)
