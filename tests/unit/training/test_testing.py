"""``evaluate_on_test`` with test-time augmentation: the same answers without it, the mean
softmax over the views with it."""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd
import pytest
import torch

from tests.helpers.tiny_models import tiny_checkpoint
from transfer_study.config import EvaluationSettings
from transfer_study.models.checkpoint import rebuild_classifier
from transfer_study.models.preprocessing import Preprocessing
from transfer_study.models.transforms import build_eval_transform
from transfer_study.models.tta import tta_views
from transfer_study.training.image_cache import image_cache_key
from transfer_study.training.testing import evaluate_on_test

CLASSES = ("bright", "dark")
N_PHOTOS = 12
EVALUATION = EvaluationSettings(
    confidence=0.95,
    bootstrap_resamples=50,
    bootstrap_seed=0,
    permutation_resamples=9,
    batch_size=16,  # every test photo in one batch, as the reference computation below
    top_k=[3],
    device="cpu",
)
PROBABILITY_COLUMNS = [f"prob_{name}" for name in CLASSES]


@pytest.fixture(scope="module")
def study() -> tuple[dict, dict, pd.DataFrame, torch.Tensor]:
    """A tiny checkpoint, a decoded-image cache at its size and a split of test photos."""
    checkpoint = tiny_checkpoint(CLASSES)
    spec = Preprocessing.from_dict(checkpoint["metadata"]["preprocessing"])
    generator = torch.Generator().manual_seed(0)
    size = spec.resize_size
    images = torch.randint(0, 256, (N_PHOTOS, 3, size, size), generator=generator)
    split = pd.DataFrame(
        {
            "path": [f"{CLASSES[i % 2]}/s{i:03d}_a00.jpg" for i in range(N_PHOTOS)],
            "label": [CLASSES[i % 2] for i in range(N_PHOTOS)],
            "sample_id": [f"s{i:03d}" for i in range(N_PHOTOS)],
            "angle": 0,
            "split": ["train", "val", *["test"] * (N_PHOTOS - 2)],
            "sha256": [f"{i:064d}" for i in range(N_PHOTOS)],
        }
    )
    cache = {"images": images.to(torch.uint8), "paths": split["path"].tolist()}
    decoded = {image_cache_key(split, spec): lambda: cache}
    test_images = cache["images"][2:]
    return checkpoint, decoded, split, test_images


def _reference(checkpoint: dict, test_images: torch.Tensor, tta: str) -> np.ndarray:
    """The mean softmax over ``tta``'s views, computed in one batch outside the loader."""
    model, metadata = rebuild_classifier(checkpoint)
    transform = build_eval_transform(
        preprocessing=Preprocessing.from_dict(metadata["preprocessing"])
    )
    batch = torch.stack([transform(image) for image in test_images])
    batch = batch.contiguous(memory_format=torch.channels_last)
    with torch.inference_mode():
        logits = [model.eval()(view).float() for view in tta_views(batch, tta)]
    return torch.stack([torch.softmax(view, dim=1) for view in logits]).mean(dim=0).numpy()


def _probabilities(predictions: pd.DataFrame) -> np.ndarray:
    return predictions[PROBABILITY_COLUMNS].to_numpy()


def test_without_tta_the_probabilities_are_the_softmax_of_one_pass(study):
    checkpoint, decoded, split, test_images = study
    predictions, _, _ = evaluate_on_test(checkpoint, decoded, split, EVALUATION)
    explicit, _, _ = evaluate_on_test(
        checkpoint, decoded, split, EVALUATION.model_copy(update={"tta": "none"})
    )
    np.testing.assert_array_equal(_probabilities(predictions), _probabilities(explicit))
    # Bit for bit: without TTA, the softmax of the one pass it always was.
    np.testing.assert_array_equal(
        _probabilities(predictions), _reference(checkpoint, test_images, "none")
    )


@pytest.mark.parametrize("tta", ["flip", "flip+crops"])
def test_tta_averages_the_softmax_over_the_views_and_predicts_its_argmax(study, tta, caplog):
    checkpoint, decoded, split, test_images = study
    plain, _, _ = evaluate_on_test(checkpoint, decoded, split, EVALUATION)
    with caplog.at_level(logging.INFO, logger="transfer_study.training.testing"):
        predictions, metrics, _ = evaluate_on_test(
            checkpoint, decoded, split, EVALUATION.model_copy(update={"tta": tta})
        )
    expected = _reference(checkpoint, test_images, tta)
    probabilities = _probabilities(predictions)
    np.testing.assert_allclose(probabilities, expected, atol=1e-5)
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, atol=1e-5)
    assert not np.allclose(probabilities, _probabilities(plain), atol=1e-4)
    assert predictions["predicted"].tolist() == [CLASSES[i] for i in expected.argmax(axis=1)]
    assert metrics["accuracy"] == pytest.approx(
        (predictions["label"] == predictions["predicted"]).mean()
    )
    assert all(isinstance(value, float) for value in metrics.values())
    assert f"(tta: {tta})" in caplog.text
