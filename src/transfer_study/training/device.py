"""Where and how tensors are computed: the device, mixed precision, the memory format,
``torch.compile``, and on a CPU the allocator and the threads."""

from __future__ import annotations

import contextlib
import ctypes
import functools
import logging
import math
import os
import sys
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

logger = logging.getLogger(__name__)

DEVICE_AUTO = "auto"
_CPU = "cpu"
# Accelerators that can be asked for by name; "auto" takes whichever torch reports.
_ACCELERATORS = ("cuda", "mps")
_CGROUP_CPU_MAX = Path("/sys/fs/cgroup/cpu.max")


@dataclass(frozen=True)
class DeviceSettings:
    """Where and how tensors are computed.

    Attributes:
        device: The torch device.
        channels_last: Use the channels-last memory format for 4-D inputs (faster
            convolutions on CPU and GPU).
        amp: Mixed precision (float16 autocast with gradient scaling) on CUDA.
        cpu_bfloat16: bfloat16 autocast on a CPU (chosen by ``cpu_tuning``).
    """

    device: torch.device
    channels_last: bool
    amp: bool
    cpu_bfloat16: bool = False

    def to_device(self, inputs: torch.Tensor) -> torch.Tensor:
        """Moves a batch to the device in the chosen memory format."""
        inputs = inputs.to(self.device, non_blocking=True)
        if self.channels_last and inputs.dim() == 4:
            inputs = inputs.contiguous(memory_format=torch.channels_last)
        return inputs

    def autocast(self) -> contextlib.AbstractContextManager:
        """Mixed precision: float16 on CUDA when enabled, bfloat16 on a CPU when chosen,
        otherwise a no-op."""
        if self.amp and self.device.type == "cuda":
            return torch.autocast("cuda", dtype=torch.float16)
        if self.cpu_bfloat16 and self.device.type == _CPU:
            return torch.autocast(_CPU, dtype=torch.bfloat16)
        return contextlib.nullcontext()

    @property
    def precision(self) -> str:
        """The precision training computes in, for the record."""
        if self.amp and self.device.type == "cuda":
            return "float16 autocast"
        return "bfloat16 autocast" if self.cpu_bfloat16 and self.device.type == _CPU else "float32"


def pick_device(preference: str = DEVICE_AUTO) -> torch.device:
    """Chooses the device to train and evaluate on.

    Args:
        preference: ``"auto"`` (the accelerator torch was built for if it is available
            here, e.g. CUDA or Apple MPS, else CPU), or ``"cpu"``, ``"cuda"`` or ``"mps"``
            explicitly.

    Returns:
        The device.

    Raises:
        ValueError: If the preference is not one of the names above.
        RuntimeError: If an explicitly requested accelerator is not available.
    """
    choices = [DEVICE_AUTO, _CPU, *_ACCELERATORS]
    if preference not in choices:
        raise ValueError(f"Unknown device '{preference}'; use one of {choices}.")
    if preference == _CPU:
        return torch.device(_CPU)
    # check_available: a CUDA build names "cuda" even on a machine without a GPU.
    accelerator = torch.accelerator.current_accelerator(check_available=True)
    if preference == DEVICE_AUTO:
        return torch.device(accelerator.type if accelerator is not None else _CPU)
    if accelerator is None or accelerator.type != preference:
        raise RuntimeError(
            f"Device '{preference}' was requested but is not available on this machine; "
            f"use '{DEVICE_AUTO}' or '{_CPU}'."
        )
    return torch.device(preference)


def _device_settings(preference: str, *, channels_last: bool | str, amp: bool) -> DeviceSettings:
    """The device and its settings; ``channels_last: auto`` is on until ``cpu_tuning``
    measures a training's model (it helps inference everywhere measured)."""
    device = pick_device(preference)
    torch.backends.cudnn.benchmark = device.type == "cuda"
    if device.type == _CPU:
        tune_cpu_allocator()  # once per process; every CPU computation gets it
        limit_threads_to_available_cpus()
    return DeviceSettings(device=device, channels_last=channels_last is not False, amp=amp)


def maybe_compile(model: nn.Module, setting: bool | str, device: torch.device) -> nn.Module:
    """``torch.compile``s the model for training when asked, or on CUDA for ``auto``.

    On CPU the compilation costs more than short trainings gain (EfficientNet-Lite0 on
    2 cores: 82 s to compile for 1.23x faster steps; docs/performance.md).
    """
    enabled = device.type == "cuda" if setting == "auto" else bool(setting)
    return torch.compile(model) if enabled else model


def _memory_format(settings: DeviceSettings) -> torch.memory_format:
    return torch.channels_last if settings.channels_last else torch.preserve_format


@functools.cache
def tune_cpu_allocator() -> bool:
    """Stops glibc's allocator from returning big training buffers to the kernel.

    At 224 px the activations of a training step are large enough for glibc to ``mmap``
    and unmap them on every step: measured on 2 cores, EfficientNet-Lite0 training ran
    at 10.5 img/s with the defaults and 19.3 img/s with this (as the environment
    variable ``GLIBC_TUNABLES=glibc.malloc.mmap_max=0:glibc.malloc.trim_threshold=…``
    does, but that must be set before Python starts). Applied once per process, on
    Linux with glibc only; elsewhere it does nothing.

    Returns:
        Whether the allocator was tuned.
    """
    if sys.platform != "linux":
        return False
    try:
        libc = ctypes.CDLL("libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # musl and other libcs have no mallopt
        return False
    m_trim_threshold, m_mmap_max = -1, -4  # glibc's <malloc.h>
    return bool(mallopt(m_mmap_max, 0)) and bool(mallopt(m_trim_threshold, 2**31 - 1))


def available_cpus() -> int:
    """The cores this process may use: its CPU affinity, capped by a cgroup v2 quota."""
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:  # macOS and Windows have no affinity call
        cpus = os.cpu_count() or 1
    try:
        quota, period = _CGROUP_CPU_MAX.read_text().split()[:2]
    except (OSError, ValueError):
        return cpus
    if quota == "max":
        return cpus
    return max(1, min(cpus, math.ceil(int(quota) / int(period))))


@functools.cache
def limit_threads_to_available_cpus() -> int:
    """Lowers torch's thread count to the cores this process may use; returns it.

    torch counts the machine's cores; in a container with a CPU quota, threads beyond
    it wait for each other and training slows several-fold. Once per process.
    """
    cpus = available_cpus()
    if torch.get_num_threads() > cpus:
        logger.info("Using %d threads: this process may use %d CPUs.", cpus, cpus)
        torch.set_num_threads(cpus)
    return torch.get_num_threads()
