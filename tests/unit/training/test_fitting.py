"""``fit``: the step budget, validation cadence, early stopping in validations, the cap,
restoring the best validation's weights, and the head warm-up."""

from __future__ import annotations

import copy
import logging

import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from transfer_study.training.device import DeviceSettings
from transfer_study.training.fitting import Budget, FitResult, Schedule, fit
from transfer_study.training.loops import evaluate

CPU = DeviceSettings(device=torch.device("cpu"), channels_last=False, amp=False)
# Two classes told apart by which input is on; a 2 × 2 weight matrix is the whole model.
INPUTS = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 0.0], [0.0, 1.0]])
LABELS = torch.tensor([0, 1, 0, 1])
LOADER = DataLoader(TensorDataset(INPUTS, LABELS), batch_size=4)  # one step per epoch
RIGHT = torch.eye(2)  # val accuracy 1.0
HALF = torch.tensor([[1.0, 0.0], [1.0, 0.0]])  # always class 0: val accuracy 0.5
WRONG = torch.tensor([[0.0, 1.0], [1.0, 0.0]])  # val accuracy 0.0
# The weights each epoch starts with (and, with lr 0, ends with). Epoch 3 is as accurate
# as epoch 2 but less confident (higher loss), so it is no improvement either.
SCRIPT = {1: HALF, 2: 2 * RIGHT, 3: RIGHT, 4: WRONG, 5: 3 * RIGHT, 6: 3 * RIGHT}


def _budget(max_steps: int = 6, *, patience: int | None = 2, min_steps: int = 1) -> Budget:
    return Budget(max_steps=max_steps, min_steps=min_steps, val_every_steps=100, patience=patience)


def _scripted_fit(budget: Budget) -> tuple[nn.Linear, FitResult, nn.Module]:
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
        budget=budget,
        on_epoch_start=set_weights,
    )
    return model, result, criterion


def test_training_stops_after_patience_validations_without_a_better_metric():
    _, result, _ = _scripted_fit(_budget(patience=2))
    # Step 2 is the best; steps 3 and 4 are no better, so step 5 never runs.
    assert result.history["step"].tolist() == [1, 2, 3, 4]
    assert result.best["step"] == 2
    assert result.stop_reason == "patience" and result.converged


def test_early_stopping_waits_for_the_minimum_number_of_steps():
    _, result, _ = _scripted_fit(_budget(patience=2, min_steps=5))
    # Patience ran out at step 4, before min_steps: training went on and found step 5.
    assert result.history["step"].tolist() == [1, 2, 3, 4, 5, 6]
    assert result.best["step"] == 5


def test_reaching_the_cap_while_still_improving_is_not_convergence():
    _, result, _ = _scripted_fit(_budget(max_steps=5, patience=3))
    assert result.history["step"].tolist() == [1, 2, 3, 4, 5]
    assert result.best["step"] == 5  # still improving at the cap
    assert result.stop_reason == "cap" and not result.converged


def test_the_best_validations_weights_are_restored_not_the_last_ones():
    model, result, criterion = _scripted_fit(_budget(patience=2))
    assert torch.equal(model.weight, 2 * RIGHT)
    restored = evaluate(model, criterion, LOADER, CPU)
    assert restored.accuracy == result.best["val_accuracy"] == 1.0
    assert restored.loss == pytest.approx(result.best["val_loss"])
    assert restored.loss < result.history["val_loss"].iloc[-1]


def test_without_patience_training_runs_to_the_cap_and_the_best_is_still_restored():
    model, result, _ = _scripted_fit(_budget(patience=None))
    assert result.history["step"].tolist() == list(SCRIPT)
    assert result.stop_reason == "cap"
    assert result.best["step"] == 5  # 3 × RIGHT is more confident; step 6 only ties it
    assert torch.equal(model.weight, 3 * RIGHT)


def test_balanced_accuracy_drives_the_choice_when_it_is_the_metric():
    # 3 photos of class 0, 1 of class 1: "always class 0" has accuracy 0.75 but balanced
    # accuracy 0.5; the RIGHT weights have both at 1.0, WRONG at 0.
    inputs = torch.tensor([[1.0, 0.0], [1.0, 0.0], [1.0, 0.0], [0.0, 1.0]])
    labels = torch.tensor([0, 0, 0, 1])
    loader = DataLoader(TensorDataset(inputs, labels), batch_size=4)
    model = nn.Linear(2, 2, bias=False)
    result = fit(
        model,
        criterion=nn.CrossEntropyLoss(),
        optimizer=torch.optim.SGD(model.parameters(), lr=0.0),
        train_loader=loader,
        val_loader=loader,
        settings=CPU,
        budget=_budget(max_steps=2, patience=None),
        metric="balanced_accuracy",
        on_epoch_start=lambda epoch: model.weight.data.copy_(HALF if epoch == 1 else RIGHT),
    )
    history = result.history
    assert history["val_accuracy"].tolist() == [0.75, 1.0]
    assert history["val_metric"].tolist() == [0.5, 1.0]


def test_validation_runs_every_n_steps_and_after_every_epoch():
    # 8 photos in batches of 2: 4 steps per epoch; validate every 3 steps or epoch end.
    inputs, labels = INPUTS.repeat(2, 1), LABELS.repeat(2)
    loader = DataLoader(TensorDataset(inputs, labels), batch_size=2)
    model = nn.Linear(2, 2)
    result = fit(
        model,
        criterion=nn.CrossEntropyLoss(),
        optimizer=torch.optim.SGD(model.parameters(), lr=0.1),
        train_loader=loader,
        val_loader=loader,
        settings=CPU,
        budget=Budget(max_steps=8, min_steps=1, val_every_steps=3, patience=None),
    )
    history = result.history
    assert history["step"].tolist() == [3, 4, 7, 8]
    assert history["images_seen"].tolist() == [6, 8, 14, 16]
    assert history["epoch"].tolist() == [0.75, 1.0, 1.75, 2.0]


def test_history_has_one_row_per_validation_with_its_metrics_and_lr():
    model = nn.Linear(2, 2, bias=False)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    result = fit(
        model,
        criterion=nn.CrossEntropyLoss(),
        optimizer=optimizer,
        train_loader=LOADER,
        val_loader=LOADER,
        settings=CPU,
        budget=_budget(max_steps=3, patience=None),
        schedule=Schedule(torch.optim.lr_scheduler.StepLR(optimizer, 1, gamma=0.5), "epoch"),
    )
    history = result.history
    assert history["step"].tolist() == [1, 2, 3]
    assert history["lr"].tolist() == pytest.approx([0.1, 0.05, 0.025])
    assert not history["backbone_frozen"].any()
    columns = ["train_loss", "train_accuracy", "val_loss", "val_accuracy", "seconds"]
    assert history[columns].notna().all().all()
    assert history["val_loss"].is_monotonic_decreasing  # it does learn


def test_a_plateau_schedule_decays_the_lr_after_its_patience():
    model = nn.Linear(2, 2, bias=False)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.0)
    scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(optimizer, "max", factor=0.5, patience=0)
    optimizer.param_groups[0]["lr"] = 1.0
    result = fit(
        model,
        criterion=nn.CrossEntropyLoss(),
        optimizer=optimizer,
        train_loader=LOADER,
        val_loader=LOADER,
        settings=CPU,
        budget=_budget(max_steps=4, patience=None),
        schedule=Schedule(scheduler, "validation"),
        on_epoch_start=lambda epoch: model.weight.data.copy_(RIGHT),  # never improves
    )
    # Each row shows the lr its steps trained with; the first validation sets the best.
    assert result.history["lr"].tolist() == [1.0, 1.0, 0.5, 0.25]


def test_the_backbone_is_frozen_for_the_warmup_steps_only():
    backbone, head = nn.Linear(2, 2), nn.Linear(2, 2)
    model = nn.Sequential(backbone, head)
    before = backbone.weight.detach().clone()
    result = fit(
        model,
        criterion=nn.CrossEntropyLoss(),
        optimizer=torch.optim.SGD(model.parameters(), lr=0.1),
        train_loader=LOADER,
        val_loader=LOADER,
        settings=CPU,
        budget=_budget(max_steps=2, patience=None),
        backbone=backbone,
        warmup_steps=1,
    )
    assert result.history["backbone_frozen"].tolist() == [True, False]
    assert not torch.equal(backbone.weight, before)  # trained after the warm-up
    assert backbone.weight.requires_grad


def test_a_budget_in_images_becomes_steps_with_a_minimum():
    budget = Budget.from_images(
        max_images=100, batch_size=32, min_steps=2, val_every_steps=10, patience=3
    )
    assert budget.max_steps == 4  # ceil(100 / 32)
    small = Budget.from_images(
        max_images=30, batch_size=32, min_steps=50, val_every_steps=10, patience=3
    )
    assert small.max_steps == 50  # a tiny data set still gets min_steps updates


def _fit_from_a_good_start(*, validate_start: bool) -> tuple[nn.Linear, FitResult]:
    """Starts at accuracy 1.0; every epoch starts (and, at lr 0, ends) at 0.5."""
    model = nn.Linear(2, 2, bias=False)
    with torch.no_grad():
        model.weight.copy_(2 * RIGHT)

    def worse(epoch: int) -> None:
        with torch.no_grad():
            model.weight.copy_(HALF)

    result = fit(
        model,
        criterion=nn.CrossEntropyLoss(),
        optimizer=torch.optim.SGD(model.parameters(), lr=0.0),
        train_loader=LOADER,
        val_loader=LOADER,
        settings=CPU,
        budget=_budget(patience=2),
        validate_start=validate_start,
        on_epoch_start=worse,
    )
    return model, result


def test_a_validated_start_is_recorded_but_never_kept_over_trained_weights():
    # A start chosen on the same validation set (a probed head) wins by selection alone.
    model, result = _fit_from_a_good_start(validate_start=True)
    assert result.history["step"].tolist() == [0, 1, 2, 3]
    assert result.history.loc[0, "val_metric"] == 1.0
    assert not result.history.loc[0, "improved"]
    assert result.best["step"] == 1 and torch.equal(model.weight, HALF)
    model, result = _fit_from_a_good_start(validate_start=False)
    assert result.history["step"].tolist() == [1, 2, 3]
    assert result.best["step"] == 1 and torch.equal(model.weight, HALF)


def test_the_learning_rate_rises_linearly_over_the_warmup_steps_then_stays():
    model = nn.Linear(2, 2, bias=False)
    head, backbone = nn.Parameter(torch.zeros(1)), nn.Parameter(torch.zeros(1))
    optimizer = torch.optim.SGD(
        [{"params": [model.weight], "lr": 0.4}, {"params": [head, backbone], "lr": 0.04}]
    )
    seen = []
    original_step = optimizer.step

    def recording_step(*args, **kwargs):
        seen.append([group["lr"] for group in optimizer.param_groups])
        return original_step(*args, **kwargs)

    optimizer.step = recording_step
    fit(
        model,
        criterion=nn.CrossEntropyLoss(),
        optimizer=optimizer,
        train_loader=LOADER,
        val_loader=LOADER,
        settings=CPU,
        budget=_budget(max_steps=6, patience=None),
        lr_warmup_steps=4,
    )
    assert [lr for lr, _ in seen] == pytest.approx([0.1, 0.2, 0.3, 0.4, 0.4, 0.4])
    # Every group keeps its ratio to the others (a backbone's lower rate stays lower).
    assert [small for _, small in seen] == pytest.approx([0.01, 0.02, 0.03, 0.04, 0.04, 0.04])


# ---------------------------------------------------------------- divergence
class _ScaledLoss(nn.Module):
    """Cross-entropy times ``scale``: a training loss scripted epoch by epoch."""

    def __init__(self) -> None:
        super().__init__()
        self.scale = 1.0

    def forward(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        return self.scale * nn.functional.cross_entropy(logits, labels)


def _fit_with_loss_scales(scales: dict[int, float], max_steps: int = 50) -> FitResult:
    """Weights 0 (every loss ln 2, times the scale of its epoch) and lr 0, one step an
    epoch; validates every step."""
    model = nn.Linear(2, 2, bias=False)
    nn.init.zeros_(model.weight)
    criterion = _ScaledLoss()

    def set_scale(epoch: int) -> None:
        criterion.scale = scales.get(epoch, 1.0)

    return fit(
        model,
        criterion=criterion,
        optimizer=torch.optim.SGD(model.parameters(), lr=0.0),
        train_loader=LOADER,
        val_loader=LOADER,
        settings=CPU,
        budget=_budget(max_steps, patience=None),
        variant="finetune",
        on_epoch_start=set_scale,
    )


def test_a_climbing_loss_stops_training_a_step_after_passing_ten_times_its_start():
    # Batch losses ln 2 × 1, 1, 2, 4, 16, 64…: step 5 is the first over 10 × the start.
    result = _fit_with_loss_scales({3: 2, 4: 4, 5: 16, 6: 64, 7: 256, 8: 1024})
    assert result.stop_reason == "diverged" and result.diverged and not result.converged
    assert result.history["step"].iloc[-1] == 6  # not the cap of 50
    assert result.divergence.startswith("mean training loss of the last 5 steps ")
    assert "> 10 × starting loss 0.693 at step 6" in result.divergence
    # The last row is where it stopped, not a validation; the kept one is validated.
    assert result.history["val_loss"].iloc[-1] != result.history["val_loss"].iloc[-1]  # NaN
    assert not result.history["improved"].iloc[-1] and result.best["step"] < 6


@pytest.mark.parametrize(("value", "named"), [(float("nan"), "NaN"), (float("inf"), "infinite")])
def test_a_nan_or_infinite_loss_stops_training_at_that_step(value: float, named: str):
    result = _fit_with_loss_scales({3: value})
    assert result.stop_reason == "diverged" and not result.converged
    assert result.divergence == f"{named} loss at step 3"
    assert result.history["step"].tolist() == [1, 2, 3]
    assert result.best["step"] == 1  # the best validation before it


def test_one_bad_batch_is_not_a_divergence():
    # One batch 30 times the others: the mean of the last five stays under 10 × ln 2.
    result = _fit_with_loss_scales({3: 30.0}, max_steps=8)
    assert result.stop_reason == "cap" and result.divergence is None


def _mlp_fit(
    optimizer: str, lr: float, *, validate_start: bool = False
) -> tuple[nn.Module, dict, FitResult]:
    """A small MLP on the two-class toy problem: 4 steps an epoch, validated every 100."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(2, 8), nn.ReLU(), nn.Linear(8, 2))
    start = copy.deepcopy(model.state_dict())
    parameters = model.parameters()
    loader = DataLoader(TensorDataset(INPUTS.repeat(4, 1), LABELS.repeat(4)), batch_size=4)
    result = fit(
        model,
        criterion=nn.CrossEntropyLoss(),
        optimizer=torch.optim.SGD(parameters, lr=lr)
        if optimizer == "sgd"
        else torch.optim.Adam(parameters, lr=lr),
        train_loader=loader,
        val_loader=loader,
        settings=CPU,
        budget=Budget(max_steps=200, min_steps=1, val_every_steps=100, patience=None),
        validate_start=validate_start,
    )
    return model, start, result


@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
def test_a_learning_rate_of_1000_diverges_at_once_and_keeps_the_starting_weights(optimizer):
    model, start, result = _mlp_fit(optimizer, 1000.0)
    assert result.diverged and result.history["step"].iloc[-1] <= 3  # not the cap of 200
    # It diverged before any validation: the start is validated and kept.
    assert result.history["step"].tolist()[0] == 0 and result.best["step"] == 0
    for name, tensor in model.state_dict().items():
        assert torch.equal(tensor, start[name]), name


def test_a_validated_start_is_kept_once_when_training_diverges_before_any_validation():
    model, start, result = _mlp_fit("sgd", 1000.0, validate_start=True)
    assert result.diverged
    assert result.history["step"].tolist()[:2] == [0, result.history["step"].iloc[-1]]
    assert result.best["step"] == 0 and result.history["improved"].tolist()[0]
    for name, tensor in model.state_dict().items():
        assert torch.equal(tensor, start[name]), name


@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
def test_a_healthy_training_never_trips_the_divergence_rule(optimizer):
    _, _, result = _mlp_fit(optimizer, 0.1)
    assert result.stop_reason == "cap" and result.divergence is None
    assert result.history["step"].iloc[-1] == 200
    assert result.best["val_accuracy"] == 1.0


@pytest.mark.parametrize(("patience", "warned"), [(None, False), (50, True)])
def test_the_cap_warns_of_no_convergence_only_where_early_stopping_could_stop(
    caplog, patience, warned
):
    # patience: null trains to the cap by design (a short learning-rate candidate).
    model = nn.Linear(2, 2, bias=False)
    with caplog.at_level(logging.WARNING, logger="transfer_study.training.fitting"):
        result = fit(
            model,
            criterion=nn.CrossEntropyLoss(),
            optimizer=torch.optim.SGD(model.parameters(), lr=0.1),
            train_loader=LOADER,
            val_loader=LOADER,
            settings=CPU,
            budget=_budget(4, patience=patience),
        )
    assert result.stop_reason == "cap"
    assert ("not converged" in caplog.text) is warned
