"""Training a variant: end to end on cached images (scratch and fine-tune), or only the
head on cached backbone features (frozen). Both return the checkpoint, the per-epoch
history and a training summary."""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable, Mapping
from typing import Any

import pandas as pd
import torch
from torch import nn

from transfer_study.config import ModelSettings, TrainingSettings
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


def _criterion(settings: TrainingSettings) -> nn.Module:
    return nn.CrossEntropyLoss(label_smoothing=settings.label_smoothing)


def _optimizer_and_scheduler(
    settings: TrainingSettings, head: nn.Module, backbone: nn.Module | None, steps_per_epoch: int
) -> tuple[torch.optim.Optimizer, torch.optim.lr_scheduler.LRScheduler | None, bool]:
    """The optimiser over the head (and backbone), its schedule, and whether that steps per
    batch."""
    optimizer = create_optimizer(
        settings.optimizer,
        head=head,
        backbone=backbone,
        lr=settings.lr,
        weight_decay=settings.weight_decay,
        momentum=settings.momentum,
        backbone_lr_multiplier=settings.backbone_lr_multiplier,
    )
    scheduler, per_batch = create_scheduler(
        optimizer,
        settings.scheduler,
        epochs=settings.epochs,
        steps_per_epoch=steps_per_epoch,
        step_size=settings.step_size,
        gamma=settings.gamma,
    )
    return optimizer, scheduler, per_batch


def _classifier(model: ModelSettings, settings: TrainingSettings, num_classes: int) -> Classifier:
    return create_classifier(
        model.backbone,
        weights=settings.weights,
        num_classes=num_classes,
        head=_head_spec(settings),
    )


def _head_spec(settings: TrainingSettings) -> dict[str, Any]:
    """The head as ``build_head`` and the checkpoint take it (unset options left out)."""
    return settings.head.model_dump(exclude_none=True)


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
    classifier: Classifier,
    result: FitResult,
    split: pd.DataFrame,
    settings: TrainingSettings,
    model: ModelSettings,
) -> dict[str, Any]:
    trainable, total = count_parameters(classifier)
    best = result.history.loc[result.history["epoch"] == result.best_epoch].iloc[0]
    return {
        "variant": settings.name,
        "backbone": model.backbone,
        "weights": settings.weights,
        "seed": settings.seed,
        **training_data_profile(split),
        "train_seconds": round(result.seconds, 2),
        "epochs_run": len(result.history),
        "best_epoch": int(result.best_epoch),
        "best_val_accuracy": float(best["val_accuracy"]),
        "stopped_early": bool(result.stopped_early),
        "trainable_params": trainable,
        "total_params": total,
        # The resolved settings, as plain data: what MLflow records for this training.
        "parameters": {
            "model": model.model_dump(mode="json"),
            "training": settings.model_dump(mode="json"),
        },
    }


def _trained_outputs(
    classifier: Classifier,
    result: FitResult,
    split: pd.DataFrame,
    settings: TrainingSettings,
    model: ModelSettings,
    class_names: list[str],
    preprocessing: Preprocessing,
) -> tuple[dict[str, Any], pd.DataFrame, dict[str, Any]]:
    """The checkpoint, history and summary every training returns."""
    summary = _summary(classifier, result, split, settings, model)
    checkpoint = make_checkpoint(
        classifier.cpu(),
        backbone=model.backbone,
        weights=settings.weights,
        head=_head_spec(settings),
        class_names=class_names,
        preprocessing=preprocessing,
        extra={k: v for k, v in summary.items() if k != "parameters"},
    )
    return checkpoint, result.history, summary


def _log_parameter_counts(model: nn.Module, variant: str) -> None:
    trainable, total = count_parameters(model)
    logger.info("%s: %s of %s parameters are trainable.", variant, f"{trainable:,}", f"{total:,}")


def train_on_images(
    decoded_images: Mapping[str, Callable[[], dict]],
    split: pd.DataFrame,
    preprocessing: Preprocessing,
    model: ModelSettings,
    settings: TrainingSettings,
) -> tuple[dict[str, Any], pd.DataFrame, dict[str, Any]]:
    """Trains a variant end to end on cached images (scratch and fine-tune).

    Args:
        decoded_images: The decoded-image cache.
        split: The split table.
        preprocessing: Input size and normalisation.
        model: The ``model`` parameters (``backbone``).
        settings: The variant's settings (weights, head, optimiser, schedule, epochs, …).

    Returns:
        The checkpoint, the per-epoch history and a training summary.
    """
    device = _device_settings(
        settings.device, channels_last=settings.channels_last, amp=settings.amp
    )
    generator = seed_everything(settings.seed)
    class_names = _class_names(split)
    cache = select_image_cache(decoded_images, split, preprocessing)
    classifier = _classifier(model, settings, len(class_names)).to(
        device.device, memory_format=_memory_format(device)
    )
    train_transform = build_train_transform(
        preprocessing=preprocessing, augmentations=settings.augmentation_specs()
    )
    loader_options = {
        "batch_size": settings.batch_size,
        "num_workers": settings.num_workers,
        "generator": generator,
        "settings": device,
    }
    train_loader = _image_loader(
        cache,
        split[split["split"] == "train"],
        class_names,
        train_transform,
        shuffle=True,
        **loader_options,
    )
    val_loader = _image_loader(
        cache,
        split[split["split"] == "val"],
        class_names,
        build_eval_transform(preprocessing=preprocessing),
        shuffle=False,
        **loader_options,
    )
    frozen_epochs = settings.backbone_frozen_epochs
    optimizer, scheduler, per_batch = _optimizer_and_scheduler(
        settings, classifier.head, classifier.backbone, len(train_loader)
    )
    _log_parameter_counts(classifier, settings.name)
    result = fit(
        maybe_compile(classifier, settings.compile, device.device),
        criterion=_criterion(settings),
        optimizer=optimizer,
        train_loader=train_loader,
        val_loader=val_loader,
        settings=device,
        epochs=settings.epochs,
        patience=settings.early_stopping_patience,
        scheduler=scheduler,
        scheduler_per_batch=per_batch,
        backbone=classifier.backbone if frozen_epochs else None,
        backbone_frozen_epochs=frozen_epochs,
        variant=settings.name,
    )
    set_backbone_trainable(classifier, True)
    return _trained_outputs(classifier, result, split, settings, model, class_names, preprocessing)


def train_on_features(
    backbone_features: Mapping[str, Callable[[], dict]],
    split: pd.DataFrame,
    preprocessing: Preprocessing,
    model: ModelSettings,
    settings: TrainingSettings,
) -> tuple[dict[str, Any], pd.DataFrame, dict[str, Any]]:
    """Trains only the head on cached backbone features (the frozen variant).

    Equivalent to training with the backbone frozen in eval mode, but each photo goes
    through the backbone once instead of once per epoch.

    Args:
        backbone_features: The feature cache written by ``embed_images``.
        split: The split table.
        preprocessing: Input size and normalisation (stored in the checkpoint).
        model: The ``model`` parameters (``backbone``).
        settings: The frozen variant's settings.

    Returns:
        The checkpoint (backbone + trained head), the history and a training summary.
    """
    key = _features_key(image_cache_key(split, preprocessing), model.backbone, settings)
    if key not in backbone_features:
        raise KeyError(f"No cached backbone features '{key}': run 'embed_images_node' first.")
    cached = backbone_features[key]()
    # Features are 2-D: the channels-last format does not apply.
    device = _device_settings(settings.device, channels_last=False, amp=settings.amp)
    generator = seed_everything(settings.seed)
    class_names = _class_names(split)
    classifier = _classifier(model, settings, len(class_names))
    set_backbone_trainable(classifier, False)
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
        "batch_size": settings.batch_size,
        "generator": generator,
        "num_workers": 0,
        "pin_memory": False,
    }
    train_loader = make_loader(train_set, shuffle=True, **loader_args)
    head = classifier.head.to(device.device)
    optimizer, scheduler, per_batch = _optimizer_and_scheduler(
        settings, head, None, len(train_loader)
    )
    _log_parameter_counts(classifier, settings.name)
    result = fit(
        head,
        criterion=_criterion(settings),
        optimizer=optimizer,
        train_loader=train_loader,
        val_loader=make_loader(val_set, shuffle=False, **loader_args),
        settings=device,
        epochs=settings.epochs,
        patience=settings.early_stopping_patience,
        scheduler=scheduler,
        scheduler_per_batch=per_batch,
        variant=settings.name,
        on_epoch_start=train_set.set_epoch if isinstance(train_set, _EpochViews) else None,
    )
    return _trained_outputs(classifier, result, split, settings, model, class_names, preprocessing)
