"""``fit``: early stopping, restoring the best epoch's weights, one history row per epoch."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from transfer_study.training.device import DeviceSettings
from transfer_study.training.loops import FitResult, evaluate, fit

CPU = DeviceSettings(device=torch.device("cpu"), channels_last=False, amp=False)
# Two classes told apart by which input is on; a 2 × 2 weight matrix is the whole model.
INPUTS = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 0.0], [0.0, 1.0]])
LABELS = torch.tensor([0, 1, 0, 1])
LOADER = [(INPUTS, LABELS)]
RIGHT = torch.eye(2)  # val accuracy 1.0
HALF = torch.tensor([[1.0, 0.0], [1.0, 0.0]])  # always class 0: val accuracy 0.5
WRONG = torch.tensor([[0.0, 1.0], [1.0, 0.0]])  # val accuracy 0.0
# The weights each epoch starts with (and, with lr 0, ends with). Epoch 3 is as accurate
# as epoch 2 but less confident (higher loss), so it is no improvement either.
SCRIPT = {1: HALF, 2: 2 * RIGHT, 3: RIGHT, 4: WRONG, 5: 3 * RIGHT, 6: 3 * RIGHT}


def _scripted_fit(patience: int | None) -> tuple[nn.Linear, FitResult, nn.Module]:
    """Runs ``fit`` on a linear model whose weights ``SCRIPT`` sets at each epoch start;
    with a learning rate of 0, training leaves them so."""
    model = nn.Linear(2, 2, bias=False)
    criterion = nn.CrossEntropyLoss()

    def set_weights(epoch: int) -> None:
        with torch.no_grad():
            model.weight.copy_(SCRIPT[epoch])

    result = fit(
        model,
        criterion=criterion,
        optimizer=torch.optim.SGD(model.parameters(), lr=0.0),
        train_loader=LOADER,
        val_loader=LOADER,
        settings=CPU,
        epochs=len(SCRIPT),
        patience=patience,
        on_epoch_start=set_weights,
    )
    return model, result, criterion


def test_training_stops_after_patience_epochs_without_a_better_val_accuracy():
    _, result, _ = _scripted_fit(patience=2)
    # Epoch 2 is the best; epochs 3 and 4 are no better, so epoch 5 never runs.
    assert result.history["epoch"].tolist() == [1, 2, 3, 4]
    assert result.best_epoch == 2
    assert result.stopped_early is True


def test_the_best_epochs_weights_are_restored_not_the_last_ones():
    model, result, criterion = _scripted_fit(patience=2)
    assert torch.equal(model.weight, 2 * RIGHT)
    best = result.history.set_index("epoch").loc[result.best_epoch]
    restored = evaluate(model, criterion, LOADER, CPU)
    assert restored.accuracy == best["val_accuracy"] == 1.0
    assert restored.loss == pytest.approx(best["val_loss"])
    assert restored.loss < result.history["val_loss"].iloc[-1]


def test_without_patience_every_epoch_runs_and_the_best_is_still_restored():
    model, result, _ = _scripted_fit(patience=None)
    assert result.history["epoch"].tolist() == list(SCRIPT)
    assert result.stopped_early is False
    assert result.best_epoch == 5  # 3 × RIGHT is more confident; epoch 6 only ties it
    assert torch.equal(model.weight, 3 * RIGHT)


def test_history_has_one_row_per_epoch_with_its_metrics_and_starting_lr():
    model = nn.Linear(2, 2, bias=False)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    result = fit(
        model,
        criterion=nn.CrossEntropyLoss(),
        optimizer=optimizer,
        train_loader=LOADER,
        val_loader=LOADER,
        settings=CPU,
        epochs=3,
        patience=None,
        scheduler=torch.optim.lr_scheduler.StepLR(optimizer, step_size=1, gamma=0.5),
    )
    history = result.history
    assert history["epoch"].tolist() == [1, 2, 3]
    assert history["lr"].tolist() == pytest.approx([0.1, 0.05, 0.025])
    assert not history["backbone_frozen"].any()
    columns = ["train_loss", "train_accuracy", "val_loss", "val_accuracy", "seconds"]
    assert history[columns].notna().all().all()
    assert history["val_loss"].is_monotonic_decreasing  # it does learn
