"""Times our training code against the PyTorch transfer-learning tutorial's loop.

    python benchmarks/training_speed.py                 # full benchmark (≤ 10 min, 2 cores)
    python benchmarks/training_speed.py --quick         # tiny sizes, a smoke test (< 1 min)
    python benchmarks/training_speed.py --pipelines     # also time `kedro run` and the ablation

One run renders demo photos (128 px JPEGs, ImageFolder layout) and trains the study's
backbone at the study's input size (`model` in conf/base/parameters.yml) three ways:

* tutorial — a faithful re-implementation of the loop of
  https://pytorch.org/tutorials/beginner/transfer_learning_tutorial.html: ImageFolder + PIL
  decode and RandomResizedCrop/flip/ToTensor/Normalize every epoch, batch 4, SGD(0.001,
  momentum 0.9), StepLR(7, 0.1), fp32, contiguous tensors. Frozen = "ConvNet as fixed
  feature extractor" (the backbone runs forward on every step).
* ours — the project's nodes with the study's parameter blocks, trained for a fixed number
  of epochs at a fixed lr without early stopping, so that runs compare:
  `embed_images` + `train_on_features` (frozen), `train_on_images` (fine-tune).
* bound — our training step on one in-memory batch: no data loading, no augmentation.

It prints Markdown tables (machine, measurements, ratios with their targets, scaling
with the training-set size) for docs/performance.md. Timings depend on the machine and
on what else runs on it: measure on a quiet machine.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import hashlib
import math
import os
import sys
import tempfile
import time
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from itertools import islice
from pathlib import Path
from typing import Any
from unittest import mock

import pandas as pd
import torch
from kedro.config import OmegaConfigLoader
from time_budgets import BUDGETS_SECONDS, REPO_ROOT, _timed
from torch import nn
from torch.utils.data import DataLoader
from torchvision import datasets, transforms

from transfer_study.config import (
    ModelSettings,
    TrainingSettings,
    VariantOverrides,
    resolve_training_settings,
    with_overrides,
)
from transfer_study.config.demo import DemoConfig
from transfer_study.datasets import PhotoFolderDataset
from transfer_study.demo.renderer import render_fragments
from transfer_study.models.factory import create_classifier, set_backbone_trainable
from transfer_study.models.preprocessing import Preprocessing, preprocessing_for
from transfer_study.photos.splitting import SPLIT_COLUMNS
from transfer_study.training import fitting, loops
from transfer_study.training.data import seed_everything
from transfer_study.training.device import DeviceSettings, pick_device
from transfer_study.training.features import embed_images
from transfer_study.training.image_cache import decode_images, image_cache_key
from transfer_study.training.optim import create_optimizer
from transfer_study.training.variants import train_on_features, train_on_images

# The tutorial's settings (the "Load Data" and "ConvNet as fixed feature extractor" /
# "Finetuning the ConvNet" sections).
TUTORIAL_BATCH_SIZE = 4
TUTORIAL_NUM_WORKERS = 4
TUTORIAL_LR = 0.001
TUTORIAL_MOMENTUM = 0.9
TUTORIAL_STEP_SIZE = 7
TUTORIAL_GAMMA = 0.1

TARGET_FROZEN_SPEEDUP = 20.0
TARGET_FINETUNE_SPEEDUP = 2.0
TARGET_FRACTION_OF_BOUND = 0.8
PIPELINE_BUDGETS_SECONDS = {
    "kedro run": BUDGETS_SECONDS["kedro run"],
    "kedro run --pipeline=data_size_ablation": 600,
}
SCALING_TRAIN_IMAGES = (250, 500, 1000)
VAL_FRACTION_OF_TRAIN = 4  # val photos = train photos // 4, as in the demo split (480/120)
MIN_VAL_IMAGES = 8  # two tutorial batches, two samples (one of each class)
JPEG_QUALITY = 90  # as the catalog's demo_fragments entry saves them
PHOTO_SIZE = 128  # px, the demo photos' default
MIN_TRAIN_IMAGES = 16  # at least 2 timed tutorial batches in each pass

Batch = tuple[torch.Tensor, torch.Tensor]

# The main table's rows, in order: key → (loop, variant, measure, unit).
MEASURES = {
    "tutorial frozen epoch": ("tutorial", "frozen", "epoch (train + val)", "s"),
    "ours frozen first epoch": ("ours", "frozen", "first epoch incl. decode + extraction", "s"),
    "ours frozen later epoch": ("ours", "frozen", "later epoch (train + val)", "s"),
    "tutorial finetune training": ("tutorial", "finetune", "training", "img/s"),
    "ours finetune training": ("ours", "finetune", "training", "img/s"),
    "ours finetune epoch": ("ours", "finetune", "epoch (train + val)", "s"),
    "bound training": ("bound", "finetune", "training step, in-memory batch", "img/s"),
}


def val_images(train_images: int) -> int:
    """Validation photos for a training set: a quarter of it, as in the demo split."""
    return max(train_images // VAL_FRACTION_OF_TRAIN, MIN_VAL_IMAGES)


@dataclass(frozen=True)
class Settings:
    """Sizes of one benchmark run."""

    train_images: int
    epochs: int
    warmup_batches: int  # untimed batches before each timed tutorial pass or bound run
    tutorial_batches: int  # most timed tutorial batches per pass (the rest extrapolated)
    bound_steps: int
    scaling: bool
    pipelines: bool

    @property
    def val_images(self) -> int:
        """Validation photos for the main measurement."""
        return val_images(self.train_images)


@dataclass(frozen=True)
class StudyData:
    """Photos on disk and what the project's nodes read: split table and decoded cache."""

    folder: Path
    split: pd.DataFrame
    decoded: dict[str, Callable[[], dict]]
    preprocessing: dict[str, Any]
    decode_seconds: float

    @property
    def train_images(self) -> int:
        """Number of training photos."""
        return int((self.split["split"] == "train").sum())


# ------------------------------------------------------------------------------ set-up


def _parse_args() -> Settings:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--images", type=int, help="training photos (default 480, quick 16)")
    parser.add_argument("--epochs", type=int, help="epochs of our runs (default 4, quick 2)")
    parser.add_argument("--quick", action="store_true", help="tiny sizes, no scaling table")
    parser.add_argument(
        "--pipelines", action="store_true", help="also time whole `kedro run`s (up to ~14 min more)"
    )
    args = parser.parse_args()
    settings = Settings(
        train_images=args.images or (16 if args.quick else 480),
        epochs=args.epochs or (2 if args.quick else 4),
        warmup_batches=1 if args.quick else 5,
        tutorial_batches=2 if args.quick else 100,
        bound_steps=2 if args.quick else 12,
        scaling=not args.quick,
        pipelines=args.pipelines,
    )
    if settings.train_images < MIN_TRAIN_IMAGES or settings.epochs < 2:
        parser.error(f"use --images ≥ {MIN_TRAIN_IMAGES} and --epochs ≥ 2")
    return settings


@dataclass(frozen=True)
class StudyParameters:
    """The study's typed parameters that the measurements use."""

    model: ModelSettings
    frozen: TrainingSettings
    finetune: TrainingSettings
    demo_data: DemoConfig


def load_parameters() -> StudyParameters:
    """The project's parameters as a `kedro run` resolves them (conf/base + conf/local)."""
    warnings.filterwarnings("ignore", message=".*register_new_resolver", category=UserWarning)
    loader = OmegaConfigLoader(
        conf_source=str(REPO_ROOT / "conf"),
        base_env="base",
        default_run_env="local",
        merge_strategy={"parameters": "soft"},
    )
    raw = loader["parameters"]
    defaults = VariantOverrides.model_validate(raw["training_defaults"])

    def variant(name: str) -> TrainingSettings:
        return resolve_training_settings(name, defaults, VariantOverrides.model_validate(raw[name]))

    return StudyParameters(
        model=ModelSettings.model_validate(raw["model"]),
        frozen=variant("frozen"),
        finetune=variant("finetune"),
        demo_data=DemoConfig.model_validate(raw["demo_data"]),
    )


def _cpu_model() -> str:
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return "unknown CPU"


def machine_header(
    params: StudyParameters, preprocessing: dict[str, Any], settings: Settings
) -> list[str]:
    """Machine, library versions and the settings that decide the speed."""
    block = params.finetune
    device = pick_device(block.device)
    amp = block.amp and device.type == "cuda"
    return [
        f"machine: {os.cpu_count()} cores, {_cpu_model()}, torch {torch.__version__}, "
        f"device {device}, {torch.get_num_threads()} torch threads",
        f"model: {params.model.backbone} (ImageNet weights) at "
        f"{preprocessing['input_size']} px, 2 classes; "
        f"channels_last {'on' if block.channels_last else 'off'} and AMP "
        f"{'on (float16)' if amp else 'off'} in ours and bound; the tutorial: fp32, contiguous",
        f"data: {settings.train_images} train + {settings.val_images} val demo photos "
        f"({PHOTO_SIZE} px JPEG, quality {JPEG_QUALITY}, seed {params.demo_data.seed}); "
        f"ours: the study's parameter blocks with {settings.epochs} epochs",
        f"tutorial loader: batch {TUTORIAL_BATCH_SIZE}, num_workers {_tutorial_workers()} "
        f"(the tutorial's {TUTORIAL_NUM_WORKERS}, capped at {os.cpu_count()} cores)",
    ]


# ------------------------------------------------------------------------------ photos


def _samples_for(photos: int, angles: int) -> int:
    """Whole pairs of samples (the renderer gives one of each class per pair)."""
    return 2 * math.ceil(photos / (2 * angles))


def render_photo_pool(
    root: Path, demo_params: DemoConfig, train_photos: int, val_photos: int
) -> dict[str, list[Path]]:
    """Renders demo photos once: a training pool, then a validation pool of other samples.

    Args:
        root: Folder to write ``pool/<class>/s<sample>_a<angle>.jpg`` into.
        demo_params: ``demo_data`` parameters (appearance, angles, seed).
        train_photos: Photos needed for the largest training set.
        val_photos: Photos needed for the largest validation set.

    Returns:
        ``{"train": paths, "val": paths}``, each in sample and angle order.
    """
    angles = demo_params.n_angles
    train_samples = _samples_for(train_photos, angles)
    n_samples = train_samples + _samples_for(val_photos, angles)
    renders = render_fragments(
        DemoConfig.model_validate(
            {**demo_params.model_dump(), "n_samples": n_samples, "image_size": PHOTO_SIZE}
        )
    )
    pool: dict[str, list[Path]] = {"train": [], "val": []}
    for key, render in renders.items():
        path = root / "pool" / f"{key}.jpg"
        path.parent.mkdir(parents=True, exist_ok=True)
        render().save(path, quality=JPEG_QUALITY)
        sample = int(path.stem.split("_")[0][1:])
        pool["train" if sample < train_samples else "val"].append(path)
    return pool


def lay_out(pool: Mapping[str, list[Path]], folder: Path, train: int, val: int) -> Path:
    """Links the first ``train``/``val`` pool photos into ``folder/{train,val}/<class>/``."""
    for split, count in (("train", train), ("val", val)):
        for photo in pool[split][:count]:
            target = folder / split / photo.parent.name / photo.name
            target.parent.mkdir(parents=True, exist_ok=True)
            os.link(photo, target)
    return folder


def split_table(folder: Path) -> pd.DataFrame:
    """The split node's table (``path,label,sample_id,angle,split,sha256``) of a layout."""
    rows = []
    for photo in sorted(folder.glob("*/*/*.jpg")):
        sample_id, angle = photo.stem.split("_a")
        rows.append(
            {
                "path": photo.relative_to(folder).as_posix(),
                "label": photo.parent.name,
                "sample_id": sample_id,
                "angle": int(angle),
                "split": photo.parent.parent.name,
                "sha256": hashlib.sha256(photo.read_bytes()).hexdigest(),
            }
        )
    return pd.DataFrame(rows, columns=SPLIT_COLUMNS).sort_values(["split", "path"])


def study_data(folder: Path, preprocessing: dict[str, Any]) -> StudyData:
    """Decodes a layout's photos once into the cache, as `cache_decoded_images` does."""
    split = split_table(folder)
    spec = Preprocessing.from_dict(preprocessing)
    raw_images = PhotoFolderDataset(path=str(folder)).load()
    started = time.perf_counter()
    cache = decode_images(split["path"].tolist(), raw_images, spec)
    seconds = time.perf_counter() - started
    decoded = {image_cache_key(split, spec): lambda: cache}
    return StudyData(folder, split, decoded, preprocessing, seconds)


# ---------------------------------------------------------------------------- tutorial


def _tutorial_workers() -> int:
    return min(TUTORIAL_NUM_WORKERS, os.cpu_count() or 1)


def _tutorial_loader(folder: Path, spec: Preprocessing, *, train: bool) -> DataLoader:
    """The tutorial's ImageFolder + transforms + DataLoader, at our input size."""
    normalise = [transforms.ToTensor(), transforms.Normalize(spec.mean, spec.std)]
    if train:
        steps = [transforms.RandomResizedCrop(spec.input_size), transforms.RandomHorizontalFlip()]
    else:
        steps = [transforms.Resize(spec.resize_size), transforms.CenterCrop(spec.input_size)]
    dataset = datasets.ImageFolder(
        folder / ("train" if train else "val"), transforms.Compose(steps + normalise)
    )
    return DataLoader(
        dataset, batch_size=TUTORIAL_BATCH_SIZE, shuffle=True, num_workers=_tutorial_workers()
    )


def _tutorial_model(
    model_params: ModelSettings, device: torch.device, *, frozen: bool
) -> tuple[nn.Module, torch.optim.Optimizer]:
    """The pretrained model on ``device`` and the tutorial's SGD over what it trains."""
    model = create_classifier(model_params.backbone, weights="imagenet", num_classes=2)
    model = model.to(device)
    if frozen:
        set_backbone_trainable(model, False)  # the new head keeps requires_grad=True
    trained = model.head if frozen else model
    optimizer = torch.optim.SGD(trained.parameters(), lr=TUTORIAL_LR, momentum=TUTORIAL_MOMENTUM)
    return model, optimizer


def _tutorial_step(
    model: nn.Module, optimizer: torch.optim.Optimizer, device: torch.device, *, train: bool
) -> Callable[[Batch], None]:
    """The body of the tutorial's ``for inputs, labels in dataloaders[phase]`` loop."""
    criterion = nn.CrossEntropyLoss()
    running = {"loss": 0.0, "corrects": 0}

    def step(batch: Batch) -> None:
        inputs, labels = batch
        inputs, labels = inputs.to(device), labels.to(device)
        optimizer.zero_grad()
        with torch.set_grad_enabled(train):
            outputs = model(inputs)
            _, preds = torch.max(outputs, 1)
            loss = criterion(outputs, labels)
            if train:
                loss.backward()
                optimizer.step()
        running["loss"] += loss.item() * inputs.size(0)
        running["corrects"] += torch.sum(preds == labels.data)

    return step


@dataclass(frozen=True)
class PassTiming:
    """A timed part of one pass over a loader, and the whole pass extrapolated from it."""

    batches: int  # in a whole pass
    timed: int  # timed after warm-up
    startup: float  # seconds from iter(loader) to the first batch (starts the workers)
    per_batch: float  # seconds per batch after warm-up, loading included

    @property
    def seconds(self) -> float:
        """The whole pass: start-up plus every batch at the steady per-batch time."""
        return self.startup + self.batches * self.per_batch


def time_pass(
    loader: DataLoader, step: Callable[[Batch], None], *, warmup: int, most: int
) -> PassTiming:
    """Runs a fresh pass over ``loader``: start-up, ``warmup`` untimed steps, timed steps.

    Args:
        loader: A loader of at least two batches.
        step: Runs one batch.
        warmup: Untimed steps (the first batch is always one).
        most: Most timed steps; fewer if the pass ends first.

    Returns:
        The timing; the remaining batches of the pass are not run.
    """
    batches = len(loader)
    warmup = max(1, min(warmup, batches - 1))
    started = time.perf_counter()
    iterator = iter(loader)
    first = next(iterator)
    startup = time.perf_counter() - started
    step(first)
    for batch in islice(iterator, warmup - 1):
        step(batch)
    timed = min(most, batches - warmup)
    started = time.perf_counter()
    for batch in islice(iterator, timed):
        step(batch)
    per_batch = (time.perf_counter() - started) / timed
    del iterator  # stops the worker processes
    return PassTiming(batches, timed, startup, per_batch)


def describe_pass(name: str, timing: PassTiming) -> str:
    """Says how a tutorial pass was extrapolated from its timed batches."""
    return (
        f"{name} pass = start-up {timing.startup:.2f} s + {timing.batches} batches × "
        f"{timing.per_batch:.3f} s (mean of {timing.timed} timed)"
    )


@dataclass(frozen=True)
class TutorialTiming:
    """The tutorial's train pass and, for the frozen variant, its val pass."""

    train: PassTiming
    val: PassTiming | None


def measure_tutorial(
    data: StudyData, params: StudyParameters, settings: Settings, *, frozen: bool
) -> TutorialTiming:
    """Times the tutorial's train pass (and, frozen, its val pass) on ``data``'s photos.

    Args:
        data: The photo layout (``train/`` and ``val/`` ImageFolders).
        params: The project's parameters (``model``, and the device and seed preference).
        settings: Warm-up and most timed batches per pass.
        frozen: Fixed feature extractor (only the head trains) or fine-tuning.

    Returns:
        The timings.
    """
    seed_everything(params.finetune.seed)
    device = pick_device(params.finetune.device)
    spec = Preprocessing.from_dict(data.preprocessing)
    model, optimizer = _tutorial_model(params.model, device, frozen=frozen)
    scheduler = torch.optim.lr_scheduler.StepLR(
        optimizer, step_size=TUTORIAL_STEP_SIZE, gamma=TUTORIAL_GAMMA
    )
    options = {"warmup": settings.warmup_batches, "most": settings.tutorial_batches}
    model.train()
    train_step = _tutorial_step(model, optimizer, device, train=True)
    train = time_pass(_tutorial_loader(data.folder, spec, train=True), train_step, **options)
    scheduler.step()
    if not frozen:
        return TutorialTiming(train, None)
    model.eval()
    val_step = _tutorial_step(model, optimizer, device, train=False)
    val = time_pass(_tutorial_loader(data.folder, spec, train=False), val_step, **options)
    return TutorialTiming(train, val)


# -------------------------------------------------------------------------------- ours


@dataclass(frozen=True)
class FrozenCost:
    """The frozen variant's costs: one-off decode and extraction, then epochs on features."""

    decode: float
    extraction: float
    epochs: list[float]  # the history's seconds (train + val on features)

    @property
    def first_epoch(self) -> float:
        """Decoding, feature extraction and the first epoch."""
        return self.decode + self.extraction + self.epochs[0]

    @property
    def later_epoch(self) -> float:
        """Mean seconds of the epochs after the first."""
        return sum(self.epochs[1:]) / len(self.epochs[1:])


@dataclass(frozen=True)
class FinetuneCost:
    """The fine-tune variant's epochs with the backbone unfrozen."""

    train_images: int
    train_passes: list[float]  # train_one_epoch's seconds
    epochs: list[float]  # the history's seconds (train + val)

    @property
    def images_per_second(self) -> float:
        """Training images per second of the training passes."""
        return self.train_images * len(self.train_passes) / sum(self.train_passes)

    @property
    def epoch(self) -> float:
        """Mean seconds of an epoch, validation included."""
        return sum(self.epochs) / len(self.epochs)


def measure_ours_frozen(data: StudyData, params: StudyParameters, epochs: int) -> FrozenCost:
    """Runs `embed_images` and `train_on_features` with the study's frozen block.

    Args:
        data: Split table and decoded-image cache.
        params: The project's parameters.
        epochs: Replaces the block's ``epochs``.

    Returns:
        Decode, extraction and per-epoch seconds.
    """
    block = with_overrides(
        params.frozen, **_fixed_epochs(epochs, data.train_images, block=params.frozen)
    )
    args = (data.split, Preprocessing.from_dict(data.preprocessing), params.model, block)
    ((key, compute),) = embed_images(data.decoded, *args).items()
    started = time.perf_counter()
    features = compute()
    extraction = time.perf_counter() - started
    _, history, _ = train_on_features({key: lambda: features}, *args)
    return FrozenCost(data.decode_seconds, extraction, history["seconds"].tolist())


def _fixed_epochs(epochs: int, train_images: int, *, block: Any) -> dict[str, Any]:
    """Settings that train exactly ``epochs`` epochs at a given lr: the budget's cap with no
    early stopping and no lr search, so that runs are comparable (see docs/performance.md)."""
    lr = block.lr if block.lr != "auto" else 0.001
    steps = epochs * -(-train_images // block.batch_size)  # every epoch's last batch too
    return {
        "lr": lr,
        "max_images": steps * block.batch_size,
        "min_steps": steps,
        "patience": None,
        "val_every_steps": 10**6,
    }


@contextlib.contextmanager
def timed_calls(module: Any, name: str) -> Iterator[list[float]]:
    """Records the wall time of every call of ``module.name`` while the block runs."""
    original = getattr(module, name)
    seconds: list[float] = []

    @functools.wraps(original)
    def timed(*args: Any, **kwargs: Any) -> Any:
        started = time.perf_counter()
        try:
            return original(*args, **kwargs)
        finally:
            seconds.append(time.perf_counter() - started)

    with mock.patch.object(module, name, timed):
        yield seconds


def measure_ours_finetune(data: StudyData, params: StudyParameters, epochs: int) -> FinetuneCost:
    """Runs `train_on_images` with the study's fine-tune block; keeps the unfrozen epochs.

    The training steps are timed by wrapping `train_step` (which `fit` calls once per
    batch), so they include the optimiser steps but neither loading, augmentation nor
    the validation pass; the head warm-up is one epoch.

    Args:
        data: Split table and decoded-image cache.
        params: The project's parameters.
        epochs: Epochs to train, the first of them the head warm-up (at least 2).

    Returns:
        Training-step and epoch seconds of the epochs with the backbone unfrozen.
    """
    steps_per_epoch = -(-data.train_images // params.finetune.batch_size)
    block = with_overrides(
        params.finetune,
        **_fixed_epochs(epochs, data.train_images, block=params.finetune),
        head_warmup_steps=steps_per_epoch,
    )
    spec = Preprocessing.from_dict(data.preprocessing)
    with timed_calls(fitting, "train_step") as steps:
        _, history, _ = train_on_images(data.decoded, data.split, spec, params.model, block)
    unfrozen = ~history["backbone_frozen"].to_numpy()
    step_seconds = steps[steps_per_epoch:]  # the steps after the warm-up epoch
    passes = [
        sum(step_seconds[i : i + steps_per_epoch])
        for i in range(0, len(step_seconds), steps_per_epoch)
    ]
    return FinetuneCost(data.train_images, passes, history.loc[unfrozen, "seconds"].tolist())


# ------------------------------------------------------------------------------- bound


def measure_bound(
    params: StudyParameters, preprocessing: dict[str, Any], settings: Settings
) -> float:
    """Training images/s of our training step on one batch kept in memory.

    The fine-tune block's model, optimiser, batch size, memory format and AMP, through
    `train_step`, so exactly our step without loading or augmentation.

    Args:
        params: The project's parameters.
        preprocessing: Gives the input size.
        settings: Warm-up and timed steps.

    Returns:
        Images per second after warm-up.
    """
    block = params.finetune
    device = pick_device(block.device)
    device_settings = DeviceSettings(device, block.channels_last, block.amp)
    seed_everything(block.seed)
    model = create_classifier(
        params.model.backbone,
        weights=block.weights,
        num_classes=2,
        head=block.head.model_dump(exclude_none=True),
    )
    memory_format = torch.channels_last if device_settings.channels_last else torch.preserve_format
    model = model.to(device, memory_format=memory_format).train()
    optimizer = create_optimizer(
        block.optimizer,
        head=model.head,
        backbone=model.backbone,
        lr=block.lr if block.lr != "auto" else 0.001,
        weight_decay=block.weight_decay,
        momentum=block.momentum,
        backbone_lr_multiplier=block.backbone_lr_multiplier,
    )
    criterion = nn.CrossEntropyLoss(label_smoothing=block.label_smoothing)
    scaler = torch.amp.GradScaler("cuda") if block.amp and device.type == "cuda" else None
    batch_size, side = block.batch_size, Preprocessing.from_dict(preprocessing).input_size
    batch = (
        device_settings.to_device(torch.randn(batch_size, 3, side, side)),
        torch.randint(0, 2, (batch_size,), device=device),
    )

    def run(steps: int) -> float:
        started = time.perf_counter()
        for _ in range(steps):  # one batch, repeated
            loops.train_step(model, criterion, optimizer, batch, device_settings, scaler)
        return time.perf_counter() - started

    run(settings.warmup_batches)
    return batch_size * settings.bound_steps / run(settings.bound_steps)


# ------------------------------------------------------------------------------ report


def _number(value: float) -> str:
    """Three significant figures, without thousands separators (the output is parsed)."""
    return f"{value:.0f}" if value >= 100 else f"{value:.3g}"


def print_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> None:
    """Prints a Markdown table."""
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header))
    for row in rows:
        print("| " + " | ".join(row) + " |")
    print(flush=True)


@dataclass(frozen=True)
class Results:
    """Everything the main measurement found."""

    tutorial_frozen: TutorialTiming
    tutorial_finetune: TutorialTiming
    frozen: FrozenCost
    finetune: FinetuneCost
    bound: float  # images/s

    @property
    def tutorial_epoch(self) -> float:
        """The tutorial's frozen epoch: train and val pass."""
        return self.tutorial_frozen.train.seconds + self.tutorial_frozen.val.seconds

    @property
    def tutorial_images_per_second(self) -> float:
        """The tutorial's fine-tuning: training images per second of its train pass."""
        return self.finetune.train_images / self.tutorial_finetune.train.seconds


def figures(results: Results) -> dict[str, tuple[float, str]]:
    """Every figure of the main measurement (keys of ``MEASURES``) and how it was obtained."""
    frozen, finetune = results.frozen, results.finetune
    tutorial_frozen = results.tutorial_frozen
    return {
        "tutorial frozen epoch": (
            results.tutorial_epoch,
            f"{describe_pass('train', tutorial_frozen.train)}; "
            f"{describe_pass('val', tutorial_frozen.val)}",
        ),
        "ours frozen first epoch": (
            frozen.first_epoch,
            f"decode {frozen.decode:.2f} s + embed_images {frozen.extraction:.2f} s "
            f"+ epoch 1 {frozen.epochs[0]:.3f} s",
        ),
        "ours frozen later epoch": (
            frozen.later_epoch,
            f"train_on_features history: mean of epochs 2–{len(frozen.epochs)}",
        ),
        "tutorial finetune training": (
            results.tutorial_images_per_second,
            describe_pass("train", results.tutorial_finetune.train),
        ),
        "ours finetune training": (
            finetune.images_per_second,
            f"train_step inside train_on_images, {len(finetune.train_passes)} "
            "epoch(s) with the backbone unfrozen",
        ),
        "ours finetune epoch": (
            finetune.epoch,
            "train_on_images history, epochs with the backbone unfrozen",
        ),
        "bound training": (results.bound, "train_step on one pre-made batch, after warm-up"),
    }


def print_measurements(results: Results) -> None:
    """The main table: one row per figure, in ``MEASURES`` order."""
    found = figures(results)
    rows = [
        [loop, variant, measure, _number(found[key][0]), unit, found[key][1]]
        for key, (loop, variant, measure, unit) in MEASURES.items()
    ]
    print_table(["loop", "variant", "measure", "value", "unit", "how"], rows)
    print(
        "Tutorial passes are extrapolated: the first batch and the warm-up batches are not "
        "timed, and a pass = start-up (iter() until the first batch arrives: the workers "
        "start) + batches × the mean time of the timed batches.\n"
    )


@dataclass(frozen=True)
class Check:
    """A ratio and its target."""

    name: str
    value: float
    target: float
    unit: str  # "×" or "%"

    def cells(self) -> list[str]:
        """The table cells: name, value, target, verdict."""
        scale = 100 if self.unit == "%" else 1
        verdict = "PASS" if self.value >= self.target else "FAIL"
        return [
            self.name,
            f"{_number(self.value * scale)} {self.unit}",
            f"≥ {_number(self.target * scale)} {self.unit}",
            verdict,
        ]


def checks(results: Results) -> list[Check]:
    """The speed-ups against the tutorial and the fraction of the bound, with targets."""
    epoch_ratio = results.tutorial_epoch / results.frozen.later_epoch
    ours = results.finetune.images_per_second
    return [
        Check("frozen epoch: tutorial / ours", epoch_ratio, TARGET_FROZEN_SPEEDUP, "×"),
        Check(
            "fine-tune training img/s: ours / tutorial",
            ours / results.tutorial_images_per_second,
            TARGET_FINETUNE_SPEEDUP,
            "×",
        ),
        Check(
            "fine-tune training img/s: ours / bound",
            ours / results.bound,
            TARGET_FRACTION_OF_BOUND,
            "%",
        ),
    ]


def print_scaling(costs: Mapping[int, tuple[FrozenCost, FinetuneCost]]) -> None:
    """Our costs against the number of training photos (validation: a quarter of them)."""
    print(
        "Scaling (ours; val photos = train // 4, at least 8; fine-tune epoch = train + val, "
        "backbone unfrozen):\n"
    )
    header = [
        "train images",
        "frozen first epoch incl. decode + extraction (s)",
        "frozen later epoch (s)",
        "fine-tune epoch (s)",
        "fine-tune training (img/s)",
    ]
    rows = [
        [
            str(n),
            _number(frozen.first_epoch),
            _number(frozen.later_epoch),
            _number(finetune.epoch),
            _number(finetune.images_per_second),
        ]
        for n, (frozen, finetune) in costs.items()
    ]
    print_table(header, rows)


# --------------------------------------------------------------------------- pipelines


def time_pipelines() -> dict[str, float]:
    """Times `kedro run` and the ablation in a throwaway copy of the project.

    The copy (conf/base, logging, pyproject, as the tests make it) gets the default demo
    data first; data, caches and the MLflow store stay in the copy.

    Returns:
        Seconds per command, the demo data's included.
    """
    sys.path.insert(0, str(REPO_ROOT))  # tests/ belongs to the checkout, not the install
    from tests.kedro_project import make_project

    env = {**os.environ, "KEDRO_DISABLE_TELEMETRY": "1"}
    for inherited in ("MLFLOW_TRACKING_URI", "KEDRO_ENV"):
        env.pop(inherited, None)
    kedro = [sys.executable, "-m", "kedro"]
    with tempfile.TemporaryDirectory(prefix="transfer-study-pipelines-") as scratch:
        project = make_project(Path(scratch) / "project")
        commands = {
            "kedro run --pipeline=demo_data": ["run", "--pipeline=demo_data"],
            "kedro run": ["run"],
            "kedro run --pipeline=data_size_ablation": ["run", "--pipeline=data_size_ablation"],
        }
        return {name: _timed(name, kedro + args, project, env) for name, args in commands.items()}


def print_pipelines(seconds: Mapping[str, float]) -> None:
    """Whole-pipeline wall times against their budgets."""
    rows = []
    for name, value in seconds.items():
        budget = PIPELINE_BUDGETS_SECONDS.get(name)
        verdict = "" if budget is None else ("PASS" if value <= budget else "FAIL")
        rows.append([name, _number(value), f"≤ {budget}" if budget else "", verdict])
    print("Whole pipelines (a throwaway copy of the project, default demo data):\n")
    print_table(["command", "seconds", "target (s)", "verdict"], rows)


# -------------------------------------------------------------------------------- main


def measure(
    data: StudyData, params: StudyParameters, preprocessing: dict[str, Any], settings: Settings
) -> Results:
    """The main measurement: both loops, both variants and the bound, on the same photos."""
    return Results(
        tutorial_frozen=measure_tutorial(data, params, settings, frozen=True),
        tutorial_finetune=measure_tutorial(data, params, settings, frozen=False),
        frozen=measure_ours_frozen(data, params, settings.epochs),
        finetune=measure_ours_finetune(data, params, settings.epochs),
        bound=measure_bound(params, preprocessing, settings),
    )


def measure_scaling(
    pool: Mapping[str, list[Path]],
    root: Path,
    params: StudyParameters,
    preprocessing: dict[str, Any],
    epochs: int,
) -> dict[int, tuple[FrozenCost, FinetuneCost]]:
    """Our frozen and fine-tune costs at each of ``SCALING_TRAIN_IMAGES``."""
    costs = {}
    for n in SCALING_TRAIN_IMAGES:
        data = study_data(lay_out(pool, root / f"n{n}", n, val_images(n)), preprocessing)
        costs[n] = (
            measure_ours_frozen(data, params, epochs),
            measure_ours_finetune(data, params, epochs),
        )
    return costs


def main() -> None:
    """Renders the photos, measures, and prints the tables."""
    settings = _parse_args()
    params = load_parameters()
    # The rendered photos' size, as `image_size: auto` resolves it for the demo photos.
    photo_sides = [params.demo_data.image_size]
    preprocessing = preprocessing_for(
        params.model.backbone, params.model.image_size, photo_sides
    ).to_dict()
    print("\n".join(machine_header(params, preprocessing, settings)) + "\n", flush=True)
    largest = max((settings.train_images, *(SCALING_TRAIN_IMAGES if settings.scaling else ())))
    with tempfile.TemporaryDirectory(prefix="transfer-study-speed-") as scratch:
        root = Path(scratch)
        pool = render_photo_pool(root, params.demo_data, largest, val_images(largest))
        main_layout = lay_out(pool, root / "main", settings.train_images, settings.val_images)
        results = measure(study_data(main_layout, preprocessing), params, preprocessing, settings)
        print_measurements(results)
        print_table(["ratio", "value", "target", "verdict"], [c.cells() for c in checks(results)])
        if settings.scaling:
            print_scaling(measure_scaling(pool, root, params, preprocessing, settings.epochs))
    if settings.pipelines:
        print_pipelines(time_pipelines())


if __name__ == "__main__":
    main()
