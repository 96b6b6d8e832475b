"""Logging a trained checkpoint to an MLflow run as loadable models."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import mlflow
import numpy as np
import torch
from mlflow.models import Model, infer_signature

import transfer_study
from transfer_study.inference.pyfunc import image_classifier_model_kwargs, pinned_requirements
from transfer_study.models.checkpoint import rebuild_classifier

logger = logging.getLogger(__name__)


def _example_input(metadata: Mapping[str, Any]) -> np.ndarray:
    size = int(metadata["preprocessing"]["input_size"])
    return np.zeros((1, 3, size, size), dtype=np.float32)


def log_trained_model(
    run_id: str, checkpoint: Mapping[str, Any], folder: Path, *, pyfunc: bool = True
) -> str:
    """Logs ``checkpoint`` to ``run_id`` as ``model`` (``mlflow.pytorch``) and, with
    ``pyfunc``, as ``image_classifier`` (a pyfunc that takes image files or bytes).

    Args:
        run_id: The MLflow run.
        checkpoint: As made by ``make_checkpoint``.
        folder: A scratch folder for the checkpoint file the pyfunc model packs.
        pyfunc: Also log the image-classifier pyfunc model.

    Returns:
        The URI of the model to register (``models:/<model_id>``): the pyfunc, which
        classifies image files, or the ``mlflow.pytorch`` model without it.
    """
    model, metadata = rebuild_classifier(checkpoint)
    example = _example_input(metadata)
    with torch.inference_mode():
        logits = model(torch.from_numpy(example)).numpy()
    # Pickled module with this package's source alongside (code_paths): loading needs
    # only the pinned requirements. The weights-only checkpoint inside the pyfunc model
    # is the format for long-term storage (docs/checkpoints.md).
    logged = mlflow.pytorch.log_model(
        model,
        name="model",
        run_id=run_id,
        signature=infer_signature(example, logits),
        input_example=example,
        serialization_format="pickle",
        pip_requirements=pinned_requirements(),
        code_paths=[str(Path(transfer_study.__file__).parent)],
        metadata={"class_names": metadata["class_names"]},
    )
    if pyfunc:
        checkpoint_file = folder / "model.pt"
        torch.save(dict(checkpoint), checkpoint_file)
        # mlflow.pyfunc.log_model has no run_id argument; Model.log is what it calls.
        logged = Model.log(
            artifact_path=None,
            name="image_classifier",
            flavor=mlflow.pyfunc,
            run_id=run_id,
            **image_classifier_model_kwargs(checkpoint_file),
        )
    return logged.model_uri
