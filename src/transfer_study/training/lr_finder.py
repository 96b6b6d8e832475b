"""Choosing a learning rate: the range test (Smith 2017, "Cyclical learning rates for
training neural networks"; fastai's ``lr_find``, Lightning's ``LearningRateFinder``).

Written here rather than taken from ``torch-lr-finder`` because that package sets every
parameter group to the same learning rate, which breaks the fine-tune's lower backbone
rate; Lightning's finder needs a Lightning Trainer. The rule is fastai's: the learning
rate rises exponentially from ``min_lr`` to ``max_lr`` over ``steps`` optimizer steps of a
fresh model, the loss is smoothed, the test stops once the loss diverges, and the choice
is a tenth of the learning rate at the lowest smoothed loss ("minimum / 10"), or, on a
flat curve, a tenth of the rate where the loss starts to rise. Candidates can instead
each be trained (to convergence where that is cheap, the frozen variant's head on cached
features; for a few steps from a probed fine-tune) and compared on validation.
"""

from __future__ import annotations

import copy
import logging
import math
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

import pandas as pd
import torch
from torch import nn
from torch.utils.data import DataLoader

from transfer_study.training.device import DeviceSettings
from transfer_study.training.fitting import FitResult
from transfer_study.training.loops import train_step

logger = logging.getLogger(__name__)

# An exponential moving average over ~10 steps: the test is short (tens of steps, where
# fastai's 100 steps use 0.98).
_SMOOTHING = 0.9
# The test stops when the smoothed loss exceeds this many times its minimum.
_DIVERGENCE_FACTOR = 4.0
# The choice: this fraction of the learning rate at the lowest smoothed loss.
_BELOW_MINIMUM = 0.1
# A curve whose smoothed loss never falls this share below its start is flat.
_MEANINGFUL_CHANGE = 0.1


@dataclass(frozen=True)
class RangeTestResult:
    """The range test's curve and its choice.

    Attributes:
        history: ``lr``, ``loss`` and ``smoothed_loss`` per step.
        lr_at_minimum: The learning rate at the lowest smoothed loss.
        suggested_lr: The choice: a tenth of ``lr_at_minimum``, within the tested range.
        diverged: Whether the test stopped early because the loss diverged.
    """

    history: pd.DataFrame
    lr_at_minimum: float
    suggested_lr: float
    diverged: bool


def lr_range_test(
    model: nn.Module,
    *,
    criterion: nn.Module,
    optimizer: torch.optim.Optimizer,
    train_loader: DataLoader,
    settings: DeviceSettings,
    min_lr: float,
    max_lr: float,
    steps: int,
) -> RangeTestResult:
    """Runs the range test and restores the model's and optimiser's state afterwards.

    Param groups keep their ratios: a group whose learning rate is a tenth of the first
    group's (the fine-tune's backbone) stays at a tenth of the tested rate.

    Args:
        model: The model in the state training starts from.
        criterion: The training loss.
        optimizer: The optimiser training will use (its learning rates set the ratios).
        train_loader: Training batches; cycled when shorter than ``steps``.
        settings: Device, memory format, mixed precision.
        min_lr: First learning rate of the first group.
        max_lr: Last learning rate of the first group.
        steps: Optimizer steps.

    Returns:
        The curve and the suggested learning rate.
    """
    saved_model = copy.deepcopy(model.state_dict())
    saved_optimizer = copy.deepcopy(optimizer.state_dict())
    base = optimizer.param_groups[0]["lr"]
    ratios = [group["lr"] / base for group in optimizer.param_groups]
    scaler = (
        torch.amp.GradScaler("cuda") if settings.amp and settings.device.type == "cuda" else None
    )
    rows, average, best = [], 0.0, math.inf
    model.train()
    batches = _forever(train_loader)
    diverged = False
    for step, batch in zip(range(steps), batches, strict=False):
        lr = min_lr * (max_lr / min_lr) ** (step / (steps - 1))
        for group, ratio in zip(optimizer.param_groups, ratios, strict=True):
            group["lr"] = lr * ratio
        loss, _, _ = train_step(model, criterion, optimizer, batch, settings, scaler)
        value = loss.item()
        if not math.isfinite(value):
            diverged = True
            break
        average = _SMOOTHING * average + (1 - _SMOOTHING) * value
        smoothed = average / (1 - _SMOOTHING ** (step + 1))  # bias-corrected, as fastai
        rows.append({"lr": lr, "loss": value, "smoothed_loss": smoothed})
        best = min(best, smoothed)
        if smoothed > _DIVERGENCE_FACTOR * best:
            diverged = True
            break
    model.load_state_dict(saved_model)
    optimizer.load_state_dict(saved_optimizer)
    history = pd.DataFrame(rows, columns=["lr", "loss", "smoothed_loss"])
    return _suggestion(history, min_lr, diverged)


def _forever(loader: DataLoader) -> Iterator:
    """The loader's batches, pass after pass (``itertools.cycle`` would keep them all)."""
    while len(loader):
        yield from loader


def _suggestion(history: pd.DataFrame, min_lr: float, diverged: bool) -> RangeTestResult:
    """fastai's "minimum / 10"; on a curve that never fell, a tenth of where it rose.

    A model that cannot learn much in a few steps (a network trained from scratch) gives
    a flat, noisy curve whose minimum is noise; the only signal is where the loss starts
    to rise, the point Smith's test looks for, and a tenth of it is a safe rate.
    """
    if history.empty:
        raise ValueError(
            "The learning-rate range test diverged at its first step: lower "
            "lr_search.min_lr, or set lr to a number."
        )
    smoothed = history["smoothed_loss"]
    lr_at_minimum = float(history.loc[smoothed.idxmin(), "lr"])
    start = float(smoothed.iloc[0])
    anchor = lr_at_minimum
    if smoothed.min() > (1 - _MEANINGFUL_CHANGE) * start:  # flat: the minimum is noise
        rising = history[smoothed > (1 + _MEANINGFUL_CHANGE) * start]
        if not rising.empty:
            anchor = float(rising["lr"].iloc[0])
    suggested = max(anchor * _BELOW_MINIMUM, min_lr)
    return RangeTestResult(history, lr_at_minimum, suggested, diverged)


def candidate_lrs(min_lr: float, max_lr: float, per_decade: int = 2) -> list[float]:
    """Learning rates from ``min_lr`` to ``max_lr``, ``per_decade`` per factor of ten."""
    count = max(round(math.log10(max_lr / min_lr) * per_decade), 1) + 1
    return [min_lr * (max_lr / min_lr) ** (i / (count - 1)) for i in range(count)]


def search_on_validation(
    train_with: Callable[[float], FitResult], candidates: Sequence[float]
) -> tuple[float, pd.DataFrame]:
    """Trains once per candidate learning rate and keeps the best on validation.

    Each candidate trains from the same start under the same budget (to convergence
    where training is cheap, a head on cached features; a few steps otherwise), so the
    choice is made on validation, the way the variants themselves are compared.

    Args:
        train_with: Trains from the same initial state with the given learning rate.
        candidates: Learning rates to try.

    Returns:
        The chosen learning rate (lowest validation loss, ties to the better validation
        metric, among the candidates that did not diverge if any) and one row per
        candidate: ``lr, val_metric, val_loss, steps, diverged``.
    """
    rows = []
    for lr in candidates:
        result = train_with(lr)
        best = result.best
        rows.append(
            {
                "lr": lr,
                "val_metric": best["val_metric"],
                "val_loss": best["val_loss"],
                "steps": int(result.history["step"].iloc[-1]),
                # Its best is from before it diverged: not what this lr trains to.
                "diverged": result.diverged,
            }
        )
    table = pd.DataFrame(rows)
    # The loss, not the metric: on a few dozen validation photos accuracy moves in steps of
    # one photo, and on the ants/bees photos (split 42) lr 0.32 beat 0.003 by one photo
    # while its validation loss was 3.45 against 0.13 (a head with exploded logits).
    ranked = table.sort_values(
        ["diverged", "val_loss", "val_metric"], ascending=[True, True, False], kind="stable"
    )
    return float(ranked["lr"].iloc[0]), table
