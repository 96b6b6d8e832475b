"""Nodes that pick each ablation cell's training subset, summarise its result and
report the whole grid (with the library functions of ``transfer_study.evaluation``).

The subsets themselves are picked by ``transfer_study.photos.subsets``: nested (a smaller
cell's photos are a subset of a larger cell's, for one seed) and stratified by class.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from transfer_study.config import AblationSettings, ParameterError, TrainingSettings, with_overrides
from transfer_study.evaluation.figures import accuracy_heatmap_figure, learning_curve_figure
from transfer_study.evaluation.learning_curve import learning_curve_tables
from transfer_study.evaluation.markdown import recommendation_markdown
from transfer_study.evaluation.recommendation import recommend_data_budget
from transfer_study.photos.folds import warn_that_the_ablation_uses_the_first_fold
from transfer_study.photos.grouping import with_grouping_summary
from transfer_study.photos.subsets import (
    TRAIN_SPLIT,
    grid_signature,
    training_subset,
    validate_grid,
)


def select_training_subset(split: pd.DataFrame, cell: Mapping[str, Any]) -> pd.DataFrame:
    """Reduces the training split to one ablation cell's nested, stratified subset.

    Args:
        split: The split table (``path,label,sample_id,angle,split`` and any others).
        cell: ``n_samples`` (physical training samples, all classes together),
            ``n_angles`` (photos per sample), ``seed`` and optionally ``clamp``
            (default ``False``): use every sample, or every photo of a sample, when the
            cell asks for more than exist, with a warning, instead of failing.

    Returns:
        The split table with the same rows and columns (index reset); training photos
        outside the subset have ``split == "unused"``. Validation and test rows are
        unchanged.

    Raises:
        ValueError: If the cell is malformed or impossible (more samples than the
            training split has, a chosen sample with fewer photos than ``n_angles``
            without ``clamp``, or fewer samples than classes), with what exists per class.
    """
    return training_subset(split, cell)


def _plain(values: Iterable[Any]) -> list[Any]:
    """Python scalars for JSON (numpy integers and booleans are not serialisable)."""
    return [value.item() if isinstance(value, np.generic) else value for value in values]


def summarise_cell(
    cell: Mapping[str, Any],
    training_summary: Mapping[str, Any],
    test_metrics: Mapping[str, float],
    test_predictions: pd.DataFrame,
    subset: pd.DataFrame,
) -> dict[str, Any]:
    """One JSON-serialisable record of an ablation cell's result.

    Args:
        cell: The cell (``n_samples``, ``n_angles``, ``seed`` and optionally ``variant``).
        training_summary: The training node's summary (``variant``, ``train_seconds``).
        test_metrics: ``evaluate_on_test``' metrics.
        test_predictions: ``evaluate_on_test``' per-photo predictions.
        subset: The cell's split table (:func:`select_training_subset`).

    Returns:
        ``variant, n_samples, n_angles, seed`` (the grid coordinates), ``n_samples_used``
        and ``n_images`` (training samples and photos actually used), ``accuracy,
        accuracy_ci_low, accuracy_ci_high, balanced_accuracy``, ``macro_f1`` when
        present, ``train_seconds``, ``steps``, ``best_step``, ``lr``, ``converged``,
        ``diverged``, ``metric`` (the headline metric's name), ``val_metric`` (its best
        validation value), and per test photo ``sample_id``, ``label`` and ``correct``.

    Raises:
        ValueError: If the predictions are not of the subset's test photos.
    """
    test_paths = set(subset.loc[subset["split"] == "test", "path"])
    if set(test_predictions["path"]) != test_paths:
        raise ValueError("test_predictions are not of this cell's test photos.")
    train = subset[subset["split"] == TRAIN_SPLIT]
    record = {
        "variant": str(cell.get("variant", training_summary["variant"])),
        "n_samples": int(cell["n_samples"]),
        "n_angles": int(cell["n_angles"]),
        "seed": int(cell["seed"]),
        "n_samples_used": int(train["sample_id"].nunique()),
        "n_images": len(train),
    }
    metric_keys = ["accuracy", "accuracy_ci_low", "accuracy_ci_high", "balanced_accuracy"]
    record.update({key: float(test_metrics[key]) for key in metric_keys})
    if "macro_f1" in test_metrics:
        record["macro_f1"] = float(test_metrics["macro_f1"])
    record["train_seconds"] = float(training_summary["train_seconds"])
    # Cells train under the study's convergence rule: say how long and whether it held.
    record |= {key: training_summary[key] for key in ("steps", "best_step", "lr")}
    record["converged"] = bool(training_summary["converged"])
    record["diverged"] = bool(training_summary.get("diverged", False))
    # The report chooses the variant on validation (as the study does), never on test.
    record["metric"] = str(training_summary["metric"])
    record["val_metric"] = float(training_summary["best_val_metric"])
    correct = test_predictions["label"] == test_predictions["predicted"]
    record["sample_id"] = _plain(test_predictions["sample_id"])
    record["label"] = _plain(test_predictions["label"])  # balanced accuracy needs the classes
    record["correct"] = [bool(value) for value in correct]
    return record


def check_ablation_grid(
    split: pd.DataFrame, params: AblationSettings, pipeline_grid: AblationSettings
) -> pd.DataFrame:
    """Fails before any training if the grid is impossible or not the pipeline's grid.

    Args:
        split: The study's split table.
        params: ``data_size_ablation`` parameters of this run.
        pipeline_grid: The grid the pipeline's cells were built from (read from the
            configuration files when the pipeline was created).

    Returns:
        ``split``, unchanged: the cells read it from here, so they run after the check
        (with folds, the first fold's split: the log says so).

    Raises:
        ValueError: ``ParameterError`` if the run's parameters describe other cells than
            the pipeline has, ``SplitError`` if a cell asks for more than the split holds.
    """
    if grid_signature(params) != grid_signature(pipeline_grid):
        raise ParameterError(
            "The data-size ablation grid of this run's parameters differs from the grid "
            "its pipeline was built from. Kedro builds pipelines before it reads --params "
            "and --env, so change the grid in conf/<env>/parameters_data_size_ablation.yml "
            "and choose an environment with KEDRO_ENV=<env> (e.g. "
            "'KEDRO_ENV=full kedro run --pipeline=data_size_ablation')."
        )
    validate_grid(split, params)
    warn_that_the_ablation_uses_the_first_fold(split)
    return split


def cell_training_parameters(
    settings: TrainingSettings, ablation: AblationSettings, *, cell: Mapping[str, Any]
) -> TrainingSettings:
    """A cell's training settings: its variant's settings, the ablation's overrides for
    that variant, and the cell's seed (which also seeds the subset, so seeds repeat both).

    Args:
        settings: The variant's resolved settings.
        ablation: ``data_size_ablation`` parameters (``training_overrides``).
        cell: The cell (``seed``).

    Returns:
        The cell's settings.
    """
    overrides = ablation.training_overrides.get(settings.name)
    # One training per cell: the grid's seeds are the cell's repeats.
    return with_overrides(settings, overrides, seed=cell["seed"], seeds=1)


def report_ablation(
    params: AblationSettings, grouping: dict[str, Any], *records: Mapping[str, Any]
) -> tuple[pd.DataFrame, pd.DataFrame, dict[str, Any], str, Figure, Figure]:
    """Everything the ablation reports, from every cell's record.

    Args:
        params: ``data_size_ablation`` parameters; its ``report`` block holds
            ``tolerance``, ``confidence``, ``bootstrap_resamples``, ``bootstrap_seed``
            and ``extrapolate_to``.
        grouping: How the photos were grouped into samples (``grouping.json``); the
            report states it at its top.
        *records: One ``summarise_cell`` record per cell.

    Returns:
        The per-seed table, the learning curve, the recommendation, its Markdown report,
        the learning-curve figure and the samples × angles heatmap.
    """
    report = params.report
    bootstrap = {"n_resamples": report.bootstrap_resamples, "seed": report.bootstrap_seed}
    bootstrap["confidence"] = report.confidence
    per_seed, curve = learning_curve_tables(records, **bootstrap)
    recommendation = recommend_data_budget(
        records, tolerance=report.tolerance, extrapolate_to=report.extrapolate_to, **bootstrap
    )
    return (
        per_seed,
        curve,
        recommendation,
        with_grouping_summary(recommendation_markdown(recommendation, curve), grouping),
        learning_curve_figure(curve),
        accuracy_heatmap_figure(curve),
    )
