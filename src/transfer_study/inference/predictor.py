"""Classify image files with a trained checkpoint.

The inference pipeline and the MLflow pyfunc model both predict through
``ImagePredictor``, so they give the same answers. It feeds the network exactly as the
test evaluation did: ``decode_resized`` (the decoded-image cache's pixels), then the
eval transform, both built from the preprocessing stored in the checkpoint.

A file that cannot be read or decoded does not stop a batch: its row has status
``skipped`` and the reason in ``error``.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import torch

from transfer_study.errors import UserError
from transfer_study.images import ImageDecodeError
from transfer_study.models.checkpoint import CHECKPOINT_FORMAT, rebuild_classifier
from transfer_study.models.factory import Classifier
from transfer_study.models.preprocessing import Preprocessing
from transfer_study.models.transforms import build_eval_transform, decode_resized
from transfer_study.models.tta import TTA_MODES, TTA_NONE, TtaMode, tta_probabilities
from transfer_study.training.device import DEVICE_AUTO, pick_device

logger = logging.getLogger(__name__)

STATUS_OK = "ok"
STATUS_SKIPPED = "skipped"
PROBABILITY_PREFIX = "prob_"
# Every prediction table starts with these; per-class probabilities follow.
PREDICTION_COLUMNS = ("predicted", "probability", "top_k", "status", "error")

HOW_TO_GET_A_CHECKPOINT = (
    "Use a model.pt written by `kedro run` (data/06_models/<variant>/model.pt), or train "
    "one first with `kedro run`."
)

ImageSource = Callable[[], bytes]


class NotACheckpointError(UserError, ValueError):
    """The object or file is not a checkpoint of this project; the message says what to do."""


def check_checkpoint(checkpoint: Any, *, source: str) -> Mapping[str, Any]:
    """Checks that an object is a checkpoint made by ``make_checkpoint``.

    Args:
        checkpoint: What was loaded, e.g. with ``torch.load(..., weights_only=True)``.
        source: Names it in the error, e.g. a file path or a variant.

    Returns:
        The checkpoint.

    Raises:
        NotACheckpointError: If it is not one (a bare state dict, another format…).
    """
    found = checkpoint.get("format") if isinstance(checkpoint, Mapping) else None
    if found != CHECKPOINT_FORMAT:
        kind = f"format {found!r}" if found else f"a {type(checkpoint).__name__} without 'format'"
        raise NotACheckpointError(
            f"{source} is not a transfer-study checkpoint ({kind}; expected "
            f"{CHECKPOINT_FORMAT!r}). {HOW_TO_GET_A_CHECKPOINT}"
        )
    return checkpoint


def top_k_json(probabilities: np.ndarray, class_names: Sequence[str], k: int) -> str:
    """The ``k`` most probable classes, most probable first, as a JSON object.

    Ties keep the class order, so the first entry is always the ``argmax`` class.

    Args:
        probabilities: One image's class probabilities, in ``class_names`` order.
        class_names: Class names in output order.
        k: How many classes to list (capped at the number of classes).

    Returns:
        E.g. ``{"cat": 0.91, "dog": 0.09}``; ``json.loads`` keeps the order.
    """
    order = np.argsort(-probabilities, kind="stable")[:k]
    return json.dumps({class_names[i]: float(probabilities[i]) for i in order})


@dataclass(frozen=True)
class ImagePredictor:
    """A trained classifier with the preprocessing its checkpoint prescribes.

    Attributes:
        model: The classifier, in eval mode, on ``device``.
        class_names: Class names in output order.
        preprocessing: Sizes and normalisation from the checkpoint.
        device: Where the model runs.
        metadata: The checkpoint's metadata (variant, backbone, versions, …).
    """

    model: Classifier
    class_names: tuple[str, ...]
    preprocessing: Preprocessing
    device: torch.device
    metadata: Mapping[str, Any]

    @classmethod
    def from_checkpoint(
        cls, checkpoint: Any, *, device: str = DEVICE_AUTO, source: str = "The checkpoint"
    ) -> ImagePredictor:
        """Rebuilds the classifier of a checkpoint for prediction.

        Args:
            checkpoint: As made by ``make_checkpoint``.
            device: ``auto``, ``cpu``, ``cuda`` or ``mps`` (see ``pick_device``).
            source: Names the checkpoint in errors.

        Returns:
            The predictor.

        Raises:
            NotACheckpointError: If the checkpoint is not this project's, or its weights
                do not fit the architecture its metadata describes.
        """
        check_checkpoint(checkpoint, source=source)
        try:
            model, metadata = rebuild_classifier(checkpoint)
        except (KeyError, RuntimeError, ValueError) as error:
            raise NotACheckpointError(
                f"{source} has the transfer-study format but cannot be rebuilt ({error}). "
                f"{HOW_TO_GET_A_CHECKPOINT}"
            ) from error
        target = pick_device(device)
        return cls(
            model=model.to(target, memory_format=torch.channels_last),
            class_names=tuple(metadata["class_names"]),
            preprocessing=Preprocessing.from_dict(metadata["preprocessing"]),
            device=target,
            metadata=metadata,
        )

    def predict(
        self,
        images: Sequence[ImageSource],
        *,
        batch_size: int,
        top_k: int | None = None,
        tta: TtaMode = TTA_NONE,
    ) -> pd.DataFrame:
        """Classifies image files, skipping those that cannot be read or decoded.

        Args:
            images: One function per image that returns the file's bytes (an
                ``OSError`` it raises skips the image).
            batch_size: Images decoded and run through the network at a time.
            top_k: How many classes the ``top_k`` column lists; ``None`` = all.
            tta: Test-time augmentation, one of ``TTA_MODES``: the probabilities are the
                mean softmax over the views ``transfer_study.models.tta`` describes;
                ``none`` = the photo as the test evaluation saw it.

        Returns:
            One row per image, in order: ``predicted``, ``probability`` (of the
            predicted class), ``top_k`` (see ``top_k_json``), ``status`` (``ok`` or
            ``skipped``), ``error`` (why it was skipped, else empty) and
            ``prob_<class>`` for every class. A skipped row has no prediction.

        Raises:
            ValueError: If ``batch_size`` or ``top_k`` is below 1, or ``tta`` is unknown.
        """
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {batch_size}.")
        if top_k is not None and top_k < 1:
            raise ValueError(f"top_k must be at least 1 (or null for all), got {top_k}.")
        if tta not in TTA_MODES:
            raise ValueError(f"Unknown tta {tta!r}; use one of {list(TTA_MODES)}.")
        probabilities = np.full((len(images), len(self.class_names)), np.nan)
        errors = [""] * len(images)
        transform = build_eval_transform(preprocessing=self.preprocessing)
        with ThreadPoolExecutor(max_workers=os.cpu_count() or 1) as pool:
            for start in range(0, len(images), batch_size):
                decoded = list(pool.map(self._decode, images[start : start + batch_size]))
                good = [i for i, (_, error) in enumerate(decoded) if not error]
                for i, (_, error) in enumerate(decoded):
                    errors[start + i] = error
                if good:
                    batch = torch.stack([transform(decoded[i][0]) for i in good])
                    probabilities[[start + i for i in good]] = self._probabilities(batch, tta)
        return self._table(probabilities, errors, top_k or len(self.class_names))

    def _decode(self, image: ImageSource) -> tuple[torch.Tensor | None, str]:
        try:
            return decode_resized(image(), preprocessing=self.preprocessing), ""
        except ImageDecodeError as error:
            return None, str(error)
        except OSError as error:
            return None, f"cannot read the file: {error.strerror or error}"

    @torch.inference_mode()
    def _probabilities(self, batch: torch.Tensor, tta: TtaMode = TTA_NONE) -> np.ndarray:
        inputs = batch.to(self.device).contiguous(memory_format=torch.channels_last)
        if tta == TTA_NONE:
            return torch.softmax(self.model(inputs).float(), dim=1).cpu().numpy()
        # The views are made on the device; each is fed channels-last like the batch.
        return tta_probabilities(self._logits, inputs, tta).cpu().numpy()

    def _logits(self, inputs: torch.Tensor) -> torch.Tensor:
        return self.model(inputs.contiguous(memory_format=torch.channels_last))

    def _table(self, probabilities: np.ndarray, errors: list[str], k: int) -> pd.DataFrame:
        ok = np.array([not error for error in errors], dtype=bool)
        predicted = probabilities.argmax(axis=1)
        table = pd.DataFrame(
            {
                "predicted": [
                    self.class_names[i] if fine else None
                    for i, fine in zip(predicted, ok, strict=True)
                ],
                "probability": np.where(ok, probabilities.max(axis=1), np.nan),
                "top_k": [
                    top_k_json(row, self.class_names, k) if fine else None
                    for row, fine in zip(probabilities, ok, strict=True)
                ],
                "status": np.where(ok, STATUS_OK, STATUS_SKIPPED),
                "error": errors,
            },
            columns=list(PREDICTION_COLUMNS),
        )
        for i, name in enumerate(self.class_names):
            table[f"{PROBABILITY_PREFIX}{name}"] = probabilities[:, i]
        return table


def log_outcome(predictions: pd.DataFrame, folder: str) -> None:
    """Logs how many files were classified as what, and which were skipped and why."""
    skipped = predictions[predictions["status"] == STATUS_SKIPPED]
    counts = predictions["predicted"].value_counts()
    logger.info(
        "Classified %d of %d files in '%s': %s",
        len(predictions) - len(skipped),
        len(predictions),
        folder,
        ", ".join(f"{name} {count}" for name, count in counts.items()) or "none",
    )
    if len(skipped):
        logger.warning(
            "Skipped %d file(s) that are not usable images:\n%s",
            len(skipped),
            "\n".join(f"  {row.path}: {row.error}" for row in skipped.itertuples()),
        )
