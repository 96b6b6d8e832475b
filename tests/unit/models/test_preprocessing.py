"""Preprocessing comes from the weights' metadata; transforms from parameters."""

from __future__ import annotations

import pytest
import timm
import timm.data
import torch
from torchvision import transforms

from transfer_study.models.preprocessing import (
    Preprocessing,
    auto_input_size,
    preprocessing_for,
    pretrained_preprocessing,
    scaled_to_input_size,
)
from transfer_study.models.transforms import build_eval_transform, build_train_transform


def test_bundled_efficientnet_lite0_uses_timm_tf_lite0_config():
    preprocessing = pretrained_preprocessing("efficientnet_lite0")
    assert preprocessing.mean == (0.5, 0.5, 0.5)
    assert preprocessing.std == (0.5, 0.5, 0.5)
    assert preprocessing.input_size == 224
    assert preprocessing.resize_size == 256
    assert preprocessing.interpolation == "bicubic"


def test_bundled_efficientnet_lite0_matches_timm_data_config_of_the_model():
    model = timm.create_model("tf_efficientnet_lite0", pretrained=False, num_classes=0)
    config = timm.data.resolve_model_data_config(model)
    preprocessing = pretrained_preprocessing("efficientnet_lite0")

    assert preprocessing.input_size == config["input_size"][-1]
    assert preprocessing.input_size / preprocessing.resize_size == config["crop_pct"]
    assert (preprocessing.mean, preprocessing.std) == (config["mean"], config["std"])
    assert preprocessing.interpolation == config["interpolation"]


@pytest.mark.parametrize("backbone", ["tf_efficientnet_lite1", "coat_lite_mini"])
def test_timm_backbone_resizes_and_crops_like_timm_eval_transform(backbone):
    config = timm.data.resolve_data_config(
        pretrained_cfg=timm.get_pretrained_cfg(backbone).to_dict()
    )
    steps = timm.data.create_transform(**config, is_training=False).transforms
    resize = next(step for step in steps if isinstance(step, transforms.Resize))
    crop = next(step for step in steps if isinstance(step, transforms.CenterCrop))

    preprocessing = pretrained_preprocessing(backbone)

    assert preprocessing.resize_size == resize.size  # coat_lite_mini: 224 / 0.9 floored = 248
    assert (preprocessing.input_size, preprocessing.input_size) == tuple(crop.size)
    assert preprocessing.interpolation == resize.interpolation.value


@pytest.mark.parametrize("backbone", ["resnet18", "vgg16", "densenet121", "mobilenet_v2"])
def test_torchvision_backbones_use_their_weights_imagenet_normalisation(backbone):
    preprocessing = pretrained_preprocessing(backbone)
    assert preprocessing.mean == pytest.approx((0.485, 0.456, 0.406))
    assert preprocessing.std == pytest.approx((0.229, 0.224, 0.225))
    assert preprocessing.input_size == 224


def test_timm_only_backbone_is_found_by_name():
    assert pretrained_preprocessing("tf_efficientnet_lite1").input_size == 240


def test_unknown_backbone_is_refused_with_suggestions():
    with pytest.raises(ValueError, match=r"Unknown backbone 'resnet1800'.*resnet18"):
        pretrained_preprocessing("resnet1800")


def test_scaling_keeps_the_crop_ratio_and_normalisation():
    native = pretrained_preprocessing("efficientnet_lite0")
    scaled = scaled_to_input_size(native, 128)
    assert (scaled.input_size, scaled.resize_size) == (128, 146)
    assert scaled.mean == native.mean
    assert scaled_to_input_size(native, None) is native
    with pytest.raises(ValueError, match="too small"):
        scaled_to_input_size(native, 16)


def test_preprocessing_round_trips_through_a_dict():
    preprocessing = pretrained_preprocessing("resnet18")
    assert Preprocessing.from_dict(preprocessing.to_dict()) == preprocessing


AUGMENTATIONS = [
    {"name": "RandomResizedCrop", "scale": [0.6, 1.0]},
    {"name": "RandomHorizontalFlip"},
    {"name": "RandomRotation", "degrees": 15},
    {"name": "ColorJitter", "brightness": 0.2, "contrast": 0.2},
]


def test_train_transform_outputs_normalised_input_size_tensors():
    preprocessing = scaled_to_input_size(pretrained_preprocessing("efficientnet_lite0"), 64)
    transform = build_train_transform(preprocessing=preprocessing, augmentations=AUGMENTATIONS)
    image = torch.full(
        (3, preprocessing.resize_size, preprocessing.resize_size), 255, dtype=torch.uint8
    )
    out = transform(image)
    assert out.shape == (3, 64, 64)
    assert out.dtype == torch.float32
    assert out.max() <= 1.0 + 1e-6  # (1 - 0.5) / 0.5 for a white image


def test_train_transform_without_a_crop_still_yields_the_input_size():
    preprocessing = scaled_to_input_size(pretrained_preprocessing("resnet18"), 48)
    transform = build_train_transform(
        preprocessing=preprocessing, augmentations=[{"name": "RandomHorizontalFlip"}]
    )
    assert transform(torch.zeros((3, 55, 55), dtype=torch.uint8)).shape == (3, 48, 48)


def test_eval_transform_is_a_deterministic_centre_crop():
    preprocessing = scaled_to_input_size(pretrained_preprocessing("resnet18"), 32)
    image = torch.randint(
        0, 256, (3, preprocessing.resize_size, preprocessing.resize_size), dtype=torch.uint8
    )
    transform = build_eval_transform(preprocessing=preprocessing)
    assert torch.equal(transform(image), transform(image))
    assert transform(image).shape == (3, 32, 32)


@pytest.mark.parametrize(
    ("augmentation", "message"),
    [
        ({"name": "RandomBlurOfDoom"}, "Unknown augmentation"),
        ({"name": "Compose"}, "Invalid arguments"),
        ({"name": "RandomRotation", "angle": 3}, "Invalid arguments"),
        ({"p": 0.5}, "Unknown augmentation"),
    ],
)
def test_bad_augmentations_are_refused(augmentation, message):
    preprocessing = pretrained_preprocessing("resnet18")
    with pytest.raises(ValueError, match=message):
        build_train_transform(preprocessing=preprocessing, augmentations=[augmentation])


@pytest.mark.parametrize(
    ("shorter_sides", "expected"),
    [
        ([256, 300, 480], 224),  # large photos: the weights' native size
        ([128] * 5, 128),  # the demo's 128-px photos: no upscaling
        ([100, 150, 200], 128),  # median 150, rounded down to a multiple of 32
        ([20, 20, 20], 32),  # never below the backbones' minimum
        ([], 224),
    ],
)
def test_auto_input_size_is_native_but_never_above_the_photos_median_shorter_side(
    shorter_sides, expected
):
    assert auto_input_size(224, shorter_sides) == expected


def test_auto_image_size_resolves_from_the_photos_and_a_number_is_used_as_given():
    assert preprocessing_for("efficientnet_lite0", "auto", [128, 128]).input_size == 128
    assert preprocessing_for("efficientnet_lite0", "auto", [512, 600]).input_size == 224
    assert preprocessing_for("efficientnet_lite0", 96, [512, 600]).input_size == 96
