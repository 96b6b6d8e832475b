"""Weights files: checkpoint containers and wrapper prefixes that timm's loader unwraps.

The rest of weights loading (architectures, classifiers, bundled and cached ImageNet
weights) is tested through the factory in test_factory.py.
"""

from __future__ import annotations

import pytest
import torch
from torch import nn

from transfer_study.models.weights import load_weights_file


def test_weights_file_of_a_compiled_model_loads_without_its_orig_mod_prefix(tmp_path):
    source = nn.Sequential(nn.Linear(2, 3), nn.BatchNorm1d(3))
    compiled = torch.compile(source)  # compiles lazily: nothing runs until a forward pass
    assert all(key.startswith("_orig_mod.") for key in compiled.state_dict())
    path = tmp_path / "compiled.pt"
    torch.save(compiled.state_dict(), path)

    loaded = load_weights_file(str(path))

    assert list(loaded) == list(source.state_dict())
    fresh = nn.Sequential(nn.Linear(2, 3), nn.BatchNorm1d(3))
    fresh.load_state_dict(loaded)
    assert torch.equal(fresh[0].weight, source[0].weight)


@pytest.mark.parametrize("prefix", ["module.", "module._orig_mod.", "_orig_mod."])
def test_load_weights_file_unwraps_state_dict_and_strips_wrapper_prefixes(tmp_path, prefix):
    path = tmp_path / "checkpoint.pth"
    state = {"layer.weight": torch.ones(2), "layer.bias": torch.zeros(2)}
    wrapped = {f"{prefix}{key}": value for key, value in state.items()}
    torch.save({"state_dict": wrapped, "epoch": 3}, path)

    assert load_weights_file(str(path)).keys() == state.keys()


def test_load_weights_file_takes_the_trained_weights_not_an_ema_copy(tmp_path):
    path = tmp_path / "timm_checkpoint.pth"
    trained, ema = {"w": torch.ones(1)}, {"w": torch.zeros(1)}
    torch.save({"state_dict": trained, "state_dict_ema": ema}, path)

    assert torch.equal(load_weights_file(str(path))["w"], trained["w"])


def test_weights_file_holding_a_bare_tensor_is_refused(tmp_path):
    path = tmp_path / "tensor.pt"
    torch.save(torch.ones(3), path)

    with pytest.raises(ValueError, match="holds no state dict"):
        load_weights_file(str(path))
