"""``CheckpointDataset``: a model.pt from a file, or from an MLflow model.

``inference.model`` may name a checkpoint file or a model the study logged to MLflow:
``models:/<name>@champion`` (the registry's champion), ``models:/<name>/<version>``, or
``runs:/<run_id>/image_classifier``. An MLflow model is the ``image_classifier`` pyfunc,
which packs the checkpoint as its ``checkpoint`` artifact: that file is downloaded and
loaded like any model.pt (``weights_only``), so predictions equal the checkpoint's.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import mlflow
from kedro.io.core import AbstractDataset, DatasetError
from mlflow.exceptions import MlflowException
from mlflow.models import Model

from transfer_study.inference.model_choice import is_mlflow_model_uri

from .torch_dataset import TorchDataset

_PYFUNC = "python_function"
_CHECKPOINT_ARTIFACT = "checkpoint"  # inference.pyfunc.CHECKPOINT_ARTIFACT


class CheckpointDataset(AbstractDataset[None, Any]):
    """Loads a checkpoint from a file path or an MLflow model URI; read-only.

    Example:
        ```yaml
        inference_checkpoint_file:
          type: transfer_study.datasets.CheckpointDataset
          filepath: ${runtime_params:inference.model,best}
        ```
    """

    def __init__(self, *, filepath: str, metadata: dict[str, Any] | None = None) -> None:
        """Creates the dataset.

        Args:
            filepath: A checkpoint file (optionally with an fsspec protocol) or an MLflow
                model URI (``models:/…``, ``runs:/…``).
            metadata: Arbitrary metadata, ignored by Kedro.
        """
        self._uri = filepath
        self._file = None if is_mlflow_model_uri(filepath) else TorchDataset(filepath=filepath)
        self.metadata = metadata

    def load(self) -> Any:
        if self._file is not None:
            return self._file.load()
        with tempfile.TemporaryDirectory() as folder:
            local = Path(mlflow.artifacts.download_artifacts(self._uri, dst_path=folder))
            checkpoint = _checkpoint_path(local, self._uri)
            return TorchDataset(filepath=str(checkpoint), load_args={"mmap": False}).load()

    def save(self, data: None) -> None:
        raise DatasetError(f"CheckpointDataset is read-only: cannot save to '{self._uri}'.")

    def _exists(self) -> bool:
        if self._file is not None:
            return self._file.exists()
        try:
            mlflow.models.get_model_info(self._uri)
        except (MlflowException, OSError):
            return False
        return True

    def _describe(self) -> dict[str, Any]:
        return {"filepath": self._uri}


def _checkpoint_path(model_folder: Path, uri: str) -> Path:
    """The checkpoint artifact inside a downloaded ``image_classifier`` model."""
    flavor = Model.load(str(model_folder)).flavors.get(_PYFUNC, {})
    artifact = flavor.get("artifacts", {}).get(_CHECKPOINT_ARTIFACT, {})
    if "path" not in artifact:
        raise DatasetError(
            f"'{uri}' is not a transfer-study image_classifier model (it packs no "
            f"'{_CHECKPOINT_ARTIFACT}' artifact): register or name the image_classifier "
            "model a study run logged."
        )
    return model_folder / artifact["path"]
