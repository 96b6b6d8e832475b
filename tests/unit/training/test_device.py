"""Device choice: torch.accelerator for "auto", explicit devices checked."""

from __future__ import annotations

import pytest
import torch

from transfer_study.training.device import pick_device


def _accelerator(monkeypatch: pytest.MonkeyPatch, built: str | None, *, available: bool) -> None:
    """Pretends torch was built for ``built`` (None: CPU only), usable here or not."""

    def current_accelerator(check_available: bool = False) -> torch.device | None:
        if built is None or (check_available and not available):
            return None
        return torch.device(built)

    monkeypatch.setattr(torch.accelerator, "current_accelerator", current_accelerator)


@pytest.mark.parametrize("accelerator", ["cuda", "mps"])
def test_auto_device_is_the_available_accelerator(monkeypatch, accelerator):
    _accelerator(monkeypatch, accelerator, available=True)

    assert pick_device("auto") == torch.device(accelerator)


@pytest.mark.parametrize("built", [None, "cuda"])
def test_auto_device_is_the_cpu_without_a_usable_accelerator(monkeypatch, built):
    _accelerator(monkeypatch, built, available=False)  # "cuda": a CUDA build, no GPU

    assert pick_device("auto") == torch.device("cpu")


def test_auto_device_agrees_with_what_this_machine_has():
    has_mps = torch.backends.mps.is_available()
    expected = "cuda" if torch.cuda.is_available() else "mps" if has_mps else "cpu"

    assert pick_device("auto") == torch.device(expected)


@pytest.mark.parametrize("accelerator", ["cuda", "mps"])
def test_explicit_devices_are_honoured(monkeypatch, accelerator):
    _accelerator(monkeypatch, accelerator, available=True)

    assert pick_device("cpu") == torch.device("cpu")
    assert pick_device(accelerator) == torch.device(accelerator)


@pytest.mark.parametrize(("device", "built"), [("cuda", "cuda"), ("mps", None), ("cuda", "mps")])
def test_unavailable_explicit_device_is_refused(monkeypatch, device, built):
    _accelerator(monkeypatch, built, available=built != device)

    with pytest.raises(RuntimeError, match=f"'{device}' was requested but is not available"):
        pick_device(device)


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_cuda_asked_for_on_a_machine_without_it_is_refused():
    with pytest.raises(RuntimeError, match="'cuda' was requested but is not available"):
        pick_device("cuda")


def test_unknown_device_is_refused():
    with pytest.raises(ValueError, match="Unknown device 'tpu'"):
        pick_device("tpu")
