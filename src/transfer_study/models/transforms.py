"""Train and eval transforms built from parameters, for cached ``uint8`` image tensors,
and ``decode_resized``, which turns an image file into such a tensor.

Augmentations are torchvision ``transforms.v2`` classes named in YAML with their
arguments, so anything torchvision offers is available without code changes. The
geometry (crop size) and normalisation come from ``Preprocessing``, i.e. from the
backbone's pretrained weights.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch
from PIL import Image, ImageOps
from torchvision.transforms import InterpolationMode, v2

from transfer_study.images import decode_rgb

from .preprocessing import Preprocessing

# Augmentations that output a fixed size are given the network's input size when the
# YAML leaves `size` out, so parameters need not repeat the backbone's resolution.
_SIZED_AUGMENTATIONS = {"RandomResizedCrop", "RandomCrop", "CenterCrop", "Resize"}
# Resizing augmentations default to the weights' interpolation; rotations and warps on
# tensors support only nearest/bilinear, so they keep torchvision's own default.
_RESIZING_AUGMENTATIONS = {"RandomResizedCrop", "Resize"}
_PIL_INTERPOLATION = {"bilinear": Image.Resampling.BILINEAR, "bicubic": Image.Resampling.BICUBIC}


def _augmentation(spec: Mapping[str, Any], preprocessing: Preprocessing) -> v2.Transform:
    arguments = dict(spec)
    name = arguments.pop("name", None)
    transform_class = getattr(v2, name, None) if isinstance(name, str) else None
    if not (isinstance(transform_class, type) and issubclass(transform_class, v2.Transform)):
        raise ValueError(
            f"Unknown augmentation {name!r}: use the name of a torchvision.transforms.v2 "
            "class, e.g. RandomResizedCrop, RandomHorizontalFlip, RandomRotation, ColorJitter."
        )
    if name in _SIZED_AUGMENTATIONS:
        arguments.setdefault("size", preprocessing.input_size)
    if name in _RESIZING_AUGMENTATIONS:
        arguments.setdefault("interpolation", InterpolationMode(preprocessing.interpolation))
    try:
        return transform_class(**arguments)
    except (TypeError, ValueError) as error:
        raise ValueError(f"Invalid arguments for augmentation {name}: {error}") from error


def _to_normalised_float(preprocessing: Preprocessing) -> list[v2.Transform]:
    return [
        v2.ToDtype(torch.float32, scale=True),
        v2.Normalize(mean=list(preprocessing.mean), std=list(preprocessing.std)),
    ]


def _downscaled(preprocessing: Preprocessing, output_size: int | None) -> list[v2.Transform]:
    """Progressive resizing's smaller input: the full-size result, resized. The same
    augmentations and crop as at full size, so a stage differs only in resolution."""
    if output_size is None or output_size == preprocessing.input_size:
        return []
    interpolation = InterpolationMode(preprocessing.interpolation)
    return [v2.Resize(output_size, interpolation=interpolation, antialias=True)]


def build_train_transform(
    *,
    preprocessing: Preprocessing,
    augmentations: Sequence[Mapping[str, Any]],
    output_size: int | None = None,
) -> v2.Compose:
    """Builds the training transform: the listed augmentations, then normalisation.

    If no augmentation yields the input size (e.g. no ``RandomResizedCrop``), a centre
    crop is added so that every batch has the network's input size.

    Args:
        preprocessing: Sizes and normalisation of the backbone's weights.
        augmentations: ``[{name: RandomHorizontalFlip, p: 0.5}, ...]``, applied in order.
        output_size: Resize the result to this side (progressive resizing's early
            stages); ``None``: the input size.

    Returns:
        A transform from a ``uint8`` CHW tensor to a normalised ``float32`` tensor.

    Raises:
        ValueError: For an unknown augmentation name or invalid arguments.
    """
    steps = [_augmentation(spec, preprocessing) for spec in augmentations]
    if not any(spec.get("name") in _SIZED_AUGMENTATIONS for spec in augmentations):
        steps.append(v2.CenterCrop(preprocessing.input_size))
    steps += _downscaled(preprocessing, output_size)
    return v2.Compose(steps + _to_normalised_float(preprocessing))


def build_eval_transform(
    *, preprocessing: Preprocessing, output_size: int | None = None
) -> v2.Compose:
    """Builds the evaluation transform: centre crop to the input size, then normalisation.

    Args:
        preprocessing: Sizes and normalisation of the backbone's weights.
        output_size: Resize the crop to this side (as ``build_train_transform``).

    Returns:
        A deterministic transform from a ``uint8`` CHW tensor to a normalised tensor.
    """
    return v2.Compose(
        [
            v2.CenterCrop(preprocessing.input_size),
            *_downscaled(preprocessing, output_size),
            *_to_normalised_float(preprocessing),
        ]
    )


def decode_resized(data: bytes, *, preprocessing: Preprocessing) -> torch.Tensor:
    """Decodes an image file into the ``uint8`` square that both transforms start from.

    The file is decoded to upright RGB by ``decode_rgb`` (EXIF orientation, grayscale,
    palette, alpha, CMYK and 16-bit files handled; JPEGs at the smallest DCT scale that
    keeps ``resize_size``), its shorter side resized to ``preprocessing.resize_size`` and
    the centre cropped to a square: the eval transform then takes the middle, and
    training's random crops draw from the whole square. The decoded-image cache stores
    exactly this, and inference computes it the same way.

    Args:
        data: The raw bytes of an image file.
        preprocessing: Gives the side (``resize_size``) and the resampling filter.

    Returns:
        A ``uint8`` tensor of shape ``(3, resize_size, resize_size)``.

    Raises:
        ImageDecodeError: If the bytes are not a usable image; the message says why.
    """
    size = preprocessing.resize_size
    image = decode_rgb(data, draft_size=size).image
    method = _PIL_INTERPOLATION[preprocessing.interpolation]
    square = ImageOps.fit(image, (size, size), method=method)
    return torch.from_numpy(np.asarray(square, dtype=np.uint8).copy()).permute(2, 0, 1)
