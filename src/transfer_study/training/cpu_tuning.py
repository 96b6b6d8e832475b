"""CPU settings detected and measured on this machine, not assumed.

Laptops and servers differ in what pays: channels-last made EfficientNet-Lite0 training
1.66x faster at 224 px on the development machine and 1.12x at 96 px, bfloat16 autocast
made ResNet-18 training 2.7x faster at 224 px on a CPU with AMX and EfficientNet-Lite0
training slower (its depthwise convolutions gain nothing). So the memory format and
precision are each chosen by timing the model's own training pass both ways, once per
model, input shape and process (threads: ``device.limit_threads_to_available_cpus``).
bfloat16 is only tried where the CPU has AMX or AVX-512 BF16 (elsewhere torch emulates
it: 12x slower here), and chosen only when it is clearly faster: the choice is then
stable from run to run and is recorded with the training.
"""

from __future__ import annotations

import copy
import dataclasses
import logging
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import torch
from torch import nn

from transfer_study.training.device import DeviceSettings

logger = logging.getLogger(__name__)

CpuPrecision = Literal["auto", "float32", "bfloat16"]
# A default (channels-last, float32) gives way only to an option at least this much
# faster: timing noise on a busy laptop is ~5-10 %, and a flip between runs would change
# the numerics.
_MIN_SPEEDUP = 1.2
_TIMED_PASSES = 3
_MAX_PROBE_BATCH = 16


@dataclass(frozen=True)
class CpuChoice:
    """What the measurement chose for one model and input shape.

    Attributes:
        channels_last: Use the channels-last memory format.
        bfloat16: Train under bfloat16 autocast.
        seconds: The measured pass (forward and backward) of each option tried.
    """

    channels_last: bool
    bfloat16: bool
    seconds: dict[str, float]


def cpu_supports_bfloat16() -> bool:
    """Whether the CPU computes bfloat16 natively (AMX tiles or AVX-512 BF16)."""
    checks = ("_is_amx_tile_supported", "_is_avx512_bf16_supported")
    # Private torch helpers (torch.cpu, 2.x); a torch without them reports no support.
    return any(bool(getattr(torch.cpu, name, lambda: False)()) for name in checks)


def _pass_seconds(
    module: nn.Module, inputs: torch.Tensor, *, channels_last: bool, bfloat16: bool
) -> float:
    """The median time of a forward and backward pass of ``module`` on ``inputs``."""
    if channels_last:
        module = module.to(memory_format=torch.channels_last)
        inputs = inputs.contiguous(memory_format=torch.channels_last)
    else:
        module = module.to(memory_format=torch.contiguous_format)
        inputs = inputs.contiguous()

    def one_pass() -> None:
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bfloat16):
            output = module(inputs)
        output.float().sum().backward()

    one_pass()  # warm-up: allocations, oneDNN's kernel choice
    times = []
    for _ in range(_TIMED_PASSES):
        started = time.perf_counter()
        one_pass()
        times.append(time.perf_counter() - started)
    module.zero_grad(set_to_none=True)
    return statistics.median(times)


def measure_cpu_choice(
    module: nn.Module,
    input_shape: tuple[int, ...],
    *,
    try_bfloat16: bool,
    timer: Callable[..., float] = _pass_seconds,
) -> CpuChoice:
    """Times the training pass of a copy of ``module`` in each format and precision.

    Args:
        module: What trains (it is copied: its weights and gradients are untouched).
        input_shape: One training batch's shape (the batch is capped at 16 to measure).
        try_bfloat16: Also time bfloat16 autocast (where the CPU supports it natively).
        timer: Measures one option (tests replace it).

    Returns:
        channels-last unless contiguous was at least 1.2x faster; bfloat16 if
        it was at least 1.2x faster than float32 in the format chosen.
    """
    # Dropout draws from the global generator: fork it, so the training that follows
    # draws the same numbers whether or not this process measured (the choice is cached).
    with torch.random.fork_rng(devices=[]):
        return _measure(copy.deepcopy(module).train(), input_shape, try_bfloat16, timer)


def _measure(
    probe: nn.Module,
    input_shape: tuple[int, ...],
    try_bfloat16: bool,
    timer: Callable[..., float],
) -> CpuChoice:
    shape = (min(input_shape[0], _MAX_PROBE_BATCH), *input_shape[1:])
    inputs = torch.randn(shape, generator=torch.Generator().manual_seed(0))
    seconds = {"float32": timer(probe, inputs, channels_last=False, bfloat16=False)}
    channels_last = False
    if inputs.dim() == 4:
        seconds["float32, channels-last"] = timer(probe, inputs, channels_last=True, bfloat16=False)
        # Channels-last is the default (it helped inference everywhere measured); the
        # contiguous format replaces it only when clearly faster.
        channels_last = seconds["float32, channels-last"] < _MIN_SPEEDUP * seconds["float32"]
    bfloat16 = False
    if try_bfloat16:
        chosen = seconds["float32, channels-last" if channels_last else "float32"]
        label = "bfloat16, channels-last" if channels_last else "bfloat16"
        seconds[label] = timer(probe, inputs, channels_last=channels_last, bfloat16=True)
        bfloat16 = chosen >= _MIN_SPEEDUP * seconds[label]
    return CpuChoice(channels_last, bfloat16, seconds)


# Passes faster than this are neither worth tuning nor timeable reliably: the default
# stays (channels-last on, float32), so tiny models do not flip settings between runs.
_MIN_TUNED_PASS_SECONDS = 0.02
_CHOICES: dict[tuple, CpuChoice] = {}


def _model_key(module: nn.Module, input_shape: tuple[int, ...], try_bfloat16: bool) -> tuple:
    parameters = list(module.parameters())
    trainable = sum(p.numel() for p in parameters if p.requires_grad)
    total = sum(p.numel() for p in parameters)
    return type(module).__name__, total, trainable, tuple(input_shape), try_bfloat16


def tuned_for_training(
    device: DeviceSettings,
    module: nn.Module,
    input_shape: tuple[int, ...],
    *,
    channels_last: bool | str,
    precision: str,
) -> DeviceSettings:
    """``device`` with the memory format and precision that train ``module`` fastest here.

    On a CPU, ``channels_last: auto`` and ``cpu_precision: auto`` are measured (once per
    model, batch shape and process); explicit settings are kept. Elsewhere ``device``
    is returned as it is.

    Args:
        device: The device settings (``_device_settings``).
        module: What trains.
        input_shape: One training batch's shape.
        channels_last: The ``channels_last`` setting.
        precision: The ``cpu_precision`` setting.

    Returns:
        The settings to train with.
    """
    if device.device.type != "cpu":
        return device
    measure_format = channels_last == "auto" and len(input_shape) == 4
    try_bfloat16 = precision == "auto" and cpu_supports_bfloat16()
    use_channels_last = channels_last is not False and len(input_shape) == 4
    bfloat16 = precision == "bfloat16"
    if measure_format or try_bfloat16:
        key = _model_key(module, input_shape, try_bfloat16)
        if key not in _CHOICES:
            _CHOICES[key] = measure_cpu_choice(module, input_shape, try_bfloat16=try_bfloat16)
            _log_choice(_CHOICES[key], input_shape)
        choice = _CHOICES[key]
        if choice.seconds["float32"] >= _MIN_TUNED_PASS_SECONDS:
            use_channels_last = choice.channels_last if measure_format else use_channels_last
            bfloat16 = choice.bfloat16 if try_bfloat16 else bfloat16
    return dataclasses.replace(device, channels_last=use_channels_last, cpu_bfloat16=bfloat16)


def _log_choice(choice: CpuChoice, input_shape: tuple[int, ...]) -> None:
    timings = ", ".join(f"{label} {seconds:.3f} s" for label, seconds in choice.seconds.items())
    logger.info(
        "CPU training pass at %s measured: %s; chosen: %s, %s.",
        "x".join(map(str, input_shape)),
        timings,
        "channels-last" if choice.channels_last else "contiguous",
        "bfloat16 autocast" if choice.bfloat16 else "float32",
    )
