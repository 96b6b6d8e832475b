"""``train_one_epoch``, ``evaluate`` and ``fit``: the loop of torchvision's reference
classification script, plus early stopping, best-weights restore and divergence checks."""

from __future__ import annotations

import copy
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

import pandas as pd
import torch
from torch import nn
from torch.utils.data import DataLoader
from tqdm.auto import tqdm

from transfer_study.training.device import DeviceSettings

logger = logging.getLogger(__name__)


class TrainingDivergedError(RuntimeError):
    """The loss became NaN or infinite."""


@dataclass(frozen=True)
class EpochResult:
    """Mean loss and accuracy over one pass of a loader."""

    loss: float
    accuracy: float


@dataclass(frozen=True)
class FitResult:
    """What ``fit`` returns: the history and the restored best epoch."""

    history: pd.DataFrame
    best_epoch: int
    stopped_early: bool
    seconds: float


def _check_finite(loss: torch.Tensor, variant: str, epoch: int) -> None:
    if not torch.isfinite(loss):
        raise TrainingDivergedError(
            f"Variant '{variant}': the training loss became {loss.item()} in epoch {epoch}. "
            "Lower the learning rate (lr), or check the data for broken images."
        )


def train_one_epoch(
    model: nn.Module,
    criterion: nn.Module,
    optimizer: torch.optim.Optimizer,
    loader: DataLoader,
    settings: DeviceSettings,
    *,
    scaler: torch.amp.GradScaler | None = None,
    batch_scheduler: torch.optim.lr_scheduler.LRScheduler | None = None,
    variant: str = "",
    epoch: int = 0,
) -> EpochResult:
    """Trains for one pass over ``loader``; the model must already be in train mode.

    Args:
        model: Module from inputs to logits.
        criterion: Loss function.
        optimizer: The optimiser.
        loader: Batches of ``(inputs, labels)``.
        settings: Device, memory format, mixed precision.
        scaler: Gradient scaler for float16 mixed precision, if used.
        batch_scheduler: A schedule stepped after every batch (one-cycle), if any.
        variant: Name used in progress bars and errors.
        epoch: Epoch number used in progress bars and errors.

    Returns:
        Mean training loss and accuracy.

    Raises:
        TrainingDivergedError: If a batch's loss is NaN or infinite.
    """
    total_loss, correct, seen = 0.0, 0, 0
    progress = tqdm(loader, desc=f"{variant} epoch {epoch}", unit="batch", leave=False)
    for inputs, labels in progress:
        inputs, labels = settings.to_device(inputs), labels.to(settings.device, non_blocking=True)
        with settings.autocast():
            logits = model(inputs)
            loss = criterion(logits, labels)
        _check_finite(loss, variant, epoch)
        optimizer.zero_grad(set_to_none=True)
        if scaler is not None:
            scaler.scale(loss).backward()
            scaler.step(optimizer)
            scaler.update()
        else:
            loss.backward()
            optimizer.step()
        if batch_scheduler is not None:
            batch_scheduler.step()
        total_loss += loss.item() * len(labels)
        correct += (logits.argmax(dim=1) == labels).sum().item()
        seen += len(labels)
        progress.set_postfix(loss=f"{total_loss / seen:.3f}", acc=f"{correct / seen:.3f}")
    return EpochResult(loss=total_loss / max(seen, 1), accuracy=correct / max(seen, 1))


@torch.inference_mode()
def predict_logits(
    model: nn.Module, loader: DataLoader, settings: DeviceSettings
) -> tuple[torch.Tensor, torch.Tensor]:
    """Runs the model in eval mode over ``loader``.

    Returns:
        ``(logits, labels)`` on the CPU, in loader order.
    """
    model.eval()
    all_logits, all_labels = [], []
    for inputs, labels in loader:
        with settings.autocast():
            logits = model(settings.to_device(inputs))
        all_logits.append(logits.float().cpu())
        all_labels.append(labels)
    return torch.cat(all_logits), torch.cat(all_labels)


def evaluate(
    model: nn.Module, criterion: nn.Module, loader: DataLoader, settings: DeviceSettings
) -> EpochResult:
    """Mean loss and accuracy of the model on ``loader`` (eval mode, no gradients)."""
    logits, labels = predict_logits(model, loader, settings)
    loss = criterion(logits, labels).item()
    accuracy = (logits.argmax(dim=1) == labels).float().mean().item()
    return EpochResult(loss=loss, accuracy=accuracy)


def _set_train_mode(model: nn.Module, frozen_backbone: nn.Module | None) -> None:
    model.train()
    if frozen_backbone is not None:
        # A frozen backbone keeps its BatchNorm running statistics and no dropout.
        frozen_backbone.eval()


def _is_better(result: EpochResult, best: EpochResult | None) -> bool:
    if best is None:
        return True
    if result.accuracy != best.accuracy:
        return result.accuracy > best.accuracy
    return result.loss < best.loss


def fit(
    model: nn.Module,
    *,
    criterion: nn.Module,
    optimizer: torch.optim.Optimizer,
    train_loader: DataLoader,
    val_loader: DataLoader,
    settings: DeviceSettings,
    epochs: int,
    patience: int | None,
    scheduler: torch.optim.lr_scheduler.LRScheduler | None = None,
    scheduler_per_batch: bool = False,
    backbone: nn.Module | None = None,
    backbone_frozen_epochs: int = 0,
    variant: str = "",
    on_epoch_start: Callable[[int], None] | None = None,
) -> FitResult:
    """Trains, keeps the weights of the best validation epoch, and restores them.

    Args:
        model: Module from inputs to logits.
        criterion: Loss function.
        optimizer: The optimiser.
        train_loader: Training batches (shuffled).
        val_loader: Validation batches.
        settings: Device, memory format, mixed precision.
        epochs: Maximum number of epochs.
        patience: Stop after this many epochs without a better validation accuracy;
            ``None`` never stops early.
        scheduler: Learning-rate schedule, if any.
        scheduler_per_batch: Whether the schedule steps per batch (one-cycle).
        backbone: The backbone inside ``model`` when it is frozen for the first
            ``backbone_frozen_epochs`` epochs (or all of them, if that is ≥ ``epochs``).
        backbone_frozen_epochs: Epochs during which the backbone is frozen (no
            gradients, BatchNorm statistics fixed): the head warm-up.
        variant: Name used in logs, progress bars and errors.
        on_epoch_start: Called with the 1-based epoch number before each epoch (e.g. to
            show a different augmented view of cached features).

    Returns:
        The per-epoch history, the best epoch (1-based), whether it stopped early, and
        the training time in seconds. The model holds the best epoch's weights.
    """
    scaler = (
        torch.amp.GradScaler("cuda") if settings.amp and settings.device.type == "cuda" else None
    )
    best, best_state, best_epoch, stale_epochs, rows = None, None, 0, 0, []
    started = time.perf_counter()
    for epoch in range(1, epochs + 1):
        frozen = backbone if backbone is not None and epoch <= backbone_frozen_epochs else None
        if backbone is not None:
            backbone.requires_grad_(frozen is None)
        _set_train_mode(model, frozen)
        if on_epoch_start is not None:
            on_epoch_start(epoch)
        epoch_started = time.perf_counter()
        lr = optimizer.param_groups[0]["lr"]
        train = train_one_epoch(
            model,
            criterion,
            optimizer,
            train_loader,
            settings,
            scaler=scaler,
            batch_scheduler=scheduler if scheduler_per_batch else None,
            variant=variant,
            epoch=epoch,
        )
        if scheduler is not None and not scheduler_per_batch:
            scheduler.step()
        val = evaluate(model, criterion, val_loader, settings)
        rows.append(
            {
                "epoch": epoch,
                "train_loss": train.loss,
                "train_accuracy": train.accuracy,
                "val_loss": val.loss,
                "val_accuracy": val.accuracy,
                "lr": lr,
                "backbone_frozen": frozen is not None,
                "seconds": time.perf_counter() - epoch_started,
            }
        )
        logger.info(
            "%s epoch %d/%d: train loss %.4f acc %.3f | val loss %.4f acc %.3f (%.1f s)",
            variant,
            epoch,
            epochs,
            train.loss,
            train.accuracy,
            val.loss,
            val.accuracy,
            rows[-1]["seconds"],
        )
        if _is_better(val, best):
            best, best_epoch, stale_epochs = val, epoch, 0
            best_state = copy.deepcopy(model.state_dict())
        else:
            stale_epochs += 1
            if patience is not None and stale_epochs >= patience:
                logger.info(
                    "%s: no better validation accuracy for %d epochs; stopping.", variant, patience
                )
                break
    if best_state is not None:
        model.load_state_dict(best_state)
    history = pd.DataFrame(rows)
    return FitResult(history, best_epoch, len(rows) < epochs, time.perf_counter() - started)
