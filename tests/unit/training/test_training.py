"""Training nodes: freezing, warm-up, cached features, determinism, divergence, checkpoints."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from tests.helpers.tiny_models import TINY_BACKBONE
from tests.helpers.training_data import (
    MODEL,
    PREPROCESSING,
    brightness_photos,
    materialised,
    tiny_variant,
)
from transfer_study.config import (
    EvaluationSettings,
    ModelSettings,
    with_overrides,
)
from transfer_study.datasets import TorchDataset
from transfer_study.models.checkpoint import rebuild_classifier
from transfer_study.models.factory import create_classifier
from transfer_study.training import variants
from transfer_study.training.device import maybe_compile
from transfer_study.training.features import embed_images
from transfer_study.training.fitting import fit
from transfer_study.training.testing import evaluate_on_test
from transfer_study.training.variants import train_on_features, train_on_images

REPO_ROOT = Path(__file__).resolve().parents[3]
# timm's smallest EfficientNet: enough to see which weights a training step moves.
TINY_MODEL = ModelSettings(backbone=TINY_BACKBONE, image_size=32)
EVALUATION = EvaluationSettings(
    confidence=0.95,
    bootstrap_resamples=200,
    bootstrap_seed=0,
    permutation_resamples=99,
    batch_size=16,
    top_k=[3],
    device="cpu",
)


_variant = tiny_variant
_materialised = materialised


@pytest.fixture(scope="module")
def data() -> tuple[dict, pd.DataFrame]:
    """A decoded-image cache and split: two classes told apart by brightness."""
    return brightness_photos()


def _backbone_state(checkpoint: dict) -> dict[str, torch.Tensor]:
    return {k: v for k, v in checkpoint["state_dict"].items() if k.startswith("backbone.")}


def test_frozen_backbone_keeps_weights_and_batchnorm_statistics(data):
    decoded, split = data
    params = _variant("finetune", head_warmup_steps=100)  # frozen for every step
    pretrained = create_classifier(
        "efficientnet_lite0", weights="imagenet", num_classes=2
    ).state_dict()
    checkpoint, history, _ = train_on_images(decoded, split, PREPROCESSING, MODEL, params)
    backbone = _backbone_state(checkpoint)
    assert any("running_mean" in key for key in backbone)
    for key, tensor in backbone.items():
        assert torch.equal(tensor, pretrained[key]), key
    head_key = next(k for k in checkpoint["state_dict"] if k.startswith("head."))
    assert not torch.equal(checkpoint["state_dict"][head_key], pretrained[head_key])
    assert history["backbone_frozen"].all()


def _parameters(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    """Copies of the module's parameters (its weights, not BatchNorm's running buffers)."""
    return {name: p.detach().clone() for name, p in module.named_parameters()}


def _changed(before: dict[str, torch.Tensor], after: dict[str, torch.Tensor]) -> list[str]:
    return [name for name, tensor in before.items() if not torch.equal(tensor, after[name])]


def _ids(parameters: Iterable[torch.nn.Parameter]) -> set[int]:
    return {id(parameter) for parameter in parameters}


def _groups_by_name(optimizer: torch.optim.Optimizer) -> dict[str, list[dict]]:
    """The optimiser's parameter groups by name (timm splits each into decay / no decay)."""
    groups: dict[str, list[dict]] = {}
    for group in optimizer.param_groups:
        groups.setdefault(group["name"], []).append(group)
    return groups


def test_finetune_warm_up_trains_the_head_then_the_backbone_at_its_lower_lr(data, monkeypatch):
    """Snapshots the model at each epoch start through a wrapper around ``fit``."""
    decoded, split = data
    lr, multiplier = 0.01, 0.1
    params = _variant(
        "finetune",
        weights="none",  # random init, nothing to download: the warm-up is the same
        max_images=72,  # 3 epochs of 3 steps
        head_warmup_steps=3,  # the first epoch
        lr_warmup_steps=0,  # the lr is the given one from the first step
        backbone_lr_multiplier=multiplier,
        lr=lr,
        scheduler="none",
        num_workers=0,
    )
    at_start: dict[int, dict] = {}

    def fit_with_snapshots(model, *, optimizer, **kwargs):
        def snapshot(epoch: int) -> None:
            groups = _groups_by_name(optimizer)
            at_start[epoch] = {
                "backbone": _parameters(model.backbone),
                "head": _parameters(model.head),
                "lr": {name: sorted({g["lr"] for g in same}) for name, same in groups.items()},
                "backbone_group": _ids(p for g in groups["backbone"] for p in g["params"]),
                "backbone_ids": _ids(model.backbone.parameters()),
            }

        kwargs.pop("on_epoch_start")  # None: images have no per-epoch views
        return fit(model, optimizer=optimizer, on_epoch_start=snapshot, **kwargs)

    monkeypatch.setattr(variants, "fit", fit_with_snapshots)
    _, history, summary = train_on_images(decoded, split, PREPROCESSING, TINY_MODEL, params)

    warm_up, first_unfrozen = at_start[1], at_start[2]
    assert _changed(warm_up["backbone"], first_unfrozen["backbone"]) == []
    assert _changed(warm_up["head"], first_unfrozen["head"]) == list(warm_up["head"])
    assert _changed(first_unfrozen["backbone"], at_start[3]["backbone"]) == list(
        warm_up["backbone"]
    )
    assert first_unfrozen["lr"]["head"] == [lr]
    assert first_unfrozen["lr"]["backbone"] == pytest.approx([lr * multiplier])
    assert first_unfrozen["backbone_group"] == first_unfrozen["backbone_ids"]
    assert history["backbone_frozen"].tolist() == [True, False, False]
    assert summary["trainable_params"] == summary["total_params"]


def test_frozen_variant_trains_only_the_head(data):
    decoded, split = data
    params = _variant("frozen")
    features = embed_images(decoded, split, PREPROCESSING, MODEL, params)
    cached = _materialised(features)
    _, history, summary = train_on_features(cached, split, PREPROCESSING, MODEL, params)
    assert summary["trainable_params"] == 1280 * 2 + 2
    assert summary["total_params"] > 3_000_000
    assert len(history) == 2


def test_augmented_views_cached_for_one_split_serve_another_split_of_the_same_photos(data):
    decoded, split = data
    params = _variant("frozen", augmented_views=1)
    cached = _materialised(embed_images(decoded, split, PREPROCESSING, MODEL, params))
    # Another split of the same photos (another seed, a fold): test photos now train.
    other = split.assign(split=split["split"].replace({"train": "test", "test": "train"}))
    assert set(embed_images(decoded, other, PREPROCESSING, MODEL, params)) == set(cached)
    _, _, summary = train_on_features(cached, other, PREPROCESSING, MODEL, params)
    assert summary["n_images"] == (other["split"] == "train").sum() == 8


def test_cached_features_give_the_same_model_as_running_the_frozen_backbone(data):
    decoded, split = data
    params = _variant("frozen", channels_last=False, num_workers=0)
    features = embed_images(decoded, split, PREPROCESSING, MODEL, params)
    cached = _materialised(features)
    on_features, history_features, _ = train_on_features(
        cached, split, PREPROCESSING, MODEL, params
    )
    on_images, history_images, _ = train_on_images(
        decoded,
        split,
        PREPROCESSING,
        MODEL,
        with_overrides(params, head_warmup_steps=1000, backbone_lr_multiplier=1.0),
    )
    for key, tensor in on_features["state_dict"].items():
        assert torch.allclose(tensor.float(), on_images["state_dict"][key].float(), atol=1e-4), key
    np.testing.assert_allclose(
        history_features["val_loss"], history_images["val_loss"], rtol=1e-4, atol=1e-5
    )
    predictions_features, _, _ = evaluate_on_test(on_features, decoded, split, EVALUATION)
    predictions_images, _, _ = evaluate_on_test(on_images, decoded, split, EVALUATION)
    assert predictions_features["predicted"].tolist() == predictions_images["predicted"].tolist()


def test_same_seed_gives_the_same_metrics_and_another_seed_does_not(data):
    decoded, split = data
    params = _variant("scratch", augmentations=[{"name": "RandomHorizontalFlip"}])
    first = train_on_images(decoded, split, PREPROCESSING, MODEL, params)
    again = train_on_images(decoded, split, PREPROCESSING, MODEL, params)
    other = train_on_images(decoded, split, PREPROCESSING, MODEL, with_overrides(params, seed=1))
    columns = ["train_loss", "train_accuracy", "val_loss", "val_accuracy"]
    pd.testing.assert_frame_equal(first[1][columns], again[1][columns])
    assert not first[1]["train_loss"].equals(other[1]["train_loss"])


def test_a_diverging_variant_keeps_its_start_and_its_summary_says_why(data):
    decoded, split = data
    params = _variant("scratch", lr=1.0e4, val_every_steps=100)
    checkpoint, history, summary = train_on_images(decoded, split, PREPROCESSING, MODEL, params)
    assert summary["diverged"] is True and summary["converged"] is False
    assert summary["stop_reason"] == "diverged"
    assert summary["divergence_step"] == summary["steps"] < 6  # the cap is 6 steps
    assert "> 10 × starting loss" in summary["divergence_reason"]
    # It diverged before its first validation: the start (validated) is what it keeps.
    assert summary["best_step"] == 0 and history["step"].iloc[0] == 0
    assert all(torch.isfinite(t).all() for t in checkpoint["state_dict"].values())


def test_evaluation_reports_metrics_predictions_and_probabilities(data):
    decoded, split = data
    checkpoint, _, _ = train_on_images(decoded, split, PREPROCESSING, MODEL, _variant("finetune"))
    predictions, metrics, figure = evaluate_on_test(checkpoint, decoded, split, EVALUATION)
    assert list(predictions.columns) == [
        "path",
        "sample_id",
        "label",
        "predicted",
        "prob_bright",
        "prob_dark",
    ]
    assert len(predictions) == (split["split"] == "test").sum()
    np.testing.assert_allclose(
        predictions[["prob_bright", "prob_dark"]].sum(axis=1), 1.0, atol=1e-5
    )
    expected_accuracy = (predictions["label"] == predictions["predicted"]).mean()
    assert metrics["accuracy"] == pytest.approx(expected_accuracy)
    assert metrics["accuracy_ci_low"] <= metrics["accuracy"] <= metrics["accuracy_ci_high"]
    assert {"balanced_accuracy", "macro_f1", "roc_auc", "recall_bright"} <= set(metrics)
    assert figure.axes


def test_checkpoint_round_trips_in_a_fresh_process(data, tmp_path: Path):
    decoded, split = data
    checkpoint, _, _ = train_on_images(decoded, split, PREPROCESSING, MODEL, _variant("scratch"))
    TorchDataset(filepath=str(tmp_path / "model.pt")).save(checkpoint)
    inputs = torch.randn(3, 3, 32, 32)
    torch.save(inputs, tmp_path / "inputs.pt")
    model, metadata = rebuild_classifier(TorchDataset(filepath=str(tmp_path / "model.pt")).load())
    with torch.inference_mode():
        expected = model(inputs)
    script = (
        "import sys, torch\n"
        "from transfer_study.models.checkpoint import rebuild_classifier\n"
        "checkpoint = torch.load(sys.argv[1], weights_only=True)\n"
        "model, metadata = rebuild_classifier(checkpoint)\n"
        "with torch.inference_mode():\n"
        "    torch.save(model(torch.load(sys.argv[2])), sys.argv[3])\n"
        "print(metadata['class_names'], metadata['preprocessing']['input_size'])\n"
    )
    completed = subprocess.run(
        [
            sys.executable,
            "-c",
            script,
            str(tmp_path / "model.pt"),
            str(tmp_path / "inputs.pt"),
            str(tmp_path / "out.pt"),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr
    assert "['bright', 'dark'] 32" in completed.stdout
    assert torch.allclose(torch.load(tmp_path / "out.pt"), expected, atol=1e-5)
    assert metadata["weights"] == "none"
    assert set(metadata["versions"]) >= {"torch", "torchvision", "timm"}


def test_models_are_compiled_only_on_cuda_unless_asked():
    model = torch.nn.Linear(2, 2)
    assert maybe_compile(model, "auto", torch.device("cpu")) is model
    assert maybe_compile(model, False, torch.device("cuda")) is model
    assert isinstance(
        maybe_compile(model, "auto", torch.device("cuda")), torch._dynamo.OptimizedModule
    )
    assert isinstance(
        maybe_compile(model, True, torch.device("cpu")), torch._dynamo.OptimizedModule
    )


def _head(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {k.removeprefix("head."): v for k, v in state.items() if k.startswith("head.")}


def test_probe_is_the_frozen_training_with_the_finetunes_head_and_seed(data):
    decoded, split = data
    frozen = _variant("frozen", channels_last=False, num_workers=0, seed=0)
    finetune = _variant("finetune", head_init="probe", seed=3)
    cached = _materialised(embed_images(decoded, split, PREPROCESSING, MODEL, frozen))
    head = variants.probe_head(cached, split, PREPROCESSING, MODEL, finetune, frozen)
    # The fine-tune's seed, not the frozen variant's.
    reseeded = with_overrides(frozen, seed=3)
    trained, _, _ = train_on_features(cached, split, PREPROCESSING, MODEL, reseeded)
    expected = _head(trained["state_dict"])
    assert head.keys() == expected.keys()
    for key, tensor in expected.items():
        torch.testing.assert_close(head[key], tensor)
    random_head = with_overrides(finetune, head_init="random")
    assert variants.probe_head(cached, split, PREPROCESSING, MODEL, random_head, frozen) is None


def test_finetune_starts_from_the_probed_head(data):
    decoded, split = data
    frozen = _variant("frozen", channels_last=False, num_workers=0)
    cached = _materialised(embed_images(decoded, split, PREPROCESSING, MODEL, frozen))
    # An lr so small that training leaves every weight where it started.
    finetune = _variant("finetune", head_init="probe", lr=1e-12, max_images=8)
    head = variants.probe_head(cached, split, PREPROCESSING, MODEL, finetune, frozen)
    probed, _, _ = train_on_images(decoded, split, PREPROCESSING, MODEL, finetune, head)
    unprobed, _, _ = train_on_images(decoded, split, PREPROCESSING, MODEL, finetune)
    for key, tensor in head.items():
        torch.testing.assert_close(_head(probed["state_dict"])[key], tensor, atol=1e-6, rtol=0)
        assert not torch.allclose(_head(unprobed["state_dict"])[key], tensor)


def test_a_probe_on_other_weights_is_refused(data, tmp_path):
    _, split = data
    frozen = _variant("frozen")
    finetune = _variant("finetune", head_init="probe", weights=str(tmp_path / "mine.pth"))
    with pytest.raises(ValueError, match="head_init: random"):
        variants.probe_head({}, split, PREPROCESSING, MODEL, finetune, frozen)


def test_short_candidate_trainings_choose_the_lr_on_validation_and_leave_the_start(data):
    decoded, split = data
    search = {"method": "candidates", "min_lr": 1e-6, "max_lr": 1e-1, "steps": 5}
    search |= {"per_decade": 1, "candidate_steps": 4}
    settings = _variant("finetune", weights="none", lr="auto", lr_search=search, seed=0)
    setup = variants.image_setup(decoded, split, PREPROCESSING, TINY_MODEL, settings)
    start = {k: v.clone() for k, v in setup.module.state_dict().items()}
    choice, table = variants._choose_lr(setup, settings)
    assert choice["source"] == variants.LR_FROM_VALIDATION and choice["candidates"] == 6
    assert table["lr"].tolist() == pytest.approx([1e-6, 1e-5, 1e-4, 1e-3, 1e-2, 1e-1])
    assert (table["steps"] == 4).all()  # each a short training, not to convergence
    best = table.sort_values("val_loss").iloc[0]
    assert choice["lr"] == best["lr"]
    # 1e-6 cannot move a random model in 4 steps: a working rate must beat it.
    assert choice["lr"] > 1e-6
    for key, tensor in setup.module.state_dict().items():
        assert torch.equal(tensor, start[key]), key
