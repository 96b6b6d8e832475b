"""Partial fine-tuning: the backbone cut into stages, the early stages' cache, and the
training of the later stages on it (the ``finetune_top`` variant)."""

from __future__ import annotations

import pandas as pd
import pytest
import torch
from pydantic import ValidationError

from tests.helpers.training_data import (
    MODEL,
    PREPROCESSING,
    brightness_photos,
    materialised,
    tiny_variant,
)
from transfer_study.models.factory import create_classifier
from transfer_study.models.stages import BackboneCutError, cut_backbone
from transfer_study.models.transforms import build_eval_transform
from transfer_study.training.intermediate import embed_intermediate
from transfer_study.training.partial import choose_lr_on_intermediate, train_on_intermediate
from transfer_study.training.timing import training_images_per_second


@pytest.fixture(scope="module")
def data() -> tuple[dict, pd.DataFrame]:
    """A decoded-image cache and split: two classes told apart by brightness."""
    return brightness_photos()


# EfficientNet-Lite0's parameter names per stage: blocks.0 … blocks.6.
_LATER = ("backbone.blocks.5.", "backbone.blocks.6.", "backbone.conv_head.", "backbone.bn2.")


@pytest.mark.parametrize(("backbone", "stages"), [("efficientnet_lite0", 7), ("resnet18", 4)])
def test_the_two_parts_compute_the_backbone_and_share_its_weights(backbone, stages):
    classifier = create_classifier(backbone, weights="none", num_classes=2).eval()
    cut = cut_backbone(classifier.backbone, backbone, trainable_stages=2)
    images = torch.randn(3, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(cut.trainable(cut.frozen(images)), classifier.backbone(images))
    assert (cut.stages, cut.trainable_stages) == (stages, 2)
    backbone_ids = {id(p) for p in classifier.backbone.parameters()}
    part_ids = {id(p) for p in [*cut.frozen.parameters(), *cut.trainable.parameters()]}
    assert part_ids == backbone_ids  # shared, not copied: training a part trains the model


def test_a_cut_with_no_frozen_or_no_trainable_stage_is_refused():
    backbone = create_classifier("efficientnet_lite0", weights="none", num_classes=2).backbone
    for stages in (0, 7):
        with pytest.raises(BackboneCutError, match="choose 1 to 6"):
            cut_backbone(backbone, "efficientnet_lite0", trainable_stages=stages)


def test_a_family_it_cannot_cut_is_refused_with_what_to_do():
    backbone = create_classifier("vgg11", weights="none", num_classes=2).backbone
    with pytest.raises(BackboneCutError, match="Fine-tune it whole"):
        cut_backbone(backbone, "vgg11", trainable_stages=1)


def test_a_cut_that_does_not_compute_the_backbone_is_refused():
    backbone = create_classifier("resnet18", weights="none", num_classes=2).backbone
    backbone.forward = lambda images: torch.zeros(len(images), 512)  # not its stages
    with pytest.raises(BackboneCutError, match="sequence of its"):
        cut_backbone(backbone, "resnet18", trainable_stages=1)


def test_trainable_stages_belong_to_the_partial_fine_tune_only():
    with pytest.raises(ValidationError, match="finetune_top needs trainable_stages"):
        tiny_variant("finetune_top", trainable_stages=None)
    with pytest.raises(ValidationError, match="applies to finetune_top only"):
        tiny_variant("finetune", trainable_stages=2)


def test_the_cache_holds_the_early_stages_output_of_every_photo_and_view(data):
    decoded, split = data
    jitter = [{"name": "ColorJitter", "brightness": 0.5}]
    settings = tiny_variant(
        "finetune_top", augmented_views=2, augmentations=jitter, channels_last=False
    )
    lazy = embed_intermediate(decoded, split, PREPROCESSING, MODEL, settings)
    ((_key, build),) = lazy.items()
    entry = build()
    assert entry["paths"] == split["path"].tolist()
    assert entry["augmented"].shape[:2] == (2, len(split))
    assert entry["features"].dtype == torch.float16
    # What the early stages compute from the un-augmented photos, to float16's precision.
    classifier = create_classifier("efficientnet_lite0", weights="imagenet", num_classes=2)
    frozen = cut_backbone(classifier.backbone, "efficientnet_lite0", 2).frozen.eval()
    images = decoded[next(iter(decoded))]()["images"]
    transform = build_eval_transform(preprocessing=PREPROCESSING)
    with torch.no_grad():
        expected = frozen(torch.stack([transform(image) for image in images]))
    torch.testing.assert_close(entry["features"].float(), expected, rtol=2e-3, atol=2e-3)
    # The two views differ from each other (augmented), and the size was estimated.
    assert not torch.equal(entry["augmented"][0], entry["augmented"][1])
    stored = entry["features"].numel() + entry["augmented"].numel()
    assert build.estimated_bytes == 2 * stored


def test_the_cache_is_shared_by_splits_of_the_same_photos_but_not_by_another_cut(data):
    decoded, split = data
    settings = tiny_variant("finetune_top")
    key = set(embed_intermediate(decoded, split, PREPROCESSING, MODEL, settings))
    other_split = split.assign(split=split["split"].replace({"train": "test", "test": "train"}))
    assert set(embed_intermediate(decoded, other_split, PREPROCESSING, MODEL, settings)) == key
    deeper = tiny_variant("finetune_top", trainable_stages=3)
    assert set(embed_intermediate(decoded, split, PREPROCESSING, MODEL, deeper)) != key


def test_only_the_later_stages_and_the_head_train_and_their_statistics_stay(data):
    decoded, split = data
    settings = tiny_variant("finetune_top", augmented_views=2, batchnorm="fixed")
    cache = materialised(embed_intermediate(decoded, split, PREPROCESSING, MODEL, settings))
    checkpoint, history, summary = train_on_intermediate(
        cache, split, PREPROCESSING, MODEL, settings
    )
    pretrained = create_classifier("efficientnet_lite0", weights="imagenet", num_classes=2)
    before = pretrained.state_dict()
    changed = {
        key
        for key, tensor in checkpoint["state_dict"].items()
        if key.startswith("backbone.") and not torch.equal(tensor, before[key])
    }
    assert changed, "the later stages did not train"
    assert all(key.startswith(_LATER) for key in changed), sorted(changed)[:5]
    assert not any("running_" in key for key in changed)  # batchnorm: fixed
    assert summary["trainable_stages"] == 2
    later = sum(p.numel() for n, p in pretrained.named_parameters() if n.startswith(_LATER))
    head = sum(p.numel() for p in pretrained.head.parameters())
    assert summary["trainable_params"] == later + head
    assert history["step"].iloc[-1] == 6  # 48 images in batches of 8


def test_the_learning_rate_is_chosen_on_the_cache_from_the_given_start(data):
    decoded, split = data
    settings = tiny_variant("finetune_top", lr="auto")
    cache = materialised(embed_intermediate(decoded, split, PREPROCESSING, MODEL, settings))
    choice, table = choose_lr_on_intermediate(cache, split, PREPROCESSING, MODEL, settings)
    assert choice["source"] == "validation"
    assert choice["lr"] in table["lr"].tolist()
    assert len(table) == 3  # 1e-5, 1e-4, 1e-3


def test_training_without_its_cache_says_which_node_to_run(data):
    _, split = data
    with pytest.raises(KeyError, match="embed_intermediate_node"):
        train_on_intermediate({}, split, PREPROCESSING, MODEL, tiny_variant("finetune_top"))


def test_the_time_estimate_times_what_the_partial_fine_tune_trains():
    full = tiny_variant("finetune", batch_size=4)
    partial = tiny_variant("finetune_top", batch_size=4)
    assert training_images_per_second(MODEL, 64, full, 2) > 0
    # The later stages on the early stages' output: a cut the estimate must make too.
    assert training_images_per_second(MODEL, 64, partial, 2) > 0
    with pytest.raises(BackboneCutError):
        too_many = tiny_variant("finetune_top", trainable_stages=7)
        training_images_per_second(MODEL, 64, too_many, 2)
