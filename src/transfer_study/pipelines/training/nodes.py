"""The study's own nodes: how long it will take, and, with cross-validation, each fold's
split and the pooling of the folds into one result per variant."""

from __future__ import annotations

import logging
from typing import Any

import pandas as pd
from matplotlib.figure import Figure

from transfer_study.config import (
    EvaluationSettings,
    ModelSettings,
    SplitSettings,
    StudySettings,
    TrainingSettings,
)
from transfer_study.evaluation.figures import confusion_matrix_figure
from transfer_study.evaluation.folds import (
    best_fold,
    pool_predictions,
    pool_summaries,
    pooled_metrics,
)
from transfer_study.models.preprocessing import Preprocessing
from transfer_study.photos.folds import fold_split
from transfer_study.photos.near_copies import combine_fold_checks
from transfer_study.pipelines.configured import refuse_changed_folds, refuse_changed_variants
from transfer_study.training.device import pick_device
from transfer_study.training.timing import (
    VALIDATION_COST,
    advice,
    estimate_image_variant,
    study_time_estimate,
    training_images_per_second,
)

logger = logging.getLogger(__name__)


def estimate_study_time(
    split: pd.DataFrame,
    preprocessing: dict[str, Any],
    model: ModelSettings,
    study: StudySettings,
    *variant_settings: TrainingSettings,
    folds: int = 1,
    pipeline_variants: tuple[str, ...] = (),
) -> dict[str, Any]:
    """Times a few training steps and logs the study's expected duration on this machine.

    Args:
        split: The split table (photos per split; the first fold's with folds).
        preprocessing: ``resolve_preprocessing``' output (the input size).
        model: ``params:model``.
        study: ``params:study``; its variants must be those the pipeline was built with.
        *variant_settings: Each variant's resolved settings.
        folds: Cross-validation folds (bound by the pipeline): each is a whole study.
        pipeline_variants: The variants the pipeline was built with (bound by it).

    Returns:
        The estimate: speed, per-variant and total expected and worst-case seconds, and
        advice when the study is expected to take over 30 minutes.

    Raises:
        ParameterError: If ``study.variants`` was changed only for this run.
    """
    refuse_changed_variants(pipeline_variants, study.variants)
    size = Preprocessing.from_dict(preprocessing).input_size
    counts = split["split"].value_counts()
    n_train, n_val = int(counts.get("train", 0)), int(counts.get("val", 0))
    classes = split["label"].nunique()
    end_to_end = [s for s in variant_settings if s.name not in ("frozen", "finetune_top")]
    reference = end_to_end[0] if end_to_end else variant_settings[0]
    speed = training_images_per_second(model, size, reference, classes)
    variants = {s.name: estimate_image_variant(s, speed, n_train, n_val) for s in end_to_end}
    embedding = round(len(split) * VALIDATION_COST / speed)  # one forward pass per photo
    for partial in (s for s in variant_settings if s.name == "finetune_top"):
        # Its cache: a forward pass per photo and view; then steps of the later stages.
        top_speed = training_images_per_second(model, size, partial, classes)
        estimate = estimate_image_variant(partial, top_speed, n_train, n_val)
        cache = round(embedding * (1 + partial.augmented_views))
        variants[partial.name] = {
            key: value + cache if key.endswith("_seconds") else value
            for key, value in estimate.items()
        }
    variants |= {
        s.name: {"variant": s.name, "expected_seconds": embedding, "cap_seconds": embedding}
        for s in variant_settings
        if s.name == "frozen"
    }
    totals = study_time_estimate(variants)
    totals = {key: value * folds for key, value in totals.items()}
    hint = advice(totals["expected_seconds"], size, pick_device(reference.device).type != "cpu")
    logger.info(
        "Expected study time on this machine: about %.0f min (training at %.0f img/s at "
        "%d px, %d training photos%s); up to %.0f min if every variant runs to its cap.%s",
        totals["expected_seconds"] / 60,
        speed,
        size,
        n_train,
        f", {folds} folds" if folds > 1 else "",
        totals["cap_seconds"] / 60,
        f" {hint}" if hint else "",
    )
    return {
        "images_per_second": round(speed, 1),
        "input_size": size,
        "n_train": n_train,
        "folds": folds,
        **totals,
        "variants": variants,
        "advice": hint,
    }


# ---------------------------------------------------------------- cross-validation
def select_fold_split(
    split: pd.DataFrame, params: SplitSettings, fold: int, pipeline_folds: int
) -> pd.DataFrame:
    """One fold's train/val/test roles (``photos.folds.fold_split``).

    Args:
        split: The study's split, with the ``fold`` each photo is tested in.
        params: ``params:split`` (``val_fraction``, ``seed``).
        fold: The fold (bound by the pipeline).
        pipeline_folds: The number of folds the pipeline was built with.

    Returns:
        The split table with this fold's roles.
    """
    refuse_changed_folds(pipeline_folds, params.folds)
    roles = fold_split(split, fold, val_fraction=params.val_fraction, seed=params.seed)
    return roles


def combine_fold_groupings(*groupings: dict[str, Any]) -> dict[str, Any]:
    """The grouping record of the whole set: the folds' near-copy checks added up."""
    return combine_fold_checks(groupings)


def pool_variant_folds(
    settings: EvaluationSettings, *fold_results: Any
) -> tuple[pd.DataFrame, dict[str, float], dict[str, Any], dict[str, Any], Figure]:
    """One variant's cross-validated result: its folds' test predictions pooled.

    Args:
        settings: ``params:evaluation``: the interval's confidence and resamples.
        *fold_results: For each fold, in order: the variant's test predictions, training
            summary and kept model.

    Returns:
        The pooled predictions (with each photo's ``fold``), the metrics over every
        sample (the cluster-bootstrap interval over samples), the pooled training summary
        (``evaluation.folds.pool_summaries``), the model of the fold that validated best
        (kept for inference) and the pooled confusion matrix.
    """
    predictions, summaries, models = (list(fold_results[i::3]) for i in range(3))
    pooled = pool_predictions(predictions)
    metrics = pooled_metrics(
        pooled,
        confidence=settings.confidence,
        n_resamples=settings.bootstrap_resamples,
        seed=settings.bootstrap_seed,
        top_k=settings.top_k,
    )
    # The pooled figures use each fold's kept seed: the interval covers test samples only.
    metrics["n_seeds"] = 1.0
    summary = pool_summaries(summaries)
    kept = best_fold(summaries)
    summary["kept_fold"] = kept
    class_names = list(models[0]["metadata"]["class_names"])
    index = {name: i for i, name in enumerate(class_names)}
    figure = confusion_matrix_figure(
        pooled["label"].map(index).to_numpy(),
        pooled["predicted"].map(index).to_numpy(),
        class_names,
        title=(
            f"{summary['variant']}: {summary['folds']}-fold cross-validated test accuracy "
            f"{metrics['accuracy']:.1%}"
        ),
    )
    logger.info(
        "%s: %d-fold cross-validated test accuracy %.3f [%.3f, %.3f] over %d photos; "
        "fold %d validated best and is kept for inference.",
        summary["variant"],
        summary["folds"],
        metrics["accuracy"],
        metrics["accuracy_ci_low"],
        metrics["accuracy_ci_high"],
        len(pooled),
        kept,
    )
    return pooled, metrics, summary, models[kept], figure
