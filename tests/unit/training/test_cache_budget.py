"""The cache budget: a cache entry too big for the memory cap or the free disk is refused
before it is built, with the estimate and what to do; an entry that exists is not checked."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pandas as pd
import pytest
import torch
from kedro.io.core import DatasetError

from tests.helpers.photos import write_photo
from tests.helpers.settings import study_training_settings
from tests.helpers.tiny_models import TINY_BACKBONE
from transfer_study.config import ModelSettings, with_overrides
from transfer_study.datasets import ContentAddressedDataset, PhotoFolderDataset
from transfer_study.datasets import content_addressed_dataset as cache_dataset
from transfer_study.models.factory import create_classifier
from transfer_study.models.preprocessing import pretrained_preprocessing, scaled_to_input_size
from transfer_study.training.cache_budget import (
    CacheTooLargeError,
    decoded_images_bytes,
    features_bytes,
)
from transfer_study.training.features import embed_images
from transfer_study.training.image_cache import decoding_build

PREPROCESSING = scaled_to_input_size(pretrained_preprocessing(TINY_BACKBONE), 32)
SIDE = PREPROCESSING.resize_size


def _never_read(path: str) -> bytes:
    raise AssertionError(f"{path} was read: the refusal must come before any decoding")


def _unread_photos(n: int) -> dict:
    return {f"cat/p{i}.jpg": (lambda i=i: _never_read(f"cat/p{i}.jpg")) for i in range(n)}


def test_the_estimates_are_what_the_caches_store():
    assert decoded_images_bytes(1000, 256) == 1000 * 3 * 256 * 256
    assert features_bytes(1000, 1280, augmented_views=0) == 1000 * 1280 * 4
    assert features_bytes(1000, 1280, augmented_views=4) == 5 * 1000 * 1280 * 4


def test_decoding_over_the_memory_cap_is_refused_with_the_estimate_and_what_to_do():
    photos = _unread_photos(40)
    estimate = 40 * 3 * SIDE * SIDE
    build = decoding_build(list(photos), photos, PREPROCESSING, max_bytes=estimate - 1)
    assert build.estimated_bytes == estimate
    with pytest.raises(CacheTooLargeError) as raised:
        build()
    message = str(raised.value)
    assert f"40 photos at {SIDE} px would take about {estimate / 1e9:.3g} GB" in message
    assert "raw_images.max_cache_gb" in message and "in memory" in message
    assert "model.image_size" in message and "raw_images.classes" in message


def test_decoding_under_the_memory_cap_decodes(tmp_path: Path):
    write_photo(tmp_path / "cat" / "a.jpg", seed=1)
    photos = PhotoFolderDataset(path=str(tmp_path)).load()
    build = decoding_build(["cat/a.jpg"], photos, PREPROCESSING, max_bytes=3 * SIDE * SIDE)
    assert build()["images"].shape == (1, 3, SIDE, SIDE)


def _cache(tmp_path: Path) -> ContentAddressedDataset:
    return ContentAddressedDataset(
        path=str(tmp_path / "cache" / "decoded_images"),  # not created yet
        dataset="transfer_study.datasets.TorchDataset",
        filename_suffix=".pt",
    )


def test_an_entry_larger_than_the_free_disk_is_refused_before_it_is_built(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    photos = _unread_photos(10)
    build = decoding_build(list(photos), photos, PREPROCESSING, max_bytes=None)
    free = build.estimated_bytes - 1
    checked = []

    def disk_usage(path: Path) -> SimpleNamespace:
        checked.append(Path(path))
        return SimpleNamespace(total=10 * free, used=9 * free, free=free)

    monkeypatch.setattr(cache_dataset.shutil, "disk_usage", disk_usage)
    cache = _cache(tmp_path)
    with pytest.raises(DatasetError) as raised:
        cache.save({"entry": build})
    assert isinstance(raised.value.__cause__, CacheTooLargeError)
    message = str(raised.value)
    assert message.startswith("The decoded-image cache of 10 photos")  # as it is, unwrapped
    assert f"more than the {free / 1e9:.3g} GB free on the disk of" in message
    assert "decoded_images" in message and "free disk space" in message
    assert checked == [tmp_path]  # the nearest folder that exists
    assert not (tmp_path / "cache").exists()


def test_the_cache_refuses_an_entry_over_the_memory_cap_before_building_it(tmp_path: Path):
    photos = _unread_photos(10)
    with pytest.raises(DatasetError, match=r"raw_images.max_cache_gb = 1e-09 GB"):
        _cache(tmp_path).save({"entry": decoding_build(list(photos), photos, PREPROCESSING, 1)})
    assert not (tmp_path / "cache").exists()


def test_an_entry_that_exists_is_reused_without_a_check(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    cache = _cache(tmp_path)
    cache.save({"entry": lambda: {"images": torch.zeros(1), "paths": []}})

    def no_disk_check(path: Path) -> None:
        raise AssertionError("an existing entry needs no disk check")

    monkeypatch.setattr(cache_dataset.shutil, "disk_usage", no_disk_check)
    photos = _unread_photos(10)
    cache.save({"entry": decoding_build(list(photos), photos, PREPROCESSING, max_bytes=1)})
    assert list(cache.load()) == ["entry"]


def test_features_over_the_memory_cap_are_refused_before_embedding():
    model = ModelSettings(backbone=TINY_BACKBONE, image_size=32)
    settings = with_overrides(study_training_settings("frozen"), augmented_views=3)
    split = pd.DataFrame(
        {"path": [f"cat/p{i}.jpg" for i in range(12)], "sha256": [f"{i:064d}" for i in range(12)]}
    )

    def no_images() -> dict:
        raise AssertionError("the refusal must come before the images are read")

    (build,) = embed_images(
        {"any": no_images}, split, PREPROCESSING, model, settings, max_bytes=1
    ).values()
    feature_dim = create_classifier(TINY_BACKBONE, weights="none", num_classes=2).feature_dim
    assert build.estimated_bytes == 12 * feature_dim * 4 * (1 + 3)
    with pytest.raises(CacheTooLargeError, match=r"features of 12 photos and 3 augmented views"):
        build()
