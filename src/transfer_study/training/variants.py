"""Training a variant: end to end on cached images (scratch and fine-tune), or only the
head on cached backbone features (frozen). Both return the checkpoint, the per-epoch
history and a training summary."""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable, Mapping
from typing import Any

import pandas as pd
from torch import nn

from transfer_study.models.checkpoint import make_checkpoint
from transfer_study.models.factory import (
    Classifier,
    count_parameters,
    create_classifier,
    set_backbone_trainable,
)
from transfer_study.models.preprocessing import Preprocessing
from transfer_study.models.transforms import build_eval_transform, build_train_transform
from transfer_study.training.data import (
    _image_loader,
    class_indices,
    feature_dataset,
    make_loader,
    seed_everything,
)
from transfer_study.training.device import _device_settings, _memory_format, maybe_compile
from transfer_study.training.features import _EpochViews, _features_key
from transfer_study.training.image_cache import image_cache_key, select_image_cache
from transfer_study.training.loops import FitResult, fit
from transfer_study.training.optim import create_optimizer, create_scheduler

logger = logging.getLogger(__name__)


def _class_names(split: pd.DataFrame) -> list[str]:
    return sorted(split["label"].unique())


def _criterion(params: Mapping[str, Any]) -> nn.Module:
    return nn.CrossEntropyLoss(label_smoothing=float(params["label_smoothing"]))


def training_data_profile(split: pd.DataFrame) -> dict[str, Any]:
    """How much training data a run had, and a fingerprint of the whole split.

    Args:
        split: The split table the run trained on.

    Returns:
        ``n_samples`` (physical training samples), ``n_angles`` (most photos of one
        training sample), ``n_images`` (training photos) and ``split_fingerprint`` (a
        hash of every photo's path, sample and split, so two runs on the same split and
        subset share it).
    """
    train = split[split["split"] == "train"]
    rows = split[["path", "sample_id", "split"]].astype(str).sort_values("path")
    digest = hashlib.sha256(rows.to_csv(index=False).encode()).hexdigest()[:16]
    return {
        "n_samples": int(train["sample_id"].nunique()),
        "n_angles": int(train.groupby("sample_id").size().max()) if len(train) else 0,
        "n_images": len(train),
        "split_fingerprint": digest,
    }


def _summary(
    model: Classifier,
    result: FitResult,
    split: pd.DataFrame,
    params: Mapping[str, Any],
    model_params: Mapping[str, Any],
) -> dict[str, Any]:
    trainable, total = count_parameters(model)
    best = result.history.loc[result.history["epoch"] == result.best_epoch].iloc[0]
    return {
        "variant": params["name"],
        "backbone": model_params["backbone"],
        "weights": params["weights"],
        "seed": int(params["seed"]),
        **training_data_profile(split),
        "train_seconds": round(result.seconds, 2),
        "epochs_run": len(result.history),
        "best_epoch": int(result.best_epoch),
        "best_val_accuracy": float(best["val_accuracy"]),
        "stopped_early": bool(result.stopped_early),
        "trainable_params": trainable,
        "total_params": total,
        "parameters": {"model": dict(model_params), "training": dict(params)},
    }


def _trained_outputs(
    model: Classifier,
    result: FitResult,
    split: pd.DataFrame,
    params: Mapping[str, Any],
    model_params: Mapping[str, Any],
    class_names: list[str],
    spec: Preprocessing,
) -> tuple[dict[str, Any], pd.DataFrame, dict[str, Any]]:
    """The checkpoint, history and summary every training node returns."""
    summary = _summary(model, result, split, params, model_params)
    checkpoint = make_checkpoint(
        model.cpu(),
        backbone=model_params["backbone"],
        weights=params["weights"],
        head=params["head"],
        class_names=class_names,
        preprocessing=spec,
        extra={k: v for k, v in summary.items() if k != "parameters"},
    )
    return checkpoint, result.history, summary


def _log_parameter_counts(model: nn.Module, variant: str) -> None:
    trainable, total = count_parameters(model)
    logger.info("%s: %s of %s parameters are trainable.", variant, f"{trainable:,}", f"{total:,}")


def train_on_images(
    decoded_images: Mapping[str, Callable[[], dict]],
    split: pd.DataFrame,
    preprocessing: Mapping[str, Any],
    model_params: Mapping[str, Any],
    params: Mapping[str, Any],
) -> tuple[dict[str, Any], pd.DataFrame, dict[str, Any]]:
    """Trains a variant end to end on cached images (scratch and fine-tune).

    Args:
        decoded_images: The decoded-image cache.
        split: The split table.
        preprocessing: Input size and normalisation.
        model_params: ``model`` parameters (``backbone``).
        params: The variant's parameters (weights, head, optimiser, schedule, epochs, …).

    Returns:
        The checkpoint, the per-epoch history and a training summary.
    """
    variant = params["name"]
    settings = _device_settings(params)
    generator = seed_everything(int(params["seed"]))
    class_names = _class_names(split)
    spec = Preprocessing.from_dict(preprocessing)
    cache = select_image_cache(decoded_images, split, spec)
    model = create_classifier(
        model_params["backbone"],
        weights=params["weights"],
        num_classes=len(class_names),
        head=params["head"],
    ).to(settings.device, memory_format=_memory_format(settings))
    train_transform = build_train_transform(
        preprocessing=spec, augmentations=params["augmentations"] or []
    )
    train_loader = _image_loader(
        cache,
        split[split["split"] == "train"],
        class_names,
        train_transform,
        params,
        shuffle=True,
        generator=generator,
        settings=settings,
    )
    val_loader = _image_loader(
        cache,
        split[split["split"] == "val"],
        class_names,
        build_eval_transform(preprocessing=spec),
        params,
        shuffle=False,
        generator=generator,
        settings=settings,
    )
    frozen_epochs = int(params["backbone_frozen_epochs"])
    optimizer = create_optimizer(head=model.head, backbone=model.backbone, params=params)
    scheduler, per_batch = create_scheduler(
        optimizer, params, epochs=int(params["epochs"]), steps_per_epoch=len(train_loader)
    )
    _log_parameter_counts(model, variant)
    result = fit(
        maybe_compile(model, params.get("compile", "auto"), settings.device),
        criterion=_criterion(params),
        optimizer=optimizer,
        train_loader=train_loader,
        val_loader=val_loader,
        settings=settings,
        epochs=int(params["epochs"]),
        patience=params["early_stopping_patience"],
        scheduler=scheduler,
        scheduler_per_batch=per_batch,
        backbone=model.backbone if frozen_epochs else None,
        backbone_frozen_epochs=frozen_epochs,
        variant=variant,
    )
    set_backbone_trainable(model, True)
    return _trained_outputs(model, result, split, params, model_params, class_names, spec)


def train_on_features(
    backbone_features: Mapping[str, Callable[[], dict]],
    split: pd.DataFrame,
    preprocessing: Mapping[str, Any],
    model_params: Mapping[str, Any],
    params: Mapping[str, Any],
) -> tuple[dict[str, Any], pd.DataFrame, dict[str, Any]]:
    """Trains only the head on cached backbone features (the frozen variant).

    Equivalent to training with the backbone frozen in eval mode, but each photo goes
    through the backbone once instead of once per epoch.

    Args:
        backbone_features: The feature cache written by ``embed_images``.
        split: The split table.
        preprocessing: Input size and normalisation (stored in the checkpoint).
        model_params: ``model`` parameters (``backbone``).
        params: The frozen variant's parameters.

    Returns:
        The checkpoint (backbone + trained head), the history and a training summary.
    """
    variant = params["name"]
    spec = Preprocessing.from_dict(preprocessing)
    key = _features_key(image_cache_key(split, spec), model_params["backbone"], params)
    if key not in backbone_features:
        raise KeyError(f"No cached backbone features '{key}': run 'embed_images_node' first.")
    cached = backbone_features[key]()
    settings = _device_settings({**params, "channels_last": False})
    generator = seed_everything(int(params["seed"]))
    class_names = _class_names(split)
    model = create_classifier(
        model_params["backbone"],
        weights=params["weights"],
        num_classes=len(class_names),
        head=params["head"],
    )
    set_backbone_trainable(model, False)
    position = {path: i for i, path in enumerate(cached["paths"])}
    train_rows, val_rows = split[split["split"] == "train"], split[split["split"] == "val"]
    train_labels = class_indices(train_rows["label"], class_names)
    if cached["augmented"] is not None:
        order = [cached["train_paths"].index(p) for p in train_rows["path"]]
        train_set = _EpochViews(cached["augmented"][:, order], train_labels)
    else:
        train_set = feature_dataset(
            cached["features"][[position[p] for p in train_rows["path"]]], train_labels
        )
    val_set = feature_dataset(
        cached["features"][[position[p] for p in val_rows["path"]]],
        class_indices(val_rows["label"], class_names),
    )
    loader_args = {
        "batch_size": int(params["batch_size"]),
        "generator": generator,
        "num_workers": 0,
        "pin_memory": False,
    }
    train_loader = make_loader(train_set, shuffle=True, **loader_args)
    head = model.head.to(settings.device)
    optimizer = create_optimizer(head=head, backbone=None, params=params)
    scheduler, per_batch = create_scheduler(
        optimizer, params, epochs=int(params["epochs"]), steps_per_epoch=len(train_loader)
    )
    _log_parameter_counts(model, variant)
    result = fit(
        head,
        criterion=_criterion(params),
        optimizer=optimizer,
        train_loader=train_loader,
        val_loader=make_loader(val_set, shuffle=False, **loader_args),
        settings=settings,
        epochs=int(params["epochs"]),
        patience=params["early_stopping_patience"],
        scheduler=scheduler,
        scheduler_per_batch=per_batch,
        variant=variant,
        on_epoch_start=train_set.set_epoch if isinstance(train_set, _EpochViews) else None,
    )
    return _trained_outputs(model, result, split, params, model_params, class_names, spec)
