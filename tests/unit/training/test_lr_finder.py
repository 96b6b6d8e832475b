"""The learning-rate range test and the candidate search on validation."""

from __future__ import annotations

import math

import pandas as pd
import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from transfer_study.training.device import DeviceSettings
from transfer_study.training.fitting import FitResult
from transfer_study.training.lr_finder import (
    candidate_lrs,
    lr_range_test,
    search_on_validation,
)

CPU = DeviceSettings(device=torch.device("cpu"), channels_last=False, amp=False)


def _problem(scale: float) -> DataLoader:
    """Two Gaussian classes in 10 dimensions, inputs multiplied by ``scale``: the best
    learning rate of a linear model falls as 1 / scale², so the scale sets its decade."""
    generator = torch.Generator().manual_seed(0)
    labels = torch.randint(0, 2, (512,), generator=generator)
    inputs = torch.randn(512, 10, generator=generator) + labels[:, None] * 1.5
    dataset = TensorDataset(inputs * scale, labels)
    return DataLoader(dataset, batch_size=32, shuffle=True, generator=generator)


def _model() -> nn.Linear:
    torch.manual_seed(0)
    return nn.Linear(10, 2)


def _loss_after_training(loader: DataLoader, lr: float, steps: int = 60) -> float:
    model = _model()
    optimizer = torch.optim.SGD(model.parameters(), lr=lr)
    losses = []
    batches = iter(loader)
    for _ in range(steps):
        try:
            inputs, labels = next(batches)
        except StopIteration:
            batches = iter(loader)
            inputs, labels = next(batches)
        loss = nn.functional.cross_entropy(model(inputs), labels)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item() if math.isfinite(loss.item()) else 1e9)
    return sum(losses[-10:]) / 10


@pytest.mark.parametrize("scale", [1.0, 10.0])
def test_the_range_test_picks_a_learning_rate_in_the_right_decade(scale):
    loader = _problem(scale)
    model = _model()
    result = lr_range_test(
        model,
        criterion=nn.CrossEntropyLoss(),
        optimizer=torch.optim.SGD(model.parameters(), lr=1e-6),
        train_loader=loader,
        settings=CPU,
        min_lr=1e-6,
        max_lr=100.0,
        steps=60,
    )
    # The right decade: the best of a grid of short trainings with a fixed lr.
    grid = [10.0**exponent for exponent in range(-5, 3)]
    best = min(grid, key=lambda lr: _loss_after_training(loader, lr))
    assert abs(math.log10(result.suggested_lr) - math.log10(best)) <= 1.0, (
        result.suggested_lr,
        best,
    )
    assert result.diverged  # it ran into the divergence and stopped there


def test_the_range_test_leaves_the_model_and_optimizer_as_they_were():
    model = _model()
    optimizer = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    lr_range_test(
        model,
        criterion=nn.CrossEntropyLoss(),
        optimizer=optimizer,
        train_loader=_problem(1.0),
        settings=CPU,
        min_lr=1e-4,
        max_lr=1.0,
        steps=10,
    )
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert optimizer.param_groups[0]["lr"] == 1e-3
    assert not optimizer.state  # no momentum buffers left behind


def test_the_range_test_keeps_the_ratio_between_parameter_groups():
    head, backbone = nn.Linear(10, 2), nn.Linear(10, 10)
    model = nn.Sequential(backbone, head)
    optimizer = torch.optim.SGD(
        [{"params": head.parameters(), "lr": 1.0}, {"params": backbone.parameters(), "lr": 0.1}]
    )
    seen = []
    original_step = optimizer.step

    def recording_step(*args, **kwargs):
        seen.append([group["lr"] for group in optimizer.param_groups])
        return original_step(*args, **kwargs)

    optimizer.step = recording_step
    lr_range_test(
        model,
        criterion=nn.CrossEntropyLoss(),
        optimizer=optimizer,
        train_loader=_problem(1.0),
        settings=CPU,
        min_lr=1e-4,
        max_lr=1e-2,
        steps=5,
    )
    assert [head_lr for head_lr, _ in seen] == pytest.approx([1e-4, 10**-3.5, 1e-3, 10**-2.5, 1e-2])
    assert all(backbone_lr == pytest.approx(head_lr / 10) for head_lr, backbone_lr in seen)


def test_candidates_span_the_range_two_per_decade():
    assert candidate_lrs(1e-4, 1e-1) == pytest.approx(
        [1e-4, 10**-3.5, 1e-3, 10**-2.5, 1e-2, 10**-1.5, 1e-1]
    )


def test_the_candidate_search_keeps_the_lowest_validation_loss_and_breaks_ties_by_metric():
    # 0.1 is one photo ahead on the metric with an exploded loss; 0.001 and 0.003 tie on
    # the loss and 0.003 has the better metric.
    outcomes = {
        0.1: (0.95, 3.4),
        0.01: (0.9, 0.4),
        0.003: (0.92, 0.3),
        0.001: (0.9, 0.3),
        0.0001: (0.7, 0.6),
    }

    def train_with(lr: float) -> FitResult:
        metric, loss = outcomes[lr]
        row = {"step": 10, "val_metric": metric, "val_loss": loss}
        return FitResult(pd.DataFrame([row]), row, "patience", 0.0)

    lr, table = search_on_validation(train_with, list(outcomes))
    assert lr == 0.003
    assert table["lr"].tolist() == list(outcomes)


def test_the_candidate_search_never_keeps_a_candidate_that_diverged():
    # 0.3's best validation (before it diverged) has the lowest loss of all.
    outcomes = {0.3: (0.95, 0.1, "diverged"), 0.01: (0.9, 0.4, "patience")}

    def train_with(lr: float) -> FitResult:
        metric, loss, stop = outcomes[lr]
        row = {"step": 10, "val_metric": metric, "val_loss": loss}
        return FitResult(pd.DataFrame([row]), row, stop, 0.0)

    lr, table = search_on_validation(train_with, list(outcomes))
    assert lr == 0.01
    assert table["diverged"].tolist() == [True, False]


def test_on_a_flat_curve_the_choice_is_a_tenth_of_where_the_loss_starts_to_rise():
    from transfer_study.training.lr_finder import _suggestion

    lrs = [10.0**exponent for exponent in range(-6, 1)]
    # Never falls (noise only), then rises from 1e-2 on: the minimum at 1e-5 is noise.
    smoothed = [0.70, 0.69, 0.70, 0.71, 0.90, 1.5, 3.0]
    history = pd.DataFrame({"lr": lrs, "loss": smoothed, "smoothed_loss": smoothed})
    result = _suggestion(history, 1e-6, diverged=True)
    assert result.lr_at_minimum == pytest.approx(1e-5)
    assert result.suggested_lr == pytest.approx(1e-3)
    # A curve that does fall keeps fastai's rule: a tenth of the minimum.
    falling = [0.70, 0.60, 0.40, 0.20, 0.30, 1.5, 3.0]
    history = pd.DataFrame({"lr": lrs, "loss": falling, "smoothed_loss": falling})
    assert _suggestion(history, 1e-6, diverged=True).suggested_lr == pytest.approx(1e-4)
