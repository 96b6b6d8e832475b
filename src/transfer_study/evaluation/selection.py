"""Choosing the best variant on validation, never on test."""

from __future__ import annotations

import pandas as pd

from .diverged import diverged_mask

# Variants whose validation metrics are within this many points count as tied; the tie
# goes to the cheaper variant.
TIE_POINTS = 0.5
# Cheapest first: a head on cached features, then the later stages on cached early-stage
# outputs, then fine-tuning everything, then training from scratch.
COST_ORDER = ("frozen", "finetune_top", "finetune", "scratch")


def _cost_rank(variant: str) -> int:
    return COST_ORDER.index(variant) if variant in COST_ORDER else len(COST_ORDER)


def choose_best_variant(comparison: pd.DataFrame) -> str | None:
    """The variant with the best validation metric among those that converged.

    Test results play no part: choosing on test would bias the reported test accuracy
    upwards. Variants within ``TIE_POINTS`` points of the best validation metric are tied
    and the cheapest of them (``COST_ORDER``) is chosen. A variant that hit its training
    cap (``converged`` false) or diverged (``diverged`` true: its validation metric is
    an early checkpoint's) is never chosen.

    Args:
        comparison: One row per variant with ``variant``, ``val_metric`` (a fraction),
            ``converged`` and optionally ``diverged``.

    Returns:
        The chosen variant, or ``None`` when no variant converged.
    """
    eligible = comparison[comparison["converged"].astype(bool) & ~diverged_mask(comparison)]
    if eligible.empty:
        return None
    best = eligible["val_metric"].max()
    tied = eligible[eligible["val_metric"] >= best - TIE_POINTS / 100 - 1e-9]
    return str(min(tied["variant"], key=_cost_rank))
