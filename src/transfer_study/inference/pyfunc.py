"""A trained checkpoint as a self-contained MLflow pyfunc model.

``image_classifier_model_kwargs`` gives everything ``mlflow.pyfunc.save_model`` or
``log_model`` needs: the model class, the checkpoint as an artifact, a signature, an
input example, pinned requirements, and this package's source as ``code_paths``, so the
model loads and serves where transfer_study is not installed. It predicts through
``ImagePredictor``, like the inference pipeline, so both give the same answers.

Input: a DataFrame with an ``image`` column (or any one column), a Series or a list;
each value is a file path (``str`` or ``os.PathLike``) or the encoded bytes of an image
file. Over REST (``mlflow models serve``), send base64-encoded bytes in the ``image``
column. Output: see ``ImagePredictor.predict``.
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
from mlflow.models import ModelSignature
from mlflow.types import ColSpec, DataType, Schema
from PIL import Image

import transfer_study
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


class ImageClassifierModel(mlflow.pyfunc.PythonModel):
    """Classifies image files with a transfer-study checkpoint.

    ``model_config`` (at save or load time): ``device`` (``auto``, ``cpu``, ``cuda``,
    ``mps``), ``batch_size``, ``top_k`` (``None`` = every class).
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

    def predict(
        self,
        context: mlflow.pyfunc.PythonModelContext,
        model_input: pd.DataFrame,
        params: dict[str, Any] | None = None,
    ) -> pd.DataFrame:
        """Classifies a batch of images given as file paths or encoded bytes.

        Args:
            context: MLflow's model context (unused; everything was loaded before).
            model_input: A DataFrame with an ``image`` column (or a single column), a
                Series, a list, or one path or bytes value.
            params: Unused.

        Returns:
            One row per image; see ``ImagePredictor.predict``.

        Raises:
            ValueError: For a DataFrame without an ``image`` column and with several
                columns, or a value that is neither a path nor bytes.
        """
        sources = [_image_source(value, row) for row, value in enumerate(_values(model_input))]
        return self._predictor.predict(sources, batch_size=self._batch_size, top_k=self._top_k)


def image_classifier_model_kwargs(
    checkpoint_file: Path,
    example_image: bytes | None = None,
    *,
    device: str = DEVICE_AUTO,
    batch_size: int = DEFAULT_BATCH_SIZE,
    top_k: int | None = None,
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
        "model_config": {"device": device, "batch_size": batch_size, "top_k": top_k},
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
    defaults = {"device": DEVICE_AUTO, "batch_size": DEFAULT_BATCH_SIZE, "top_k": None}
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
    return ModelSignature(
        inputs=Schema([ColSpec(DataType.binary, IMAGE_COLUMN)]), outputs=Schema(outputs)
    )


def _black_image(side: int) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (side, side)).save(buffer, format=_EXAMPLE_FORMAT)
    return buffer.getvalue()


def _values(model_input: Any) -> list[Any]:
    if isinstance(model_input, pd.DataFrame):
        if IMAGE_COLUMN in model_input.columns:
            return model_input[IMAGE_COLUMN].tolist()
        if len(model_input.columns) == 1:
            return model_input.iloc[:, 0].tolist()
        raise ValueError(
            f"Expected a DataFrame with an '{IMAGE_COLUMN}' column (or a single column), got "
            f"columns {list(model_input.columns)}."
        )
    if isinstance(model_input, (pd.Series, np.ndarray, list, tuple)):
        return list(model_input)
    return [model_input]


def _image_source(value: Any, row: int) -> ImageSource:
    if isinstance(value, (bytes, bytearray, memoryview)):
        data = bytes(value)
        return lambda: data
    if isinstance(value, (str, os.PathLike)):
        path = Path(value)
        return path.read_bytes
    raise ValueError(
        f"Row {row}: expected an image file path or the bytes of an image file, got "
        f"{type(value).__name__}."
    )
