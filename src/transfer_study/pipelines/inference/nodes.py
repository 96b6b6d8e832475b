"""Nodes that pick a trained model and classify a folder of new photos with it."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import Any

import pandas as pd
from kedro.io.core import DatasetError

from transfer_study.config import InferenceSettings, ParameterError
from transfer_study.images import is_hidden_or_system_file
from transfer_study.inference.model_choice import (
    MODEL_BEST,
    accuracy_note,
    best_variant,
    is_mlflow_model_uri,
    unknown_model,
)
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
            comparison chose on validation), a variant, a checkpoint path, or an MLflow
            model URI (``models:/<name>@champion``).

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
        variant = best_variant(models, comparison)
    elif choice in models:
        variant = choice
    elif checkpoint_file is not None:
        kind = "MLflow model" if is_mlflow_model_uri(choice) else "checkpoint file"
        logger.info("Classifying with the %s '%s'", kind, choice)
        return _load_checkpoint_file(checkpoint_file, choice)
    else:
        raise unknown_model(choice, models)
    logger.info("Classifying with variant '%s' (%s)", variant, accuracy_note(variant, comparison))
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
            ``top_k``, ``batch_size``, ``device``, ``tta``.

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
        tta=params.tta,
    )
    predictions = pd.concat(
        [pd.Series(files, name="path"), table[list(PREDICTION_COLUMNS)]], axis=1
    )
    log_outcome(predictions, params.photos)
    return predictions


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
