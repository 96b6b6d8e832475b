"""Progressive resizing: the stages' sides, the transforms at a smaller side, and a
training that runs each stage in turn and keeps a full-size checkpoint."""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator

import pandas as pd
import pytest
import torch
from pydantic import ValidationError

from tests.helpers.training_data import brightness_photos, tiny_variant
from transfer_study.config import ModelSettings
from transfer_study.models.preprocessing import pretrained_preprocessing, scaled_to_input_size
from transfer_study.models.transforms import build_eval_transform, build_train_transform
from transfer_study.training import variants
from transfer_study.training.fitting import FitResult
from transfer_study.training.progressive import fit_in_stages, stage_sizes
from transfer_study.training.variants import choose_lr_on_images, train_on_images

MODEL_64 = ModelSettings(backbone="efficientnet_lite0", image_size=64)
PREPROCESSING_64 = scaled_to_input_size(pretrained_preprocessing("efficientnet_lite0"), 64)


@pytest.fixture(scope="module")
def data() -> tuple[dict, pd.DataFrame]:
    return brightness_photos(PREPROCESSING_64)


@pytest.mark.parametrize(
    ("scales", "input_size", "expected"),
    [
        ([], 224, [224]),
        ([0.5], 224, [112, 224]),
        ([0.5, 0.75], 224, [112, 168, 224]),
        ([0.25], 96, [32, 96]),  # 24 px is below the smallest side
        ([0.1, 0.2], 96, [32, 96]),  # both round to 32: one stage
        ([0.996], 96, [96]),  # rounds to the input size: no smaller stage
    ],
)
def test_stage_sides_are_the_scaled_input_sizes_then_the_input_size(scales, input_size, expected):
    assert stage_sizes(scales, input_size) == expected


def test_a_smaller_side_keeps_the_augmentations_and_resizes_their_result():
    image = torch.randint(0, 256, (3, PREPROCESSING_64.resize_size, 80), dtype=torch.uint8)
    specs = [{"name": "RandomResizedCrop", "scale": [0.5, 1.0]}, {"name": "RandomHorizontalFlip"}]
    full = build_train_transform(preprocessing=PREPROCESSING_64, augmentations=specs)
    small = build_train_transform(
        preprocessing=PREPROCESSING_64, augmentations=specs, output_size=32
    )
    assert full(image).shape == (3, 64, 64)
    assert small(image).shape == (3, 32, 32)
    assert [type(t).__name__ for t in small.transforms][:2] == [
        "RandomResizedCrop",
        "RandomHorizontalFlip",
    ]
    evaluation = build_eval_transform(preprocessing=PREPROCESSING_64, output_size=32)
    full_eval = build_eval_transform(preprocessing=PREPROCESSING_64)(image)
    # The same centre crop, only smaller: its mean brightness is kept.
    assert evaluation(image).shape == (3, 32, 32)
    assert evaluation(image).mean().item() == pytest.approx(full_eval.mean().item(), abs=0.02)


def test_progressive_scales_belong_to_scratch_and_finetune_and_must_increase():
    assert tiny_variant("scratch", progressive_scales=[0.5]).progressive_scales == [0.5]
    assert tiny_variant("finetune", progressive_scales=[0.25, 0.5]).progressive_scales
    with pytest.raises(ValidationError, match="scratch and finetune only"):
        tiny_variant("frozen", progressive_scales=[0.5])
    with pytest.raises(ValidationError, match="must increase"):
        tiny_variant("scratch", progressive_scales=[0.75, 0.5])
    with pytest.raises(ValidationError):
        tiny_variant("scratch", progressive_scales=[1.0])


@contextlib.contextmanager
def _recording_input_sides(sides: list[int]) -> Iterator[None]:
    """Records the side of every RGB image batch a convolution receives (the stem's)."""

    def record(module: torch.nn.Module, inputs: tuple) -> None:
        if isinstance(module, torch.nn.Conv2d) and module.in_channels == 3:
            sides.append(inputs[0].shape[-1])

    handle = torch.nn.modules.module.register_module_forward_pre_hook(record)
    try:
        yield
    finally:
        handle.remove()


def _stage_result(steps: int, best_step: int, size: int, stop: str = "patience") -> FitResult:
    history = pd.DataFrame(
        {
            "step": range(1, steps + 1),
            "epoch": [float(s) for s in range(1, steps + 1)],
            "images_seen": [8 * s for s in range(1, steps + 1)],
            "val_metric": [size + s for s in range(1, steps + 1)],
            "improved": [s <= best_step for s in range(1, steps + 1)],
        }
    )
    best = history.loc[history["improved"]].iloc[-1].to_dict()
    return FitResult(history, best, stop, seconds=float(size), divergence=None)  # type: ignore[arg-type]


def test_stages_run_in_turn_and_join_into_one_history_from_the_start():
    sides, results = [], iter([_stage_result(4, 3, 32), _stage_result(3, 1, 64)])
    calls = []

    def fit_stage(validate_start: bool, last: bool) -> FitResult:
        calls.append((validate_start, last))
        return next(results)

    result = fit_in_stages([32, 64], sides.append, fit_stage, validate_start=True)
    assert sides == [32, 64]
    # Only the very start is validated; only the last side is told it is the last.
    assert calls == [(True, False), (False, True)]
    history = result.history
    assert history["input_size"].tolist() == [32] * 4 + [64] * 3
    assert history["step"].tolist() == list(range(1, 8))
    assert history["images_seen"].is_monotonic_increasing
    # The weights kept are chosen at the input size only: the full-size stage's step 1.
    assert history.loc[history["improved"], "input_size"].unique().tolist() == [64]
    assert result.best["step"] == 5
    assert result.seconds == 96
    assert result.stop_reason == "patience"


def test_a_stage_that_diverges_ends_the_training_there():
    sides = []
    results = iter([_stage_result(2, 1, 32, stop="diverged"), _stage_result(3, 1, 64)])
    result = fit_in_stages([32, 64], sides.append, lambda *_: next(results))
    assert sides == [32]
    assert result.diverged
    assert result.best["step"] == 1


def test_a_progressive_training_trains_each_side_and_keeps_a_full_size_checkpoint(data):
    cache, split = data
    settings = tiny_variant(
        "scratch",
        progressive_scales=[0.5],
        progressive_patience=2,
        max_images=48,
        patience=3,
        min_steps=1,
    )
    seen_sides, patiences = [], []
    fit = variants._fit

    def recording_fit(setup, stage_settings, **options):
        patiences.append(stage_settings.patience)
        return fit(setup, stage_settings, **options)

    with _recording_input_sides(seen_sides), pytest.MonkeyPatch.context() as patch:
        patch.setattr(variants, "_fit", recording_fit)
        checkpoint, history, summary = train_on_images(
            cache, split, PREPROCESSING_64, MODEL_64, settings
        )
    # The smaller side hands over at its own patience; the input size uses the variant's.
    assert patiences == [2, 3]
    assert sorted(set(seen_sides)) == [32, 64]
    assert seen_sides.index(64) > max(i for i, side in enumerate(seen_sides) if side == 32)
    assert history["input_size"].iloc[0] == 32 and history["input_size"].iloc[-1] == 64
    assert history["step"].is_monotonic_increasing
    assert summary["steps"] == int(history["step"].iloc[-1])
    assert summary["best_step"] > int(history.loc[history["input_size"] == 32, "step"].max())
    assert checkpoint["metadata"]["preprocessing"]["input_size"] == 64
    assert summary["input_sizes"] == [32, 64]
    assert not math.isnan(summary["best_val_metric"])


def test_the_learning_rate_is_chosen_at_the_first_side(data):
    cache, split = data
    settings = tiny_variant("scratch", lr="auto", progressive_scales=[0.5])
    seen_sides = []
    with _recording_input_sides(seen_sides):
        record, _ = choose_lr_on_images(cache, split, PREPROCESSING_64, MODEL_64, settings)
    assert set(seen_sides) == {32}
    assert record["lr"] > 0
