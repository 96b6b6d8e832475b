"""Training a variant: choosing its learning rate by a range test, then training it to
convergence end to end on cached images (scratch and fine-tune) or only its head on cached
backbone features (frozen). Each training returns the checkpoint, the history (one row per
validation) and a training summary."""

from __future__ import annotations

import copy
import logging
import time
from collections.abc import Callable, Mapping
from typing import Any

import pandas as pd
import torch

from transfer_study.config import ModelSettings, TrainingSettings, with_overrides
from transfer_study.models.checkpoint import make_checkpoint
from transfer_study.models.factory import count_parameters, set_backbone_trainable
from transfer_study.models.preprocessing import Preprocessing
from transfer_study.training.fitting import Budget, FitResult, fit
from transfer_study.training.lr_finder import candidate_lrs, lr_range_test, search_on_validation
from transfer_study.training.optim import create_scheduler
from transfer_study.training.progressive import fit_in_stages
from transfer_study.training.setup import TrainingSetup, feature_setup, head_spec, image_setup
from transfer_study.training.summary import training_summary

logger = logging.getLogger(__name__)

Cache = Mapping[str, Callable[[], dict]]
LR_FROM_RANGE_TEST = "range test"
LR_FROM_VALIDATION = "validation"
LR_GIVEN = "given"
HeadState = dict[str, torch.Tensor]


def _budget(settings: TrainingSettings) -> Budget:
    return Budget.from_images(
        max_images=settings.max_images,
        batch_size=settings.batch_size,
        min_steps=settings.min_steps,
        val_every_steps=settings.val_every_steps,
        patience=settings.patience,
    )


def _train(
    setup: TrainingSetup,
    split: pd.DataFrame,
    preprocessing: Preprocessing,
    model: ModelSettings,
    settings: TrainingSettings,
    *,
    validate_start: bool = False,
) -> tuple[dict[str, Any], pd.DataFrame, dict[str, Any]]:
    """Trains ``setup`` to convergence; returns the checkpoint, history and summary.

    ``validate_start``: the starting weights (a probed head) are a candidate too.
    """
    if settings.lr == "auto":
        raise ValueError(f"Variant '{settings.name}': choose the learning rate before training.")
    if len(setup.train_loader) == 0:
        raise ValueError(f"Variant '{settings.name}': the split has no training photos.")
    _log_parameter_counts(setup, settings)
    if len(setup.input_sizes) > 1 and setup.resize is not None:
        result = fit_in_stages(
            setup.input_sizes,
            setup.resize,
            lambda validate, last: _fit(
                setup, settings if last else _handing_over(settings), validate_start=validate
            ),
            validate_start=validate_start,
            variant=settings.name,
        )
    else:
        result = _fit(setup, settings, validate_start=validate_start)
    if setup.backbone is not None:
        set_backbone_trainable(setup.classifier, True)
    summary = training_summary(setup, result, _budget(settings), split, settings, model)
    checkpoint = make_checkpoint(
        setup.classifier.cpu(),
        backbone=model.backbone,
        weights=settings.weights,
        head=head_spec(settings),
        class_names=setup.class_names,
        preprocessing=preprocessing,
        extra={k: v for k, v in summary.items() if k != "parameters"},
    )
    return checkpoint, result.history, summary


def _handing_over(settings: TrainingSettings) -> TrainingSettings:
    """A smaller side's settings under progressive resizing: its own patience."""
    return with_overrides(settings, patience=settings.progressive_patience or settings.patience)


def _fit(
    setup: TrainingSetup, settings: TrainingSettings, *, validate_start: bool = False
) -> FitResult:
    """Trains ``setup`` with ``settings`` (a numeric ``lr``) under the budget."""
    budget = _budget(settings)
    optimizer = setup.optimizer(settings, settings.lr)
    schedule = create_scheduler(
        optimizer,
        settings.scheduler,
        max_steps=budget.max_steps,
        step_size=settings.step_size,
        gamma=settings.gamma,
        plateau_patience=settings.plateau_patience,
    )
    return fit(
        setup.module,
        criterion=setup.criterion,
        optimizer=optimizer,
        train_loader=setup.train_loader,
        val_loader=setup.val_loader,
        settings=setup.device,
        budget=budget,
        metric=setup.metric,
        schedule=schedule,
        backbone=setup.backbone,
        warmup_steps=settings.head_warmup_steps,
        lr_warmup_steps=settings.lr_warmup_steps,
        validate_start=validate_start,
        fixed_batchnorm=settings.batchnorm == "fixed",
        variant=settings.name,
        on_epoch_start=setup.on_epoch_start,
    )


def _log_parameter_counts(setup: TrainingSetup, settings: TrainingSettings) -> None:
    trainable, total = count_parameters(setup.classifier)
    logger.info(
        "%s: %s of %s parameters are trainable; lr %.3g; metric %s.",
        settings.name,
        f"{trainable:,}",
        f"{total:,}",
        settings.lr,
        setup.metric.replace("_", " "),
    )


def _choose_lr(setup: TrainingSetup, settings: TrainingSettings) -> tuple[dict, pd.DataFrame]:
    """The learning rate to train with: the given one, or as ``lr_search`` says."""
    record: dict[str, Any] = {"variant": settings.name}
    if settings.lr != "auto":
        return {**record, "lr": settings.lr, "source": LR_GIVEN}, pd.DataFrame(
            columns=["lr", "loss", "smoothed_loss"]
        )
    search = settings.lr_search
    started = time.perf_counter()
    if search.resolved_method(on_cached_features=setup.backbone is None) == "candidates":
        lr, curve = _search_on_validation(setup, settings)
        record |= {"lr": lr, "source": LR_FROM_VALIDATION, "candidates": len(curve)}
    else:
        result = lr_range_test(
            setup.module,
            criterion=setup.criterion,
            optimizer=setup.optimizer(settings, search.min_lr),
            train_loader=setup.train_loader,
            settings=setup.device,
            min_lr=search.min_lr,
            max_lr=search.max_lr,
            steps=search.steps,
        )
        curve = result.history
        record |= {
            "lr": result.suggested_lr,
            "source": LR_FROM_RANGE_TEST,
            "lr_at_minimum": result.lr_at_minimum,
            "diverged": result.diverged,
            "steps_run": len(result.history),
        }
    record |= {"seconds": round(time.perf_counter() - started, 2), **search.model_dump()}
    logger.info("%s: lr %.3g chosen by %s.", settings.name, record["lr"], record["source"])
    return record, curve


def _search_on_validation(
    setup: TrainingSetup, settings: TrainingSettings
) -> tuple[float, pd.DataFrame]:
    """Trains each candidate from the same start (to convergence, or for
    ``candidate_steps`` steps) and keeps the lowest validation loss."""
    search = settings.lr_search
    initial = copy.deepcopy(setup.module.state_dict())
    budget: dict[str, Any] = {}
    if search.candidate_steps is not None:  # short: a fixed number of steps, no early stop
        steps = search.candidate_steps
        budget = {"max_images": steps * settings.batch_size, "min_steps": steps}
        budget |= {"patience": None, "val_every_steps": min(settings.val_every_steps, steps)}

    def train_with(lr: float) -> FitResult:
        setup.module.load_state_dict(initial)
        return _fit(setup, with_overrides(settings, lr=lr, **budget))

    candidates = candidate_lrs(search.min_lr, search.max_lr, search.per_decade)
    fitting_log = logging.getLogger(fit.__module__)
    level = fitting_log.level
    fitting_log.setLevel(logging.WARNING)  # one line per validation per candidate is noise
    try:
        lr, table = search_on_validation(train_with, candidates)
    finally:
        fitting_log.setLevel(level)
    setup.module.load_state_dict(initial)
    return lr, table


def probe_head(
    backbone_features: Cache,
    split: pd.DataFrame,
    preprocessing: Preprocessing,
    model: ModelSettings,
    settings: TrainingSettings,
    probe_settings: TrainingSettings,
) -> HeadState | None:
    """The head ``settings`` (fine-tune) starts from: ``None`` for ``head_init: random``;
    for ``probe``, a head of the same shape trained to convergence on the cached backbone
    features with ``probe_settings`` (the frozen variant's, with a numeric ``lr``).

    Linear probing before fine-tuning (Kumar et al. 2022, "Fine-Tuning can Distort
    Pretrained Features"): a random head's large gradients otherwise reach the backbone
    first and move it away from what it knows.

    Raises:
        ValueError: If the probe's backbone weights differ from the fine-tune's (the cached
            features would not be the fine-tune's backbone's).
    """
    if settings.head_init == "random":
        return None
    if probe_settings.weights != settings.weights:
        raise ValueError(
            f"Variant '{settings.name}' (head_init: probe) starts from a head trained on the "
            f"features of weights '{probe_settings.weights}', but trains weights "
            f"'{settings.weights}': give both variants the same weights, or set "
            f"{settings.name}.head_init: random."
        )
    probe = with_overrides(
        probe_settings, head=settings.head.model_dump(), seed=settings.seed, seeds=1
    )
    setup = feature_setup(backbone_features, split, preprocessing, model, probe)
    result = _fit(setup, probe)
    best = result.best
    logger.info(
        "%s: head probed on cached features for %d steps (validation %s %.3f).",
        settings.name,
        int(result.history["step"].iloc[-1]),
        setup.metric.replace("_", " "),
        float(best["val_metric"]),
    )
    return {k: v.detach().cpu().clone() for k, v in setup.classifier.head.state_dict().items()}


def with_head(setup: TrainingSetup, head: HeadState | None) -> TrainingSetup:
    """``setup`` starting from ``head`` (a probed head), or as built when ``None``."""
    if head is not None:
        setup.classifier.head.load_state_dict(head)
    return setup


def choose_lr_on_images(
    decoded_images: Cache,
    split: pd.DataFrame,
    preprocessing: Preprocessing,
    model: ModelSettings,
    settings: TrainingSettings,
    head: HeadState | None = None,
) -> tuple[dict[str, Any], pd.DataFrame]:
    """The learning rate of scratch or fine-tune (``lr: auto``: a range test), from the
    model training will start from (with ``head``, the probed head, when given).

    Returns:
        The choice (``lr``, ``source`` and the test's figures) and the test's curve.
    """
    setup = with_head(image_setup(decoded_images, split, preprocessing, model, settings), head)
    return _choose_lr(setup, settings)


def choose_lr_on_features(
    backbone_features: Cache,
    split: pd.DataFrame,
    preprocessing: Preprocessing,
    model: ModelSettings,
    settings: TrainingSettings,
) -> tuple[dict[str, Any], pd.DataFrame]:
    """The learning rate of the frozen variant's head, on the cached features."""
    setup = feature_setup(backbone_features, split, preprocessing, model, settings)
    return _choose_lr(setup, settings)


def train_on_images(
    decoded_images: Cache,
    split: pd.DataFrame,
    preprocessing: Preprocessing,
    model: ModelSettings,
    settings: TrainingSettings,
    head: HeadState | None = None,
) -> tuple[dict[str, Any], pd.DataFrame, dict[str, Any]]:
    """Trains a variant end to end on cached images (scratch and fine-tune).

    Args:
        decoded_images: The decoded-image cache.
        split: The split table.
        preprocessing: Input size and normalisation.
        model: The ``model`` parameters (``backbone``).
        settings: The variant's settings, with a numeric ``lr``.
        head: The head to start from (``probe_head``); ``None``: a random one.

    Returns:
        The checkpoint, the history (one row per validation) and a training summary.
    """
    setup = with_head(image_setup(decoded_images, split, preprocessing, model, settings), head)
    # A probed start is a candidate: training that never beats it on validation keeps it.
    return _train(setup, split, preprocessing, model, settings, validate_start=head is not None)


def train_on_features(
    backbone_features: Cache,
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
        settings: The frozen variant's settings, with a numeric ``lr``.

    Returns:
        The checkpoint (backbone + trained head), the history and a training summary.
    """
    setup = feature_setup(backbone_features, split, preprocessing, model, settings)
    return _train(setup, split, preprocessing, model, settings)
