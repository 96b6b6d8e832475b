"""One training step, predictions and validation: the pieces of torchvision's reference
classification loop that ``fitting.fit`` runs under its step budget."""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Literal

import torch
from sklearn.metrics import balanced_accuracy_score
from torch import nn
from torch.utils.data import DataLoader

from transfer_study.training.device import DeviceSettings

# The headline metric: balanced accuracy when classes are imbalanced, accuracy otherwise.
Metric = Literal["accuracy", "balanced_accuracy"]


@dataclass(frozen=True)
class EvalResult:
    """Loss, accuracy and balanced accuracy over one pass of a loader."""

    loss: float
    accuracy: float
    balanced_accuracy: float

    def metric(self, name: Metric) -> float:
        """The value of the headline metric ``name``."""
        return self.accuracy if name == "accuracy" else self.balanced_accuracy


def train_step(
    model: nn.Module,
    criterion: nn.Module,
    optimizer: torch.optim.Optimizer,
    batch: tuple[torch.Tensor, torch.Tensor],
    settings: DeviceSettings,
    scaler: torch.amp.GradScaler | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """One optimizer step on one batch; the model must already be in train mode.

    Args:
        model: Module from inputs to logits.
        criterion: Loss function.
        optimizer: The optimiser.
        batch: ``(inputs, labels)``.
        settings: Device, memory format, mixed precision.
        scaler: Gradient scaler for float16 mixed precision, if used.

    Returns:
        The loss (before the step), the logits and the labels on the device.
    """
    inputs, labels = batch
    inputs, labels = settings.to_device(inputs), labels.to(settings.device, non_blocking=True)
    with settings.autocast():
        logits = model(inputs)
        loss = criterion(logits, labels)
    optimizer.zero_grad(set_to_none=True)
    if scaler is not None:
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()
    else:
        loss.backward()
        optimizer.step()
    return loss.detach(), logits.detach(), labels


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
) -> EvalResult:
    """Loss, accuracy and balanced accuracy of the model on ``loader`` (eval mode).

    The loss is the criterion's (class-weighted when training is), so that it ranks
    epochs the way training optimises.
    """
    logits, labels = predict_logits(model, loader, settings)
    # A CPU copy: the criterion's class weights stay on the training device.
    loss = copy.deepcopy(criterion).cpu()(logits, labels).item()
    predicted = logits.argmax(dim=1)
    return EvalResult(
        loss=loss,
        accuracy=(predicted == labels).float().mean().item(),
        balanced_accuracy=float(balanced_accuracy_score(labels.numpy(), predicted.numpy())),
    )
