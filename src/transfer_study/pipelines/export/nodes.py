"""Nodes of the export pipeline: the chosen checkpoint to ONNX, checked on test photos."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from typing import Any

import pandas as pd

from transfer_study.config import ExportSettings, ParameterError
from transfer_study.inference.onnx_export import OnnxExportError, check_parity, export_checkpoint
from transfer_study.training.testing import batches_of_test_photos

logger = logging.getLogger(__name__)

EXPORT_BEST = "best"
EXPORT_NONE = "none"


def export_to_onnx(
    comparison: pd.DataFrame,
    decoded_images: Mapping[str, Callable[[], dict]],
    split: pd.DataFrame,
    params: ExportSettings,
    **checkpoints: Mapping[str, Any],
) -> tuple[dict[str, bytes], dict[str, Any]]:
    """Exports the checkpoint ``export.model`` names and checks it on the test photos.

    Args:
        comparison: The variant comparison (``variant``, ``selected``: chosen on validation).
        decoded_images: The decoded-image cache (the test photos of the check).
        split: The split table.
        params: The ``export`` parameters.
        **checkpoints: Each of the study's variants' checkpoint, by variant.

    Returns:
        ``{variant: ONNX bytes}`` (empty when nothing was exported) and the export's record:
        ``exported``, ``variant``, and the parity figures of ``check_parity`` or the
        ``reason`` nothing was exported. A model the exporter cannot translate is a
        warning, not a failed run: its PyTorch checkpoint is untouched.

    Raises:
        ParameterError: If ``export.model`` names a variant the study did not train.
    """
    variant, reason = _variant_to_export(params.model, comparison)
    if variant is None:
        logger.info("No ONNX export: %s", reason)
        return {}, {"exported": False, "variant": None, "reason": reason}
    if variant not in checkpoints:
        raise ParameterError(
            f"export.model is '{variant}', which this study does not train (study.variants: "
            f"{', '.join(checkpoints)}): name one of those, or add '{variant}' to "
            "study.variants."
        )
    checkpoint = checkpoints[variant]
    started = time.perf_counter()
    try:
        model = export_checkpoint(checkpoint, variant=variant)
    except OnnxExportError as error:
        logger.warning("%s", error)
        return {}, {"exported": False, "variant": variant, "reason": str(error)}
    exported = time.perf_counter()
    batches = batches_of_test_photos(checkpoint, decoded_images, split, params.batch_size)
    parity = check_parity(model, checkpoint, batches)
    record = {
        "exported": True,
        "variant": variant,
        "file": f"data/06_models/{variant}/model.onnx",
        "megabytes": round(len(model) / 1e6, 2),
        "export_seconds": round(exported - started, 1),
        "check_seconds": round(time.perf_counter() - exported, 1),
        **parity,
    }
    logger.info(
        "Exported %s to ONNX (%.1f MB): largest probability difference from PyTorch %.1e on "
        "%d test photos, same top-1 on %.1f %%.",
        variant,
        record["megabytes"],
        parity["max_abs_difference"],
        parity["photos"],
        100 * parity["top1_agreement"],
    )
    return {variant: model}, record


def _variant_to_export(choice: str, comparison: pd.DataFrame) -> tuple[str | None, str]:
    """The variant ``export.model`` names, or ``None`` and why nothing is exported."""
    if choice == EXPORT_NONE:
        return None, "export.model is none"
    if choice != EXPORT_BEST:
        return choice, ""
    chosen = comparison.loc[comparison["selected"].astype(bool), "variant"]
    if chosen.empty:
        return None, (
            "the comparison chose no variant on validation (none converged without "
            "diverging); name one with --params=export.model=<variant>"
        )
    return str(chosen.iloc[0]), ""
