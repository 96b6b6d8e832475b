"""Byte-identical photos: one copy kept per label, contradicting copies all dropped."""

from __future__ import annotations

import logging

import pandas as pd

logger = logging.getLogger(__name__)


def _excluded(path: str, label: str, reason: str) -> dict:
    return {"path": path, "label": label, "status": "excluded", "reason": reason}


def without_duplicates(index: pd.DataFrame) -> tuple[pd.DataFrame, list[dict]]:
    """Drops byte-identical copies, which would otherwise leak between splits.

    Copies under one label keep their first path; copies under different labels
    contradict each other and are all dropped.

    Args:
        index: The image index, with ``path``, ``label`` and ``sha256``.

    Returns:
        The index without the dropped copies, and one data-quality row (``path``,
        ``label``, ``status`` ``excluded``, ``reason``) per dropped copy.
    """
    quality, dropped, contradicted = [], set(), set()
    for _, group in index.groupby("sha256", sort=False):
        if len(group) < 2:
            continue
        paths = sorted(group["path"])
        labels = sorted(set(group["label"]))
        if len(labels) > 1:
            contradicted.add(group["sha256"].iloc[0])
            for row in group.itertuples():
                others = [p for p in paths if p != row.path]
                reason = f"byte-identical to {others} filed under different labels {labels}"
                quality.append(_excluded(row.path, row.label, reason))
                dropped.add(row.path)
        else:
            for row in group.itertuples():
                if row.path != paths[0]:
                    quality.append(_excluded(row.path, row.label, f"duplicate of {paths[0]}"))
                    dropped.add(row.path)
    contradictions = sorted(index["path"][index["sha256"].isin(contradicted)])
    if contradictions:
        # Not a stop: every copy is dropped, so nothing leaks or trains on both labels;
        # but a photo in two classes is a labelling error the user has to see.
        logger.warning(
            "%d photos are byte-identical to a photo filed under another label, a labelling "
            "error; all their copies are excluded (see data_quality.csv): %s",
            len(contradictions),
            contradictions[:10],
        )
    return index[~index["path"].isin(dropped)].reset_index(drop=True), quality
