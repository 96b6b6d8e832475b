"""What one training of a variant starts from: the seeded model, the loaders, the loss
(class-weighted when classes are imbalanced) and the headline metric. Built the same way
for the learning-rate range test and for the training that follows it, so both see the
same initial weights and data."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import pandas as pd
import torch
from torch import nn
from torch.utils.data import DataLoader

from transfer_study.config import ModelSettings, TrainingSettings
from transfer_study.models.factory import Classifier, create_classifier, set_backbone_trainable
from transfer_study.models.preprocessing import Preprocessing
from transfer_study.models.stages import cut_backbone
from transfer_study.models.transforms import build_eval_transform, build_train_transform
from transfer_study.training.balance import class_weights, headline_metric, is_imbalanced
from transfer_study.training.cpu_tuning import tuned_for_training
from transfer_study.training.data import (
    _image_loader,
    class_indices,
    feature_dataset,
    make_loader,
    seed_everything,
)
from transfer_study.training.device import (
    DeviceSettings,
    _device_settings,
    _memory_format,
    maybe_compile,
)
from transfer_study.training.features import _EpochViews, _features_key
from transfer_study.training.image_cache import image_cache_key, select_image_cache
from transfer_study.training.intermediate import cached_intermediate
from transfer_study.training.loops import Metric
from transfer_study.training.optim import create_optimizer
from transfer_study.training.progressive import stage_sizes

Cache = Mapping[str, Callable[[], dict]]


@dataclass
class TrainingSetup:
    """A seeded model with its data, ready for the range test or ``fit``.

    Attributes:
        classifier: The whole classifier (what the checkpoint stores).
        module: What trains: the (possibly compiled) classifier, or only its head.
        backbone: What of the backbone trains (scratch, fine-tune: all of it; partial
            fine-tune: its later stages), else ``None``.
        train_loader: Shuffled training batches.
        val_loader: Validation batches.
        criterion: The loss, class-weighted when that applies.
        device: Device, memory format, mixed precision.
        class_names: Sorted class names.
        metric: The headline metric of this split.
        on_epoch_start: Shows another augmented view per epoch (frozen, cached views).
        input_sizes: The sides it trains at in turn (progressive resizing), the input
            size last; the loaders start at the first.
        resize: Rebuilds both loaders at another side (``None``: one side only).
    """

    classifier: Classifier
    module: nn.Module
    backbone: nn.Module | None
    train_loader: DataLoader
    val_loader: DataLoader
    criterion: nn.Module
    device: DeviceSettings
    class_names: list[str]
    metric: Metric
    on_epoch_start: Callable[[int], None] | None = None
    input_sizes: tuple[int, ...] = ()
    resize: Callable[[int], None] | None = None

    def optimizer(self, settings: TrainingSettings, lr: float) -> torch.optim.Optimizer:
        """The optimiser over what trains, with the head's learning rate ``lr``."""
        return create_optimizer(
            settings.optimizer,
            head=self.classifier.head,
            backbone=self.backbone,
            lr=lr,
            weight_decay=settings.weight_decay,
            momentum=settings.momentum,
            backbone_lr_multiplier=settings.backbone_lr_multiplier,
        )


def class_names_of(split: pd.DataFrame) -> list[str]:
    """The split's class names, sorted: the order of the model's outputs."""
    return sorted(split["label"].unique())


def _criterion(
    settings: TrainingSettings, split: pd.DataFrame, train_labels: list[int], n: int
) -> nn.Module:
    weights = class_weights(train_labels, n, settings.class_weights, is_imbalanced(split["label"]))
    return nn.CrossEntropyLoss(weight=weights, label_smoothing=settings.label_smoothing)


def _classifier(model: ModelSettings, settings: TrainingSettings, num_classes: int) -> Classifier:
    return create_classifier(
        model.backbone, weights=settings.weights, num_classes=num_classes, head=head_spec(settings)
    )


def head_spec(settings: TrainingSettings) -> dict[str, Any]:
    """The head as ``build_head`` and the checkpoint take it (unset options left out)."""
    return settings.head.model_dump(exclude_none=True)


def image_setup(
    decoded_images: Cache,
    split: pd.DataFrame,
    preprocessing: Preprocessing,
    model: ModelSettings,
    settings: TrainingSettings,
) -> TrainingSetup:
    """The setup of a variant trained end to end on cached images (scratch, fine-tune)."""
    device = _device_settings(
        settings.device, channels_last=settings.channels_last, amp=settings.amp
    )
    generator = seed_everything(settings.seed)
    class_names = class_names_of(split)
    cache = select_image_cache(decoded_images, split, preprocessing)
    classifier = _classifier(model, settings, len(class_names))
    sizes = tuple(stage_sizes(settings.progressive_scales, preprocessing.input_size))
    device = tuned_for_training(
        device,
        classifier,
        (settings.batch_size, 3, sizes[-1], sizes[-1]),
        channels_last=settings.channels_last,
        precision=settings.cpu_precision,
    )
    classifier = classifier.to(device.device, memory_format=_memory_format(device))
    train_rows, val_rows = split[split["split"] == "train"], split[split["split"] == "val"]
    options = {
        "batch_size": settings.batch_size,
        "num_workers": settings.num_workers,
        "generator": generator,
        "settings": device,
    }
    augmentations = settings.augmentation_specs()

    def loaders_at(side: int) -> tuple[DataLoader, DataLoader]:
        train = build_train_transform(
            preprocessing=preprocessing, augmentations=augmentations, output_size=side
        )
        evaluation = build_eval_transform(preprocessing=preprocessing, output_size=side)
        return (
            _image_loader(cache, train_rows, class_names, train, shuffle=True, **options),
            _image_loader(cache, val_rows, class_names, evaluation, shuffle=False, **options),
        )

    train_loader, val_loader = loaders_at(sizes[0])
    train_labels = class_indices(train_rows["label"], class_names)
    setup = TrainingSetup(
        classifier=classifier,
        module=maybe_compile(classifier, settings.compile, device.device),
        backbone=classifier.backbone,
        train_loader=train_loader,
        val_loader=val_loader,
        criterion=_criterion(settings, split, train_labels, len(class_names)).to(device.device),
        device=device,
        class_names=class_names,
        metric=headline_metric(split),
        input_sizes=sizes,
    )

    def resize(side: int) -> None:
        setup.train_loader, setup.val_loader = loaders_at(side)

    setup.resize = resize
    return setup


def feature_setup(
    backbone_features: Cache,
    split: pd.DataFrame,
    preprocessing: Preprocessing,
    model: ModelSettings,
    settings: TrainingSettings,
) -> TrainingSetup:
    """The setup of the frozen variant: only the head trains, on cached features."""
    key = _features_key(image_cache_key(split, preprocessing), model.backbone, settings)
    if key not in backbone_features:
        raise KeyError(f"No cached backbone features '{key}': run 'embed_images_node' first.")
    cached = backbone_features[key]()
    # Features are 2-D: the channels-last format does not apply.
    device = _device_settings(settings.device, channels_last=False, amp=settings.amp)
    generator = seed_everything(settings.seed)
    class_names = class_names_of(split)
    classifier = _classifier(model, settings, len(class_names))
    set_backbone_trainable(classifier, False)
    position = {path: i for i, path in enumerate(cached["paths"])}
    train_rows, val_rows = split[split["split"] == "train"], split[split["split"] == "val"]
    train_labels = class_indices(train_rows["label"], class_names)
    if cached["augmented"] is not None:
        views_at = {path: i for i, path in enumerate(cached["view_paths"])}
        order = [views_at[p] for p in train_rows["path"]]
        train_set = _EpochViews(cached["augmented"][:, order], train_labels)
    else:
        train_set = feature_dataset(
            cached["features"][[position[p] for p in train_rows["path"]]], train_labels
        )
    val_set = feature_dataset(
        cached["features"][[position[p] for p in val_rows["path"]]],
        class_indices(val_rows["label"], class_names),
    )
    options = {"batch_size": settings.batch_size, "generator": generator}
    options |= {"num_workers": 0, "pin_memory": False}
    return TrainingSetup(
        classifier=classifier,
        module=classifier.head.to(device.device),
        backbone=None,
        train_loader=make_loader(train_set, shuffle=True, **options),
        val_loader=make_loader(val_set, shuffle=False, **options),
        criterion=_criterion(settings, split, train_labels, len(class_names)).to(device.device),
        device=device,
        class_names=class_names,
        metric=headline_metric(split),
        on_epoch_start=train_set.set_epoch if isinstance(train_set, _EpochViews) else None,
    )


class _AsFloat(nn.Module):
    """Casts the cached float16 early-stage outputs to float32 on the device."""

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        return inputs.float()


def intermediate_setup(
    intermediate_features: Cache,
    split: pd.DataFrame,
    preprocessing: Preprocessing,
    model: ModelSettings,
    settings: TrainingSettings,
) -> TrainingSetup:
    """The setup of partial fine-tuning: the backbone's later stages and the head train,
    on the early stages' outputs cached by ``embed_intermediate``."""
    cached = cached_intermediate(intermediate_features, split, preprocessing, model, settings)
    device = _device_settings(
        settings.device, channels_last=settings.channels_last, amp=settings.amp
    )
    generator = seed_everything(settings.seed)
    class_names = class_names_of(split)
    classifier = _classifier(model, settings, len(class_names))
    set_backbone_trainable(classifier, False)
    top = cut_backbone(classifier.backbone, model.backbone, settings.trainable_stages).trainable
    top.requires_grad_(True)
    module = nn.Sequential(_AsFloat(), top, classifier.head)
    device = tuned_for_training(
        device,
        module,
        (settings.batch_size, *cached["features"].shape[1:]),
        channels_last=settings.channels_last,
        precision=settings.cpu_precision,
    )
    classifier.to(device.device, memory_format=_memory_format(device))
    position = {path: i for i, path in enumerate(cached["paths"])}
    train_rows, val_rows = split[split["split"] == "train"], split[split["split"] == "val"]
    train_labels = class_indices(train_rows["label"], class_names)
    train_at = [position[p] for p in train_rows["path"]]
    views = cached["augmented"] if cached["augmented"] is not None else cached["features"][None]
    train_set = _EpochViews(views[:, train_at], train_labels)
    val_set = torch.utils.data.TensorDataset(
        cached["features"][[position[p] for p in val_rows["path"]]],
        torch.as_tensor(class_indices(val_rows["label"], class_names), dtype=torch.long),
    )
    options = {"batch_size": settings.batch_size, "generator": generator}
    options |= {"num_workers": 0, "pin_memory": False}
    return TrainingSetup(
        classifier=classifier,
        module=module,
        backbone=top,
        train_loader=make_loader(train_set, shuffle=True, **options),
        val_loader=make_loader(val_set, shuffle=False, **options),
        criterion=_criterion(settings, split, train_labels, len(class_names)).to(device.device),
        device=device,
        class_names=class_names,
        metric=headline_metric(split),
        on_epoch_start=train_set.set_epoch,
    )
