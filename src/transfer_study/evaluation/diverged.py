"""Variants whose training diverged (``training.divergence``): flagged, never chosen, never
compared, and no result of theirs shown as one.

A diverged training was stopped and keeps its best validation from before the divergence
(or its start): its test figures describe that early checkpoint, not the variant, so the
comparison withholds them and tells the user to lower the learning rate instead.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pandas as pd

# The comparison's columns that are results of the training: withheld for a diverged one.
_RESULT_PREFIXES = ("accuracy", "balanced_accuracy", "macro_f1", "roc_auc", "top_", "val_metric")
# Lowering the learning rate by this factor is the advice.
LR_CUT = 10


def is_diverged(summary: Mapping[str, Any]) -> bool:
    """Whether a training summary (or a comparison row) says the training diverged."""
    value = summary.get("diverged", False)
    return bool(value) and not pd.isna(value)


def diverged_mask(comparison: pd.DataFrame) -> pd.Series:
    """Per row, whether the variant diverged (no column: none did)."""
    if "diverged" not in comparison.columns:
        return pd.Series(False, index=comparison.index)
    return comparison["diverged"].fillna(False).astype(bool)


def result_columns(comparison: pd.DataFrame) -> list[str]:
    """The columns that hold what a training achieved (test metrics, validation metric)."""
    return [c for c in comparison.columns if c.startswith(_RESULT_PREFIXES)]


def withhold_diverged_results(comparison: pd.DataFrame) -> pd.DataFrame:
    """The comparison with every result of a diverged variant blanked (NaN)."""
    withheld = comparison.copy()
    withheld.loc[diverged_mask(comparison), result_columns(comparison)] = float("nan")
    return withheld


def _lr(value: float) -> str:
    """Two significant digits, written as a user would type them (100, 0.0001, 1e-05)."""
    return f"{float(f'{value:.2g}'):g}"


def lower_lr_advice(variant: str, lr: float) -> str:
    """``lower its learning rate, e.g. --params=finetune.lr=0.0001 (a tenth of 0.001)``."""
    return (
        f"lower its learning rate, e.g. `--params={variant}.lr={_lr(lr / LR_CUT)}` "
        f"(a tenth of {_lr(lr)}), and re-run"
    )


def diverged_flag(row: pd.Series, name: str) -> str:
    """The report's line for a diverged variant: where, why, and what to do."""
    step = row.get("divergence_step")
    where = f" at step {int(step):,}" if step is not None and not pd.isna(step) else ""
    reason = row.get("divergence_reason")
    why = f" ({reason})" if isinstance(reason, str) and reason else ""
    advice = lower_lr_advice(str(row["variant"]), float(row["lr"])) if "lr" in row else ""
    return (
        f"**Flagged: {name} diverged{where}**{why}. Its training was stopped there, so it "
        "has no result: its figures would be those of an early checkpoint, and it is "
        f"never chosen nor compared. To train it, {advice or 'lower its learning rate'}."
    )
