"""``fit``: training to convergence under a budget counted in optimizer steps.

Every variant and every ablation cell trains under the same rule, whatever its data
size: validate after every epoch or every ``val_every_steps`` steps, whichever comes
first; stop after ``patience`` validations without a better validation metric (never
before ``min_steps`` steps); stop at the cap otherwise, and say so. The weights of the
best validation are restored. Lightning's ``EarlyStopping`` and ``val_check_interval``
implement the same rule inside its Trainer; the project keeps its own loop (see
docs/architecture.md), so the rule is written here.
"""

from __future__ import annotations

import copy
import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import pandas as pd
import torch
from torch import nn
from torch.utils.data import DataLoader

from transfer_study.training.device import DeviceSettings
from transfer_study.training.divergence import DivergenceWatch
from transfer_study.training.loops import EvalResult, Metric, evaluate, train_step

logger = logging.getLogger(__name__)

StopReason = Literal["patience", "cap", "diverged"]
# At an equal metric, a validation loss this share lower still counts as progress.
MIN_LOSS_PROGRESS = 0.01
# How a schedule is stepped: after every batch, every epoch, or every validation
# (ReduceLROnPlateau, with the validation metric).
ScheduleMode = Literal["batch", "epoch", "validation"]


@dataclass(frozen=True)
class Budget:
    """When training validates and stops.

    Attributes:
        max_steps: The cap, in optimizer steps.
        min_steps: Early stopping may not stop before this many steps.
        val_every_steps: Validate every this many steps (and after every epoch).
        patience: Validations without a better metric before stopping; ``None``: never.
    """

    max_steps: int
    min_steps: int
    val_every_steps: int
    patience: int | None

    @classmethod
    def from_images(
        cls,
        *,
        max_images: int,
        batch_size: int,
        min_steps: int,
        val_every_steps: int,
        patience: int | None,
    ) -> Budget:
        """The budget whose cap is ``max_images`` training images, at least ``min_steps``."""
        max_steps = max(math.ceil(max_images / batch_size), min_steps)
        return cls(max_steps, min_steps, val_every_steps, patience)


@dataclass(frozen=True)
class Schedule:
    """A learning-rate scheduler and when it is stepped."""

    scheduler: torch.optim.lr_scheduler.LRScheduler | torch.optim.lr_scheduler.ReduceLROnPlateau
    mode: ScheduleMode


@dataclass(frozen=True)
class FitResult:
    """What ``fit`` returns.

    Attributes:
        history: One row per validation.
        best: The history row of the restored best validation.
        stop_reason: ``patience`` (converged), ``cap`` (hit the budget's cap) or
            ``diverged`` (stopped by the divergence rule).
        seconds: Wall time of the whole fit.
        divergence: Why training diverged (``None`` unless it did).
    """

    history: pd.DataFrame
    best: dict
    stop_reason: StopReason
    seconds: float
    divergence: str | None = None

    @property
    def converged(self) -> bool:
        """Whether early stopping ended the training (rather than the cap or divergence)."""
        return self.stop_reason == "patience"

    @property
    def diverged(self) -> bool:
        """Whether the divergence rule stopped the training."""
        return self.stop_reason == "diverged"


@dataclass
class _Progress:
    """Counters of a running fit."""

    step: int = 0
    epoch: int = 0
    images: int = 0
    stale: int = 0
    train_loss: float = 0.0
    train_correct: int = 0
    train_seen: int = 0

    def add_batch(self, loss: torch.Tensor, logits: torch.Tensor, labels: torch.Tensor) -> None:
        self.step += 1
        self.images += len(labels)
        self.train_loss += loss.item() * len(labels)
        self.train_correct += (logits.argmax(dim=1) == labels).sum().item()
        self.train_seen += len(labels)

    def take_train_means(self) -> tuple[float, float]:
        seen = max(self.train_seen, 1)
        means = self.train_loss / seen, self.train_correct / seen
        self.train_loss, self.train_correct, self.train_seen = 0.0, 0, 0
        return means


def _is_better(result: EvalResult, best: EvalResult | None, metric: Metric) -> bool:
    """Whether these are the best weights so far: a higher metric, ties to the lower loss."""
    if best is None:
        return True
    if result.metric(metric) != best.metric(metric):
        return result.metric(metric) > best.metric(metric)
    return result.loss < best.loss


def _is_progress(result: EvalResult, best: EvalResult | None, metric: Metric) -> bool:
    """Whether this validation resets the patience: a higher metric, or the same metric at a
    loss at least ``MIN_LOSS_PROGRESS`` lower. A loss that creeps down for ever at a tiny
    learning rate must not keep training going to the cap."""
    if best is None or result.metric(metric) > best.metric(metric):
        return True
    return result.metric(metric) == best.metric(metric) and result.loss < best.loss * (
        1 - MIN_LOSS_PROGRESS
    )


def _set_train_mode(
    model: nn.Module, frozen_backbone: nn.Module | None, fixed_norms: nn.Module | None = None
) -> None:
    model.train()
    if frozen_backbone is not None:
        # A frozen backbone keeps its BatchNorm running statistics and no dropout.
        frozen_backbone.eval()
    if fixed_norms is not None:
        for module in fixed_norms.modules():
            if isinstance(module, nn.modules.batchnorm._BatchNorm):
                module.eval()


def _enter_train_mode(
    model: nn.Module, backbone: nn.Module | None, frozen: bool, fixed_norms: bool
) -> None:
    """Train mode, with the backbone frozen during the head warm-up."""
    if backbone is not None:
        backbone.requires_grad_(not frozen)
    _set_train_mode(model, backbone if frozen else None, backbone if fixed_norms else None)


def fit(
    model: nn.Module,
    *,
    criterion: nn.Module,
    optimizer: torch.optim.Optimizer,
    train_loader: DataLoader,
    val_loader: DataLoader,
    settings: DeviceSettings,
    budget: Budget,
    metric: Metric = "accuracy",
    schedule: Schedule | None = None,
    backbone: nn.Module | None = None,
    warmup_steps: int = 0,
    lr_warmup_steps: int = 0,
    validate_start: bool = False,
    fixed_batchnorm: bool = False,
    variant: str = "",
    on_epoch_start: Callable[[int], None] | None = None,
) -> FitResult:
    """Trains until validation stops improving or the cap is reached; restores the best.

    Args:
        model: Module from inputs to logits.
        criterion: Loss function.
        optimizer: The optimiser.
        train_loader: Training batches (shuffled).
        val_loader: Validation batches.
        settings: Device, memory format, mixed precision.
        budget: When to validate and stop.
        metric: The validation metric early stopping and the best weights follow.
        schedule: Learning-rate schedule, if any.
        backbone: The backbone inside ``model``, frozen (no gradients, BatchNorm
            statistics fixed) for the first ``warmup_steps`` steps: the head warm-up.
        warmup_steps: Steps of head warm-up.
        lr_warmup_steps: Steps over which every learning rate rises linearly to its
            value (Goyal et al. 2017): Adam's first steps move every weight by about the
            lr whatever its gradient, which knocks a pretrained backbone off its fit.
        validate_start: Validate the starting weights too (step 0), for the record. The
            start is not a candidate for the best weights: a start chosen on this same
            validation set (a probed head, early-stopped on it) scores the best of many
            noisy validations and would beat every trained checkpoint by selection alone.
            Whether training helped is the variant comparison's question.
        fixed_batchnorm: Keep the backbone's BatchNorm layers in inference mode while it
            trains (running statistics fixed, scale and shift still learnt), as Keras's
            transfer-learning guide advises for small data sets.
        variant: Name used in logs and errors.
        on_epoch_start: Called with the 1-based epoch number before each epoch (e.g. to
            show a different augmented view of cached features).

    Returns:
        The history (one row per validation, and a last row without validation where
        training diverged), the best row, why training stopped (and, if it diverged,
        why) and the wall time. The model holds the best validation's weights; when
        training diverged before any validation, the starting weights.
    """
    scaler = (
        torch.amp.GradScaler("cuda") if settings.amp and settings.device.type == "cuda" else None
    )
    progress, rows = _Progress(), []
    best, best_state = None, None
    n_train = max(len(train_loader.dataset), 1)  # type: ignore[arg-type]
    started = last_validation = time.perf_counter()
    stop: StopReason | None = None
    watch, divergence = DivergenceWatch(), None
    # What a training that diverges before its first validation keeps.
    start_state = copy.deepcopy(model.state_dict())
    base_lrs = [group["lr"] for group in optimizer.param_groups]
    if validate_start:
        val = evaluate(model, criterion, val_loader, settings)
        rows.append(_row(progress, n_train, math.nan, math.nan, val, metric, optimizer, 0.0))
        rows[-1] |= {"backbone_frozen": backbone is not None and warmup_steps > 0}
        _log_validation(variant, rows[-1], budget, metric)
    while stop is None:
        progress.epoch += 1
        if on_epoch_start is not None:
            on_epoch_start(progress.epoch)
        since_validation, mode = 0, None
        for batch_index, batch in enumerate(train_loader, start=1):
            frozen = backbone is not None and progress.step < warmup_steps
            if mode != frozen:  # at the epoch's start, after a validation, after warm-up
                _enter_train_mode(model, backbone, frozen, fixed_batchnorm)
                mode = frozen
            if progress.step < lr_warmup_steps:
                # By hand: ReduceLROnPlateau cannot be chained after a warm-up scheduler.
                for group, base_lr in zip(optimizer.param_groups, base_lrs, strict=True):
                    group["lr"] = base_lr * (progress.step + 1) / lr_warmup_steps
            loss, logits, labels = train_step(model, criterion, optimizer, batch, settings, scaler)
            progress.add_batch(loss, logits, labels)
            divergence = watch.observe(loss.item(), progress.step, logits.shape[1])
            if divergence is not None:
                stop = "diverged"
                break
            if schedule is not None and schedule.mode == "batch":
                schedule.scheduler.step()
            since_validation += 1
            end_of_epoch = batch_index == len(train_loader)
            at_cap = progress.step >= budget.max_steps
            if not (end_of_epoch or at_cap or since_validation >= budget.val_every_steps):
                continue
            since_validation = 0
            val = evaluate(model, criterion, val_loader, settings)
            train_loss, train_accuracy = progress.take_train_means()
            now = time.perf_counter()
            seconds = now - last_validation
            row = _row(
                progress, n_train, train_loss, train_accuracy, val, metric, optimizer, seconds
            )
            rows.append(row | {"backbone_frozen": frozen})
            last_validation = now
            _log_validation(variant, rows[-1], budget, metric)
            progress.stale = 0 if _is_progress(val, best, metric) else progress.stale + 1
            if _is_better(val, best, metric):
                best, best_state = val, copy.deepcopy(model.state_dict())
                rows[-1]["improved"] = True
            if schedule is not None and schedule.mode == "validation":
                schedule.scheduler.step(val.metric(metric))
            stop = _stop_reason(progress, budget, at_cap)
            if stop is not None:
                break
            mode = None  # validation left the model in eval mode
        if schedule is not None and schedule.mode == "epoch":
            schedule.scheduler.step()
    if stop == "diverged":
        if best_state is None:  # no validation yet: the start is the best there is
            model.load_state_dict(start_state)
            if not validate_start:
                val = evaluate(model, criterion, val_loader, settings)
                rows.insert(
                    0, _row(_Progress(), n_train, math.nan, math.nan, val, metric, optimizer, 0)
                )
                rows[0]["backbone_frozen"] = False
            rows[0]["improved"] = True
        seconds = time.perf_counter() - last_validation
        rows.append(
            _divergence_row(progress, n_train, optimizer, seconds) | {"backbone_frozen": frozen}
        )
        logger.warning(
            "%s: %s: training stopped; the best validation before it is kept.",
            variant,
            divergence,
        )
    if best_state is not None:
        model.load_state_dict(best_state)
    history = pd.DataFrame(rows)
    # "improved": a new best at the time; the last such row is the one restored.
    history["improved"] = history.get("improved", pd.Series(False, index=history.index))
    history["improved"] = history["improved"].astype("boolean").fillna(False).astype(bool)
    best_row = history.loc[history["improved"]].iloc[-1].to_dict()
    if stop == "cap" and budget.patience is not None:  # without patience, the cap is the plan
        logger.warning(
            "%s: reached the cap of %d steps (%d images) with the last improvement only "
            "%d validation(s) ago: not converged. Raise max_images to let it converge.",
            variant,
            budget.max_steps,
            progress.images,
            progress.stale,
        )
    return FitResult(history, best_row, stop, time.perf_counter() - started, divergence)


def _row(
    progress: _Progress,
    n_train: int,
    train_loss: float,
    train_accuracy: float,
    val: EvalResult,
    metric: Metric,
    optimizer: torch.optim.Optimizer,
    seconds: float,
) -> dict:
    """One history row: where training is, and what validation said."""
    return {
        "step": progress.step,
        "epoch": round(progress.images / n_train, 3),
        "images_seen": progress.images,
        "train_loss": train_loss,
        "train_accuracy": train_accuracy,
        "val_loss": val.loss,
        "val_accuracy": val.accuracy,
        "val_balanced_accuracy": val.balanced_accuracy,
        "val_metric": val.metric(metric),
        "lr": optimizer.param_groups[0]["lr"],
        "seconds": seconds,
    }


def _divergence_row(
    progress: _Progress, n_train: int, optimizer: torch.optim.Optimizer, seconds: float
) -> dict:
    """The history row where training diverged: its training loss, no validation (the
    weights are not worth one)."""
    train_loss, train_accuracy = progress.take_train_means()
    nan = EvalResult(math.nan, math.nan, math.nan)
    row = _row(progress, n_train, train_loss, train_accuracy, nan, "accuracy", optimizer, seconds)
    return row | {"improved": False}


def _stop_reason(progress: _Progress, budget: Budget, at_cap: bool) -> StopReason | None:
    patience = budget.patience
    if patience is not None and progress.stale >= patience and progress.step >= budget.min_steps:
        return "patience"
    return "cap" if at_cap else None


def _log_validation(variant: str, row: dict, budget: Budget, metric: Metric) -> None:
    logger.info(
        "%s step %d/%d (epoch %.1f): train loss %.4f acc %.3f | val loss %.4f %s %.3f (%.1f s)",
        variant,
        row["step"],
        budget.max_steps,
        row["epoch"],
        row["train_loss"],
        row["train_accuracy"],
        row["val_loss"],
        metric.replace("_", " "),
        row["val_metric"],
        row["seconds"],
    )
