"""ONNX export of a trained checkpoint, checked against PyTorch with ONNX Runtime.

``torch.onnx.export`` (the dynamo exporter, torch's default, which translates with
onnxscript) writes the graph; ONNX Runtime runs it on real test photos, and the export
is faithful when its probabilities match PyTorch's within ``PARITY_TOLERANCE`` and give
the same top-1 class on every photo. The graph takes normalised float32 NCHW images of
the checkpoint's input size with a dynamic batch axis and returns probabilities (the
softmax is inside the graph, so a runtime needs no post-processing); how to prepare its
input travels in the model's metadata (``metadata_props``).
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np
import onnx
import onnxruntime
import torch
from torch import nn

from transfer_study.models.checkpoint import rebuild_classifier
from transfer_study.models.preprocessing import Preprocessing

logger = logging.getLogger(__name__)

# fp32 against fp32: what is left is the order of floating-point operations.
PARITY_TOLERANCE = 1e-4
INPUT_NAME = "images"
OUTPUT_NAME = "probabilities"
_OPSET = 18


class OnnxExportError(RuntimeError):
    """The backbone could not be exported; the message names what failed."""


def export_checkpoint(checkpoint: Mapping[str, Any], *, variant: str = "") -> bytes:
    """The checkpoint's classifier as a serialised ONNX model, softmax included.

    Args:
        checkpoint: As made by ``make_checkpoint``.
        variant: Recorded in the model's metadata.

    Returns:
        The ONNX model's bytes (weights inside: EfficientNet-Lite0 is ~14 MB).

    Raises:
        OnnxExportError: If the exporter cannot translate the model; the message names the
            operator or step that failed.
    """
    classifier, metadata = rebuild_classifier(checkpoint)
    preprocessing = Preprocessing.from_dict(metadata["preprocessing"])
    module = nn.Sequential(classifier, nn.Softmax(dim=1)).eval()
    size = preprocessing.input_size
    # Two photos: a batch of one would let the exporter fix the batch axis at 1.
    example = torch.zeros(2, 3, size, size)
    try:
        program = torch.onnx.export(
            module,
            (example,),
            input_names=[INPUT_NAME],
            output_names=[OUTPUT_NAME],
            dynamic_shapes=({0: torch.export.Dim("batch")},),
            opset_version=_OPSET,
            dynamo=True,
            external_data=False,
            verbose=False,
        )
    except Exception as error:  # the exporter raises many types; all mean "cannot export"
        raise OnnxExportError(_what_failed(error, metadata["backbone"])) from error
    model = program.model_proto
    onnx.helper.set_model_props(model, _contract(metadata, preprocessing, variant))
    return model.SerializeToString()


def _contract(
    metadata: Mapping[str, Any], preprocessing: Preprocessing, variant: str
) -> dict[str, str]:
    """What a runtime needs to prepare the input and read the output, as strings."""
    return {
        "format": "transfer-study-onnx/1",
        "variant": variant,
        "backbone": str(metadata["backbone"]),
        "class_names": json.dumps(list(metadata["class_names"])),
        "input": f"{INPUT_NAME}: float32 [batch, 3, {preprocessing.input_size}, "
        f"{preprocessing.input_size}], RGB scaled to [0, 1] then (x - mean) / std",
        "output": f"{OUTPUT_NAME}: float32 [batch, classes], in class_names order",
        "preprocessing": json.dumps(preprocessing.to_dict()),
    }


def _what_failed(error: Exception, backbone: str) -> str:
    text = str(error)
    operator = re.search(r"(aten::[\w.]+|torch\.ops\.[\w.]+|<OpOverload[^>]*>)", text)
    named = f"operator {operator.group(1)}" if operator else f"{type(error).__name__}"
    first_line = text.strip().splitlines()[0] if text.strip() else ""
    return (
        f"ONNX export of backbone '{backbone}' failed at {named}: {first_line[:300]} "
        "The PyTorch checkpoint (model.pt) is unaffected and still usable."
    )


def check_parity(
    onnx_model: bytes, checkpoint: Mapping[str, Any], batches: Iterable[torch.Tensor]
) -> dict[str, Any]:
    """Runs the ONNX model (ONNX Runtime, CPU) and the checkpoint (PyTorch, fp32, CPU) on
    the same preprocessed photos and compares their probabilities.

    Args:
        onnx_model: ``export_checkpoint``'s bytes.
        checkpoint: The checkpoint it was exported from.
        batches: Preprocessed photos, ``[n, 3, size, size]`` float32 batches.

    Returns:
        ``photos``, ``max_abs_difference`` (of probabilities), ``top1_agreement`` (share of
        photos with the same top-1), ``tolerance`` and ``passed`` (difference within the
        tolerance and the same top-1 on every photo).
    """
    classifier, _ = rebuild_classifier(checkpoint)
    session = onnxruntime.InferenceSession(onnx_model, providers=["CPUExecutionProvider"])
    photos, difference, agreeing = 0, 0.0, 0
    for images in batches:
        with torch.inference_mode():
            expected = torch.softmax(classifier(images.float()), dim=1).numpy()
        (actual,) = session.run([OUTPUT_NAME], {INPUT_NAME: images.float().numpy()})
        photos += len(images)
        difference = max(difference, float(np.abs(actual - expected).max(initial=0.0)))
        agreeing += int((actual.argmax(1) == expected.argmax(1)).sum())
    agreement = agreeing / photos if photos else 1.0
    parity = {
        "photos": photos,
        "max_abs_difference": difference,
        "top1_agreement": agreement,
        "tolerance": PARITY_TOLERANCE,
        "passed": difference <= PARITY_TOLERANCE and agreement == 1.0,
    }
    if not parity["passed"]:
        logger.warning(
            "ONNX export differs from PyTorch: largest probability difference %.2g "
            "(tolerance %.0e), same top-1 on %.1f %% of %d photos.",
            difference,
            PARITY_TOLERANCE,
            100 * agreement,
            photos,
        )
    return parity
