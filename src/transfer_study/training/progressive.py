"""Progressive resizing: train at smaller inputs first, then at the input size.

fastai popularised it (Howard & Gugger 2020): early epochs learn coarse features as
well from small images, at a fraction of the cost per step. Here every stage trains under
the study's one rule (``fit``: validate, early-stop, restore the best) and the next stage
starts from its best weights. The smaller sides are a warm start, not a result: they
hand over after ``progressive_patience`` validations without progress (each stage pays
its patience in epochs that do not improve, and a warm start need not converge); the
last stage, at the input size, trains to convergence with the variant's patience and
alone chooses the weights kept, so a checkpoint is always chosen on full-size
validation. Written here rather than taken from fastai: its ``Learner`` owns the loop,
and our loop (``fitting.fit``) owns the study's stopping rule.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence

import pandas as pd

from transfer_study.training.fitting import FitResult

logger = logging.getLogger(__name__)

# The smallest side a backbone that downsamples 32 times still maps to one cell.
_MIN_SIDE = 32
# Columns that count from the start of training; each stage's fit counts from zero.
_CUMULATIVE = ("step", "epoch", "images_seen")


def stage_sizes(scales: Sequence[float], input_size: int) -> list[int]:
    """The input sides of progressive resizing's stages, the input size last.

    Each scale of ``input_size`` is rounded to whole pixels (at least 32); sides that
    reach the input size, or repeat, are dropped.

    Args:
        scales: Increasing fractions of the input size (``progressive_scales``).
        input_size: The side the backbone's weights expect (the last stage).

    Returns:
        Increasing sides, ending with ``input_size``.
    """
    sides = [max(_MIN_SIDE, round(scale * input_size)) for scale in scales]
    return [*sorted({side for side in sides if side < input_size}), input_size]


def fit_in_stages(
    sizes: Sequence[int],
    resize: Callable[[int], None],
    fit_stage: Callable[[bool, bool], FitResult],
    *,
    validate_start: bool = False,
    variant: str = "",
) -> FitResult:
    """Trains at each side in turn, each stage from the previous stage's best weights.

    Args:
        sizes: The sides, increasing; the last is the input size (``stage_sizes``).
        resize: Switches the training and validation data to a side.
        fit_stage: Trains the model at the current side until early stopping and
            restores its best weights; its arguments say whether to validate the start
            and whether this is the last side (trained to convergence; the smaller ones
            hand over sooner, as ``progressive_patience`` says).
        validate_start: Validate the first stage's start (as ``fit``).
        variant: The variant's name, for the log.

    Returns:
        One result for the whole training: the stages' histories joined (an
        ``input_size`` column; steps, epochs and images counted from the start), the
        last stage's best row and stop reason, and the stages' summed wall time. A stage
        that diverges ends the training there.
    """
    results: list[tuple[int, FitResult]] = []
    for index, size in enumerate(sizes):
        resize(size)
        logger.info(
            "%s: progressive resizing, stage %d of %d at %d px.",
            variant,
            index + 1,
            len(sizes),
            size,
        )
        result = fit_stage(validate_start and index == 0, index == len(sizes) - 1)
        results.append((size, result))
        if result.diverged:
            break
    return _joined(results)


def _joined(results: Sequence[tuple[int, FitResult]]) -> FitResult:
    """The stages' results as one, counted from the start of training."""
    histories, offsets = [], dict.fromkeys(_CUMULATIVE, 0.0)
    for size, result in results:
        history = result.history.copy()
        for column in _CUMULATIVE:
            history[column] = history[column] + offsets[column]
        history.insert(0, "input_size", size)
        if size != results[-1][0]:
            # Only the last stage's validations choose the weights kept.
            history["improved"] = False
        histories.append(history)
        offsets = {column: float(history[column].iloc[-1]) for column in _CUMULATIVE}
    history = pd.concat(histories, ignore_index=True)
    for column in ("step", "images_seen"):
        history[column] = history[column].astype(int)
    last = results[-1][1]
    best = history.loc[history["improved"]].iloc[-1].to_dict()
    seconds = sum(result.seconds for _, result in results)
    return FitResult(history, best, last.stop_reason, seconds, last.divergence)
