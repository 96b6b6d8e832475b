"""CPU settings measured rather than assumed: threads, memory format and precision."""

from __future__ import annotations

import dataclasses

import pytest
import torch
from torch import nn

from transfer_study.training import cpu_tuning, device
from transfer_study.training.cpu_tuning import measure_cpu_choice, tuned_for_training
from transfer_study.training.device import (
    DeviceSettings,
    available_cpus,
    limit_threads_to_available_cpus,
)

CPU = DeviceSettings(device=torch.device("cpu"), channels_last=True, amp=True)
SHAPE = (32, 3, 64, 64)


def _model() -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(3, 8, 3), nn.Dropout(0.5), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 2)
    )


def _timer(seconds: dict[tuple[bool, bool], float]):
    """A timer that reports ``seconds[(channels_last, bfloat16)]`` and records calls."""
    calls = []

    def timer(module, inputs, *, channels_last, bfloat16):
        calls.append((channels_last, bfloat16, tuple(inputs.shape)))
        return seconds[(channels_last, bfloat16)]

    timer.calls = calls
    return timer


@pytest.mark.parametrize(
    ("channels_last_seconds", "chosen"), [(0.5, True), (1.0, True), (1.15, True), (1.3, False)]
)
def test_channels_last_gives_way_only_to_a_clearly_faster_default_format(
    channels_last_seconds, chosen
):
    timer = _timer({(False, False): 1.0, (True, False): channels_last_seconds})
    choice = measure_cpu_choice(_model(), SHAPE, try_bfloat16=False, timer=timer)
    assert choice.channels_last is chosen
    assert choice.bfloat16 is False
    assert choice.seconds == {"float32": 1.0, "float32, channels-last": channels_last_seconds}
    # Measured on a batch of at most 16: the shape is otherwise the training's.
    assert {call[2] for call in timer.calls} == {(16, 3, 64, 64)}


@pytest.mark.parametrize(("bfloat16_seconds", "chosen"), [(0.4, True), (0.7, False), (2.0, False)])
def test_bfloat16_is_tried_in_the_chosen_format_and_kept_only_when_clearly_faster(
    bfloat16_seconds, chosen
):
    seconds = {(False, False): 1.0, (True, False): 0.8, (True, True): bfloat16_seconds}
    timer = _timer(seconds)
    choice = measure_cpu_choice(_model(), SHAPE, try_bfloat16=True, timer=timer)
    assert choice.channels_last is True
    assert choice.bfloat16 is chosen
    assert (True, True, (16, 3, 64, 64)) in timer.calls


def test_measuring_touches_neither_the_model_nor_the_random_stream():
    model = _model()
    before = {name: tensor.clone() for name, tensor in model.state_dict().items()}
    torch.manual_seed(3)
    expected = torch.rand(4)
    torch.manual_seed(3)
    choice = measure_cpu_choice(model, (4, 3, 16, 16), try_bfloat16=True)
    assert torch.equal(torch.rand(4), expected)
    assert all(torch.equal(before[name], tensor) for name, tensor in model.state_dict().items())
    assert all(parameter.grad is None for parameter in model.parameters())
    assert set(choice.seconds) >= {"float32", "float32, channels-last"}
    assert all(seconds > 0 for seconds in choice.seconds.values())


@pytest.fixture
def measured(monkeypatch):
    """Replaces the measurement; returns the shapes it was asked to measure."""
    asked = []

    def fake(module, input_shape, *, try_bfloat16):
        asked.append((tuple(input_shape), try_bfloat16))
        return cpu_tuning.CpuChoice(
            channels_last=False, bfloat16=try_bfloat16, seconds={"float32": 0.5}
        )

    monkeypatch.setattr(cpu_tuning, "_CHOICES", {})
    monkeypatch.setattr(cpu_tuning, "measure_cpu_choice", fake)
    return asked


def test_auto_settings_follow_the_measurement_once_per_model_and_shape(measured, monkeypatch):
    monkeypatch.setattr(cpu_tuning, "cpu_supports_bfloat16", lambda: True)
    model = _model()
    for _ in range(2):
        tuned = tuned_for_training(CPU, model, SHAPE, channels_last="auto", precision="auto")
        assert (tuned.channels_last, tuned.cpu_bfloat16) == (False, True)
    assert measured == [(SHAPE, True)]
    assert tuned.precision == "bfloat16 autocast"
    tuned_for_training(CPU, model, (8, 3, 32, 32), channels_last="auto", precision="auto")
    assert len(measured) == 2


def test_bfloat16_is_not_tried_where_the_cpu_lacks_it(measured, monkeypatch):
    monkeypatch.setattr(cpu_tuning, "cpu_supports_bfloat16", lambda: False)
    tuned = tuned_for_training(CPU, _model(), SHAPE, channels_last="auto", precision="auto")
    assert measured == [(SHAPE, False)]
    assert tuned.cpu_bfloat16 is False and tuned.precision == "float32"


def test_explicit_settings_are_kept_without_measuring(measured):
    tuned = tuned_for_training(CPU, _model(), SHAPE, channels_last=False, precision="bfloat16")
    assert (tuned.channels_last, tuned.cpu_bfloat16) == (False, True)
    tuned = tuned_for_training(CPU, _model(), SHAPE, channels_last=True, precision="float32")
    assert (tuned.channels_last, tuned.cpu_bfloat16) == (True, False)
    # 2-D inputs (a head on features) have no memory format to choose.
    tuned = tuned_for_training(
        CPU, nn.Linear(8, 2), (32, 8), channels_last="auto", precision="float32"
    )
    assert tuned.channels_last is False
    assert measured == []


def test_a_pass_too_short_to_time_keeps_the_defaults(monkeypatch):
    fast = cpu_tuning.CpuChoice(channels_last=False, bfloat16=True, seconds={"float32": 0.001})
    monkeypatch.setattr(cpu_tuning, "_CHOICES", {})
    monkeypatch.setattr(cpu_tuning, "measure_cpu_choice", lambda *a, **k: fast)
    monkeypatch.setattr(cpu_tuning, "cpu_supports_bfloat16", lambda: True)
    tuned = tuned_for_training(CPU, _model(), SHAPE, channels_last="auto", precision="auto")
    assert (tuned.channels_last, tuned.cpu_bfloat16) == (True, False)


def test_other_devices_are_left_as_they_are(measured):
    gpu = dataclasses.replace(CPU, device=torch.device("cuda"))
    assert tuned_for_training(gpu, _model(), SHAPE, channels_last="auto", precision="auto") is gpu
    assert measured == []


def test_the_cpu_autocast_computes_in_bfloat16_when_chosen():
    layer = nn.Linear(4, 2)
    with dataclasses.replace(CPU, cpu_bfloat16=True).autocast():
        assert layer(torch.ones(1, 4)).dtype == torch.bfloat16
    with CPU.autocast():
        assert layer(torch.ones(1, 4)).dtype == torch.float32


def test_a_cgroup_quota_caps_the_cpus(tmp_path, monkeypatch):
    quota = tmp_path / "cpu.max"
    monkeypatch.setattr(device, "_CGROUP_CPU_MAX", quota)
    monkeypatch.setattr(device.os, "sched_getaffinity", lambda _: set(range(8)))
    quota.write_text("150000 100000\n")
    assert available_cpus() == 2
    quota.write_text("max 100000\n")
    assert available_cpus() == 8
    quota.unlink()
    assert available_cpus() == 8


def test_threads_are_lowered_to_the_cpus_this_process_may_use(monkeypatch):
    threads = torch.get_num_threads()
    monkeypatch.setattr(device, "available_cpus", lambda: 1)
    try:
        assert limit_threads_to_available_cpus.__wrapped__() == 1
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(threads)
