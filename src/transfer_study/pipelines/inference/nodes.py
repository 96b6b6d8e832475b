"""Nodes that pick a trained model and classify a folder of new photos with it."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import Any

import pandas as pd
from kedro.io.core import DatasetError

from transfer_study.config import InferenceSettings, ParameterError
from transfer_study.evaluation.diverged import is_diverged
from transfer_study.images import is_hidden_or_system_file
from transfer_study.inference.predictor import (
    HOW_TO_GET_A_CHECKPOINT,
    PREDICTION_COLUMNS,
    ImagePredictor,
    ImageSource,
    NotACheckpointError,
    check_checkpoint,
    log_outcome,
)

logger = logging.getLogger(__name__)

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
_HOW_TO_POINT_AT_PHOTOS = (
    "Point the pipeline at a folder of photos with "
    "`kedro run --pipeline=inference --params=inference.photos=/path/to/photos`."
)


def select_model(
    trained_models: Mapping[str, Callable[[], Any]] | None,
    comparison: pd.DataFrame | None,
    checkpoint_file: Callable[[], Any] | None,
    params: InferenceSettings,
) -> Mapping[str, Any]:
    """Picks the checkpoint that ``inference.model`` names.

    Args:
        trained_models: Lazy loaders of the study's checkpoints by variant; ``None`` when
            no model has been trained.
        comparison: The last variant comparison (columns ``variant``, ``accuracy`` and
            ``selected``); ``None`` when there is none.
        checkpoint_file: Loads the file that ``inference.model`` names; ``None`` when it
            names no existing file.
        params: The ``inference`` parameters. ``model`` is ``best`` (the variant the
            comparison chose on validation), a variant, or a checkpoint path.

    Returns:
        The checkpoint, as made by ``make_checkpoint``.

    Raises:
        ValueError: ``ParameterError`` if nothing has been trained for ``best`` or a
            variant or the variant is unknown, ``NotACheckpointError`` if the file is not a
            transfer-study checkpoint; the message says what to do.
    """
    choice = params.model
    models = dict(trained_models or {})
    if choice == MODEL_BEST:
        variant = _best_variant(models, comparison)
    elif choice in models:
        variant = choice
    elif checkpoint_file is not None:
        logger.info("Classifying with the checkpoint file '%s'", choice)
        return _load_checkpoint_file(checkpoint_file, choice)
    else:
        trained = ", ".join(sorted(models)) or "none yet"
        raise ParameterError(
            f"inference.model='{choice}' is neither '{MODEL_BEST}', a trained variant "
            f"({trained}) nor an existing checkpoint file; {_HOW_TO_NAME_A_MODEL} (a "
            "checkpoint path must be given with --params: the catalog reads it from there)."
        )
    logger.info("Classifying with variant '%s' (%s)", variant, _accuracy_note(variant, comparison))
    return check_checkpoint(models[variant](), source=f"The checkpoint of variant '{variant}'")


def classify_photos(
    photos: Mapping[str, Callable[[], bytes]] | None,
    checkpoint: Mapping[str, Any],
    params: InferenceSettings,
) -> pd.DataFrame:
    """Classifies every file of a photo folder with a trained model.

    Hidden and system files (``.DS_Store``, ``Thumbs.db``…) are ignored. Files that are
    not usable images (corrupt, truncated, not an image) are kept as ``skipped`` rows
    with the reason, and logged.

    Args:
        photos: Lazy loaders of each file's bytes by path relative to the folder; ``None``
            when the folder is missing or empty.
        checkpoint: The model, from ``select_model``.
        params: The ``inference`` parameters: ``photos`` (the folder, for messages),
            ``top_k``, ``batch_size``, ``device``.

    Returns:
        One row per file, sorted by path: ``path``, ``predicted``, ``probability``,
        ``top_k`` (a JSON object of the ``top_k`` most probable classes, most probable
        first), ``status`` (``ok`` or ``skipped``) and ``error`` (why it was skipped).

    Raises:
        ParameterError: (a ``ValueError``) If the folder holds no files.
    """
    files = sorted(path for path in (photos or {}) if not is_hidden_or_system_file(path))
    if not files:
        raise ParameterError(
            f"No photos to classify in '{params.photos}': the folder is missing, empty, "
            f"or holds only hidden and system files. {_HOW_TO_POINT_AT_PHOTOS}"
        )
    predictor = ImagePredictor.from_checkpoint(checkpoint, device=params.device)
    table = predictor.predict(
        [_reader(photos[path]) for path in files],
        batch_size=params.batch_size,
        top_k=params.top_k,
    )
    predictions = pd.concat(
        [pd.Series(files, name="path"), table[list(PREDICTION_COLUMNS)]], axis=1
    )
    log_outcome(predictions, params.photos)
    return predictions


def _best_variant(models: Mapping[str, Any], comparison: pd.DataFrame | None) -> str:
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


def _accuracy_note(variant: str, comparison: pd.DataFrame | None) -> str:
    if comparison is None or not set(comparison) >= _COMPARISON_COLUMNS:
        return "no comparison to quote"
    rows = comparison.loc[comparison["variant"] == variant]
    if rows.empty:
        return "not in the last comparison"
    if is_diverged(rows.iloc[0]):  # named explicitly: never chosen as the best
        logger.warning("Variant '%s' diverged: its model is an early checkpoint.", variant)
        return "diverged: no result to quote"
    return f"test accuracy {rows['accuracy'].iloc[0]:.3f}"


def _load_checkpoint_file(load: Callable[[], Any], path: str) -> Mapping[str, Any]:
    try:
        loaded = load()
    except DatasetError as error:
        raise NotACheckpointError(
            f"'{path}' cannot be loaded as a checkpoint ({error.__cause__ or error}). "
            f"{HOW_TO_GET_A_CHECKPOINT}"
        ) from error
    return check_checkpoint(loaded, source=f"'{path}'")


def _reader(load: Callable[[], bytes]) -> ImageSource:
    """Turns the dataset's load errors into ``OSError``, which skips the file."""

    def read() -> bytes:
        try:
            return load()
        except DatasetError as error:
            raise OSError(str(error.__cause__ or error)) from error

    return read
