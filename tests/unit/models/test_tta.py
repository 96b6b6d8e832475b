"""Test-time augmentation: which views each mode makes and how their softmax is averaged."""

from __future__ import annotations

from typing import get_args

import pytest
import torch
from pydantic import ValidationError
from torch import nn
from torchvision.transforms.v2 import functional as F

from transfer_study.config import EvaluationSettings, InferenceSettings
from transfer_study.config.base import TtaMode
from transfer_study.models.tta import TTA_MODES, VIEWS_PER_MODE, tta_probabilities, tta_views

INFERENCE = {"photos": "p", "model": "best", "top_k": 3, "batch_size": 4, "device": "cpu"}
EVALUATION = {
    "confidence": 0.95,
    "bootstrap_resamples": 10,
    "bootstrap_seed": 0,
    "permutation_resamples": 9,
    "batch_size": 4,
    "top_k": [3],
    "device": "cpu",
}


def _batch(n: int = 2, height: int = 16, width: int = 24) -> torch.Tensor:
    return torch.randn(n, 3, height, width, generator=torch.Generator().manual_seed(0))


def _pixel_model(height: int = 16, width: int = 24, classes: int = 3) -> nn.Module:
    """Logits from every pixel where it is: a mirrored photo gets other logits."""
    torch.manual_seed(1)
    return nn.Sequential(nn.Flatten(), nn.Linear(3 * height * width, classes)).eval()


def _pooled_model(classes: int = 3) -> nn.Module:
    """Logits from the mean of each channel: blind to a mirror image."""
    torch.manual_seed(2)
    return nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(3, classes)).eval()


@pytest.mark.parametrize("mode", TTA_MODES)
def test_each_mode_makes_its_number_of_views_shaped_like_the_batch(mode):
    batch = _batch()
    views = tta_views(batch, mode)
    assert len(views) == VIEWS_PER_MODE[mode] == {"none": 1, "flip": 2, "flip+crops": 12}[mode]
    assert all(view.shape == batch.shape and view.dtype == batch.dtype for view in views)
    assert views[0] is batch


def test_the_flip_view_is_the_horizontal_mirror():
    batch = _batch()
    original, mirrored = tta_views(batch, "flip")
    torch.testing.assert_close(original, batch, rtol=0, atol=0)
    torch.testing.assert_close(mirrored, torch.flip(batch, dims=[-1]), rtol=0, atol=0)


def test_flip_and_crops_are_the_batch_five_resized_crops_and_the_mirror_of_each():
    batch = _batch(height=16, width=24)
    views = tta_views(batch, "flip+crops")
    crop_h, crop_w = 14, 21  # 87.5 % of 16 and 24
    # Top-left, top-right, bottom-left, bottom-right, centre, as five_crop orders them.
    corners = [(0, 0), (0, 24 - crop_w), (16 - crop_h, 0), (16 - crop_h, 24 - crop_w), (1, 2)]
    expected = [batch] + [
        F.resize(batch[..., top : top + crop_h, left : left + crop_w], [16, 24], antialias=True)
        for top, left in corners
    ]
    expected += [torch.flip(view, dims=[-1]) for view in expected]
    for i, (view, wanted) in enumerate(zip(views, expected, strict=True)):
        torch.testing.assert_close(view, wanted, rtol=0, atol=0, msg=f"view {i}")


def test_a_mirror_blind_model_gives_the_same_probabilities_with_and_without_flip():
    model, batch = _pooled_model(), _batch()
    torch.testing.assert_close(
        tta_probabilities(model, batch, "flip"), tta_probabilities(model, batch, "none")
    )
    # The model that sees where pixels are does tell the two apart.
    pixel_model = _pixel_model()
    assert not torch.allclose(
        tta_probabilities(pixel_model, batch, "flip"), tta_probabilities(pixel_model, batch, "none")
    )


@pytest.mark.parametrize("mode", TTA_MODES)
def test_the_probabilities_are_the_mean_softmax_over_the_views(mode):
    model, batch = _pixel_model(), _batch()
    with torch.no_grad():
        expected = torch.stack(
            [torch.softmax(model(view), dim=1) for view in tta_views(batch, mode)]
        ).mean(dim=0)
        probabilities = tta_probabilities(model, batch, mode)
    torch.testing.assert_close(probabilities, expected)
    torch.testing.assert_close(probabilities.sum(dim=1), torch.ones(len(batch)))


def test_probabilities_not_logits_are_averaged():
    model, batch = _pixel_model(), _batch()
    with torch.no_grad():
        logits = torch.stack([model(batch), model(torch.flip(batch, dims=[-1]))])
        of_mean_logits = torch.softmax(logits.mean(dim=0), dim=1)
        mean_of_softmax = torch.softmax(logits, dim=2).mean(dim=0)
        probabilities = tta_probabilities(model, batch, "flip")
    torch.testing.assert_close(probabilities, mean_of_softmax)
    assert not torch.allclose(probabilities, of_mean_logits)


def test_none_is_exactly_the_softmax_of_the_batch_and_half_logits_average_in_float32():
    model, batch = _pixel_model(), _batch()
    with torch.no_grad():
        plain = torch.softmax(model(batch), dim=1)
        torch.testing.assert_close(tta_probabilities(model, batch, "none"), plain, rtol=0, atol=0)
        averaged = tta_probabilities(lambda view: model(view).half(), batch, "flip+crops")
    assert averaged.dtype == torch.float32


def test_an_unknown_mode_or_a_batch_without_its_batch_dimension_is_refused():
    with pytest.raises(ValueError, match="Unknown tta mode 'mirror'"):
        tta_views(_batch(), "mirror")
    with pytest.raises(ValueError, match=r"\(N, C, H, W\)"):
        tta_views(_batch()[0], "flip")


def test_the_parameter_models_allow_exactly_the_modes_tta_knows():
    assert get_args(TtaMode) == TTA_MODES == ("none", "flip", "flip+crops")
    assert set(VIEWS_PER_MODE) == set(TTA_MODES)


@pytest.mark.parametrize("settings", [InferenceSettings, EvaluationSettings])
def test_the_settings_take_each_mode_default_to_none_and_refuse_others(settings):
    values = INFERENCE if settings is InferenceSettings else EVALUATION
    assert settings.model_validate(values).tta == "none"
    for mode in TTA_MODES:
        assert settings.model_validate({**values, "tta": mode}).tta == mode
    with pytest.raises(ValidationError, match=r"tta\s+Input should be 'none', 'flip'"):
        settings.model_validate({**values, "tta": "mirror"})
