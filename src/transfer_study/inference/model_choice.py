"""Which trained model ``inference.model`` means: the messages and checks behind the
inference pipeline's ``select_model`` node."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import mlflow
import pandas as pd

from transfer_study.config import ParameterError
from transfer_study.evaluation.diverged import is_diverged

logger = logging.getLogger(__name__)

# inference.model values that name an MLflow model (datasets.CheckpointDataset loads them).
MLFLOW_MODEL_SCHEMES = ("models:/", "runs:/")


def is_mlflow_model_uri(filepath: str) -> bool:
    """Whether ``filepath`` names an MLflow model rather than a file."""
    return filepath.startswith(MLFLOW_MODEL_SCHEMES)


MODEL_BEST = "best"
_COMPARISON_COLUMNS = {"variant", "accuracy", "selected"}
_HOW_TO_TRAIN = (
    "train the variants first with `kedro run` (for the demo photos, run "
    "`kedro run --pipeline=demo_data` before it)"
)
_HOW_TO_NAME_A_MODEL = (
    "name one with `kedro run --pipeline=inference --params=inference.model=<variant or "
    "path/to/model.pt>`"
)


def unknown_model(choice: str, models: Mapping[str, Any]) -> ParameterError:
    """The error for an ``inference.model`` that names nothing loadable."""
    if is_mlflow_model_uri(choice):
        return ParameterError(
            f"inference.model='{choice}' names no model in the MLflow store at "
            f"{mlflow.get_tracking_uri()}: check the name and alias (the MLflow UI's Models "
            "tab lists them), or register one with `kedro run` (registry.enabled: true); "
            "set MLFLOW_TRACKING_URI if the registry lives elsewhere."
        )
    return ParameterError(
        f"inference.model='{choice}' is neither '{MODEL_BEST}', a trained variant "
        f"({', '.join(sorted(models)) or 'none yet'}) nor an existing checkpoint file; "
        f"{_HOW_TO_NAME_A_MODEL} (a checkpoint path must be given with --params: the "
        "catalog reads it from there)."
    )


def best_variant(models: Mapping[str, Any], comparison: pd.DataFrame | None) -> str:
    """The variant the last comparison chose on validation, if it has a trained model."""
    if not models:
        raise ParameterError(
            f"No trained model to pick the best of: {_HOW_TO_TRAIN}, or {_HOW_TO_NAME_A_MODEL}."
        )
    if comparison is None or comparison.empty or not set(comparison) >= _COMPARISON_COLUMNS:
        raise ParameterError(
            "No variant comparison to pick the best model from: run the whole study with "
            f"`kedro run`, or {_HOW_TO_NAME_A_MODEL} (trained: {', '.join(sorted(models))})."
        )
    chosen = comparison.loc[comparison["selected"].astype(bool), "variant"]  # on validation
    if chosen.empty:
        raise ParameterError(
            "The last comparison chose no variant: none converged within its training cap "
            "without diverging (variant_comparison.md says which did what). Raise max_images "
            f"or lower the lr and re-run the study, or {_HOW_TO_NAME_A_MODEL}."
        )
    variant = str(chosen.iloc[0])
    if variant not in models:
        raise ParameterError(
            f"The last comparison's best variant '{variant}' has no trained model (trained: "
            f"{', '.join(sorted(models))}): re-run the study with `kedro run`, or "
            f"{_HOW_TO_NAME_A_MODEL}."
        )
    return variant


def accuracy_note(variant: str, comparison: pd.DataFrame | None) -> str:
    """What the log says of the variant's test result."""
    if comparison is None or not set(comparison) >= _COMPARISON_COLUMNS:
        return "no comparison to quote"
    rows = comparison.loc[comparison["variant"] == variant]
    if rows.empty:
        return "not in the last comparison"
    if is_diverged(rows.iloc[0]):  # named explicitly: never chosen as the best
        logger.warning("Variant '%s' diverged: its model is an early checkpoint.", variant)
        return "diverged: no result to quote"
    return f"test accuracy {rows['accuracy'].iloc[0]:.3f}"
