"""The optimiser: timm's create_optimizer_v2 with head and backbone groups."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from tests.helpers.optim import make_optimizer
from transfer_study.models.factory import Classifier, set_backbone_trainable
from transfer_study.training.device import DeviceSettings
from transfer_study.training.fitting import Budget, fit

LR = 0.01
MULTIPLIER = 0.1
WEIGHT_DECAY = 0.05
PARAMS = {
    "optimizer": "adamw",
    "lr": LR,
    "weight_decay": WEIGHT_DECAY,
    "momentum": 0.9,
    "backbone_lr_multiplier": MULTIPLIER,
}


def _tiny_classifier() -> Classifier:
    torch.manual_seed(0)
    backbone = nn.Sequential(
        nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten()
    )
    return Classifier(backbone, nn.Linear(4, 2), feature_dim=4)


def _group_of(optimizer: torch.optim.Optimizer, parameter: nn.Parameter) -> dict:
    groups = [g for g in optimizer.param_groups if any(p is parameter for p in g["params"])]
    assert len(groups) == 1, f"parameter in {len(groups)} groups"
    return groups[0]


def test_backbone_trains_at_lr_times_multiplier_and_head_at_lr():
    model = _tiny_classifier()

    optimizer = make_optimizer(head=model.head, backbone=model.backbone, params=PARAMS)

    assert optimizer.param_groups[0]["name"] == "head"  # fit logs the first group's lr
    for parameter in model.head.parameters():
        assert _group_of(optimizer, parameter)["lr"] == LR
    for parameter in model.backbone.parameters():
        assert _group_of(optimizer, parameter)["lr"] == pytest.approx(LR * MULTIPLIER)


def test_norm_and_bias_parameters_get_no_weight_decay():
    model = _tiny_classifier()

    optimizer = make_optimizer(head=model.head, backbone=model.backbone, params=PARAMS)

    no_decay = [model.backbone[0].bias, model.backbone[1].weight, model.backbone[1].bias]
    for parameter in [*no_decay, model.head.bias]:
        assert _group_of(optimizer, parameter)["weight_decay"] == 0.0
    for parameter in (model.backbone[0].weight, model.head.weight):
        assert _group_of(optimizer, parameter)["weight_decay"] == WEIGHT_DECAY


def test_frozen_parameters_are_in_no_group():
    model = _tiny_classifier()
    set_backbone_trainable(model, False)

    optimizer = make_optimizer(head=model.head, backbone=model.backbone, params=PARAMS)

    in_groups = {id(p) for group in optimizer.param_groups for p in group["params"]}
    assert in_groups == {id(p) for p in model.head.parameters()}
    assert {group["name"] for group in optimizer.param_groups} == {"head"}


def test_sgd_is_classical_momentum_as_before():
    model = _tiny_classifier()

    optimizer = make_optimizer(
        head=model.head, backbone=None, params={**PARAMS, "optimizer": "SGD"}
    )

    assert isinstance(optimizer, torch.optim.SGD)
    assert optimizer.defaults["momentum"] == 0.9
    assert not optimizer.defaults["nesterov"]


def test_unknown_optimizer_is_refused():
    model = _tiny_classifier()

    with pytest.raises(ValueError, match=r"Unknown optimizer 'lamb'.*adamw"):
        make_optimizer(head=model.head, backbone=None, params={**PARAMS, "optimizer": "lamb"})


def test_warm_up_leaves_the_backbone_alone_then_trains_it_in_its_own_groups():
    model = _tiny_classifier()
    initial = copy.deepcopy(model.backbone.state_dict())
    optimizer = make_optimizer(head=model.head, backbone=model.backbone, params=PARAMS)
    torch.manual_seed(0)
    data = TensorDataset(torch.randn(8, 3, 8, 8), torch.tensor([0, 1] * 4))
    after_warm_up = {}

    def snapshot(epoch: int) -> None:
        if epoch == 2:  # two steps per epoch: the warm-up's two steps are done
            after_warm_up.update(copy.deepcopy(model.backbone.state_dict()))

    fit(
        model,
        criterion=nn.CrossEntropyLoss(),
        optimizer=optimizer,
        train_loader=DataLoader(data, batch_size=4),
        val_loader=DataLoader(data, batch_size=4),
        settings=DeviceSettings(torch.device("cpu"), channels_last=False, amp=False),
        budget=Budget(max_steps=4, min_steps=1, val_every_steps=100, patience=None),
        backbone=model.backbone,
        warmup_steps=2,
        on_epoch_start=snapshot,
    )

    for key, tensor in initial.items():  # weights and BatchNorm statistics
        assert torch.equal(after_warm_up[key], tensor), key
    bn_bias = model.backbone[1].bias
    assert bn_bias.requires_grad and optimizer.state[bn_bias], "not stepped after unfreezing"
    assert _group_of(optimizer, bn_bias)["lr"] == pytest.approx(LR * MULTIPLIER)
    assert _group_of(optimizer, bn_bias)["weight_decay"] == 0.0
    conv_weight = model.backbone[0].weight
    assert optimizer.state[conv_weight]
    assert _group_of(optimizer, conv_weight)["lr"] == pytest.approx(LR * MULTIPLIER)
    assert _group_of(optimizer, conv_weight)["weight_decay"] == WEIGHT_DECAY
