"""A trained checkpoint as a self-contained MLflow pyfunc model.

``image_classifier_model_kwargs`` gives everything ``mlflow.pyfunc.save_model`` or
``log_model`` needs: the model class, the checkpoint as an artifact, a signature, an
input example, pinned requirements, and this package's source as ``code_paths``, so the
model loads and serves where transfer_study is not installed. It predicts through
``ImagePredictor``, like the inference pipeline, so both give the same answers.

Input: a DataFrame with an ``image`` column (the encoded bytes of an image file, or in
process also a file path), a ``path`` column (a file path, ``str`` or ``os.PathLike``), or
both with exactly one of them given in each row (``None``, NaN, ``""`` and ``b""`` count as
not given); without either column, a DataFrame's single column, a Series or a list, whose
values are paths or bytes. Over REST (``mlflow models serve``), MLflow base64-decodes every
value of the binary ``image`` column, so send base64-encoded bytes there, and server-side
file paths in ``path``; a request with both columns puts ``""`` (not ``null``, which MLflow
cannot decode) in ``image`` on the rows that give a path. Output: see
``ImagePredictor.predict``.
"""

from __future__ import annotations

import importlib.metadata
import io
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import mlflow.pyfunc
import numpy as np
import pandas as pd
import torch
from mlflow.exceptions import MlflowException
from mlflow.models import ModelSignature
from mlflow.protos.databricks_pb2 import INVALID_PARAMETER_VALUE
from mlflow.types import ColSpec, DataType, Schema
from PIL import Image

import transfer_study
from transfer_study.models.tta import TTA_NONE
from transfer_study.training.device import DEVICE_AUTO

from .predictor import (
    PREDICTION_COLUMNS,
    PROBABILITY_PREFIX,
    ImagePredictor,
    ImageSource,
    check_checkpoint,
)

CHECKPOINT_ARTIFACT = "checkpoint"
IMAGE_COLUMN = "image"
PATH_COLUMN = "path"
DEFAULT_BATCH_SIZE = 32
# What the model imports, directly or through transfer_study's modules it loads. mlflow
# itself is added by MLflow.
REQUIRED_DISTRIBUTIONS = (
    "torch",
    "torchvision",
    "timm",
    "pillow",
    "numpy",
    "pandas",
    "cloudpickle",
)
_EXAMPLE_FORMAT = "PNG"
_STRING_COLUMNS = {"predicted", "top_k", "status", "error"}


class ImageInputError(MlflowException, ValueError):
    """An input the model cannot take: a ``ValueError`` in process, an HTTP 400 when served.

    As an ``MlflowException``, its message reaches a REST client in the answer's
    ``message`` (the scoring server replaces any other exception's message with a generic
    one and buries it in ``stack_trace``).
    """

    def __init__(self, message: str) -> None:
        super().__init__(message, error_code=INVALID_PARAMETER_VALUE)


class ImageClassifierModel(mlflow.pyfunc.PythonModel):
    """Classifies image files with a transfer-study checkpoint.

    ``model_config`` (at save or load time): ``device`` (``auto``, ``cpu``, ``cuda``,
    ``mps``), ``batch_size``, ``top_k`` (``None`` = every class), ``tta`` (``none``,
    ``flip``, ``flip+crops``: test-time augmentation, see ``models.tta``).
    """

    def load_context(self, context: mlflow.pyfunc.PythonModelContext) -> None:
        """Loads the checkpoint artifact (``weights_only``) and rebuilds the classifier."""
        path = context.artifacts[CHECKPOINT_ARTIFACT]
        config = _model_config(context.model_config)
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
        self._predictor = ImagePredictor.from_checkpoint(
            checkpoint, device=config["device"], source=f"The model artifact {path}"
        )
        self._batch_size = int(config["batch_size"])
        self._top_k = config["top_k"]
        self._tta = config["tta"]

    def predict(
        self,
        context: mlflow.pyfunc.PythonModelContext,
        model_input: pd.DataFrame,
        params: dict[str, Any] | None = None,
    ) -> pd.DataFrame:
        """Classifies a batch of images given as file paths or encoded bytes.

        Args:
            context: MLflow's model context (unused; everything was loaded before).
            model_input: A DataFrame with an ``image`` column (bytes or paths), a ``path``
                column (paths), or both with one value per row (or a single column), a
                Series, a list, or one path or bytes value.
            params: Unused.

        Returns:
            One row per image; see ``ImagePredictor.predict``.

        Raises:
            ImageInputError: (a ``ValueError``) For a DataFrame with neither an
                ``image`` nor a ``path`` column
                and with several columns, a row that gives neither or both, a ``path``
                that is not a path, or a value that is neither a path nor bytes.
        """
        sources = [_image_source(value, row) for row, value in enumerate(_values(model_input))]
        return self._predictor.predict(
            sources, batch_size=self._batch_size, top_k=self._top_k, tta=self._tta
        )


def image_classifier_model_kwargs(
    checkpoint_file: Path,
    example_image: bytes | None = None,
    *,
    device: str = DEVICE_AUTO,
    batch_size: int = DEFAULT_BATCH_SIZE,
    top_k: int | None = None,
    tta: str = TTA_NONE,
) -> dict[str, Any]:
    """Keyword arguments for ``mlflow.pyfunc.log_model`` or ``save_model`` of a checkpoint.

    Use as ``mlflow.pyfunc.log_model(name="model", **kwargs)`` or
    ``mlflow.pyfunc.save_model(path=..., **kwargs)``.

    Args:
        checkpoint_file: A ``model.pt`` saved by ``TorchDataset`` (``make_checkpoint``).
        example_image: Encoded bytes of an image for the input example; a black image at
            the model's input size when ``None``.
        device: Default ``model_config`` device.
        batch_size: Default ``model_config`` batch size.
        top_k: Default ``model_config`` number of classes in the ``top_k`` column.
        tta: Default ``model_config`` test-time augmentation.

    Returns:
        ``python_model``, ``artifacts``, ``signature``, ``input_example``,
        ``pip_requirements`` (pinned to the installed versions), ``code_paths`` (this
        package's directory), ``model_config`` and ``metadata``.

    Raises:
        NotACheckpointError: If the file is not a transfer-study checkpoint.
    """
    checkpoint = check_checkpoint(
        torch.load(checkpoint_file, map_location="cpu", weights_only=True),
        source=str(checkpoint_file),
    )
    metadata = checkpoint["metadata"]
    class_names = list(metadata["class_names"])
    if example_image is None:
        example_image = _black_image(int(metadata["preprocessing"]["input_size"]))
    return {
        "python_model": ImageClassifierModel(),
        "artifacts": {CHECKPOINT_ARTIFACT: str(checkpoint_file)},
        "signature": _signature(class_names),
        "input_example": pd.DataFrame({IMAGE_COLUMN: [example_image]}),
        "pip_requirements": pinned_requirements(),
        "code_paths": [str(Path(transfer_study.__file__).parent)],
        "model_config": {
            "device": device,
            "batch_size": batch_size,
            "top_k": top_k,
            "tta": tta,
        },
        "metadata": {
            "checkpoint_format": checkpoint["format"],
            "variant": metadata.get("variant"),
            "backbone": metadata["backbone"],
            "class_names": class_names,
        },
    }


def pinned_requirements() -> list[str]:
    """``name==version`` of every distribution the model needs, as installed here.

    Local version labels (``+cu128``) are dropped: they name a build that only a
    special index serves, while the public version installs from PyPI.
    """
    return [
        f"{name}=={importlib.metadata.version(name).split('+')[0]}"
        for name in REQUIRED_DISTRIBUTIONS
    ]


def _model_config(config: Mapping[str, Any] | None) -> dict[str, Any]:
    defaults = {
        "device": DEVICE_AUTO,
        "batch_size": DEFAULT_BATCH_SIZE,
        "top_k": None,
        "tta": TTA_NONE,
    }
    return {**defaults, **(config or {})}


def _signature(class_names: list[str]) -> ModelSignature:
    outputs = [
        ColSpec(
            DataType.string if name in _STRING_COLUMNS else DataType.double, name, required=False
        )
        for name in PREDICTION_COLUMNS
    ]
    outputs += [
        ColSpec(DataType.double, f"{PROBABILITY_PREFIX}{name}", required=False)
        for name in class_names
    ]
    # Both optional: a request sends either column, or both with one value per row.
    inputs = [
        ColSpec(DataType.binary, IMAGE_COLUMN, required=False),
        ColSpec(DataType.string, PATH_COLUMN, required=False),
    ]
    return ModelSignature(inputs=Schema(inputs), outputs=Schema(outputs))


def _black_image(side: int) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (side, side)).save(buffer, format=_EXAMPLE_FORMAT)
    return buffer.getvalue()


def _values(model_input: Any) -> list[Any]:
    if isinstance(model_input, pd.DataFrame):
        columns = [name for name in (IMAGE_COLUMN, PATH_COLUMN) if name in model_input.columns]
        if columns:
            rows = model_input[columns].itertuples(index=False, name=None)
            return [
                _row_value(dict(zip(columns, row, strict=True)), n) for n, row in enumerate(rows)
            ]
        if len(model_input.columns) == 1:
            return model_input.iloc[:, 0].tolist()
        raise ImageInputError(
            f"Expected a DataFrame with an '{IMAGE_COLUMN}' column (image bytes) or a "
            f"'{PATH_COLUMN}' column (file paths), or a single column, got columns "
            f"{list(model_input.columns)} (a model loaded with mlflow.pyfunc.load_model or "
            "served drops the columns its signature does not name)."
        )
    if isinstance(model_input, (pd.Series, np.ndarray, list, tuple)):
        return list(model_input)
    return [model_input]


def _row_value(row: dict[str, Any], number: int) -> Any:
    """The one value a row of the ``image`` and ``path`` columns gives."""
    given = {name: value for name, value in row.items() if not _is_missing(value)}
    if not given:
        raise ImageInputError(
            f"Row {number}: no image given: put the bytes of an image file in "
            f"'{IMAGE_COLUMN}' (base64-encoded over REST) or a file path in '{PATH_COLUMN}'."
        )
    if len(given) > 1:
        raise ImageInputError(
            f"Row {number}: both '{IMAGE_COLUMN}' and '{PATH_COLUMN}' are given; give one "
            "(leave the other null, or empty)."
        )
    ((name, value),) = given.items()
    if name == PATH_COLUMN:
        if not isinstance(value, (str, os.PathLike)):
            raise ImageInputError(
                f"Row {number}: expected a file path in '{PATH_COLUMN}', got "
                f"{type(value).__name__}."
            )
        return Path(value)
    return value


def _is_missing(value: Any) -> bool:
    """``None``, NaN, ``pd.NA`` and empty strings or bytes: the column gives nothing."""
    if isinstance(value, (str, bytes, bytearray, memoryview)):
        return len(value) == 0
    return bool(pd.api.types.is_scalar(value) and pd.isna(value))


def _image_source(value: Any, row: int) -> ImageSource:
    if isinstance(value, (bytes, bytearray, memoryview)):
        data = bytes(value)
        return lambda: data
    if isinstance(value, (str, os.PathLike)):
        path = Path(value)
        return path.read_bytes
    raise ImageInputError(
        f"Row {row}: expected an image file path or the bytes of an image file, got "
        f"{type(value).__name__}."
    )
