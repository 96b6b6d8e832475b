"""Angles are labels, not numbers: ``a2``, ``030-120`` or ``az30_el15``, kept as written.

A label is compared in natural order: its digit runs as numbers, the rest as text, so
``a2 < a10`` and ``030-120 < 030-240 < 045-000``. Photos without an angle come after
labelled ones.
"""

from __future__ import annotations

import re

import pandas as pd

_DIGITS = re.compile(r"(\d+)")


def natural_key(label: str) -> tuple[str | int, ...]:
    """The natural-order key of a label: ``"az30_el5"`` → ``("az", 30, "_el", 5, "")``.

    Hand-written instead of the ``natsort`` package (not a dependency): ``re.split`` with
    a capturing group alternates text and digit runs, so keys of any two labels compare
    text with text and numbers with numbers.

    Args:
        label: An angle label.

    Returns:
        A tuple that sorts labels in natural order.
    """
    parts = _DIGITS.split(label)
    return tuple(int(part) if i % 2 else part for i, part in enumerate(parts))


def angle_label(value: object) -> str | None:
    """An angle as a label: stripped text, or ``None`` when there is none.

    Args:
        value: What a manifest cell or a file-name group holds (``NaN`` or blank: none).

    Returns:
        The label, or ``None``.
    """
    if value is None or (isinstance(value, float) and pd.isna(value)):
        return None
    text = str(value).strip()
    return text or None


def angle_rank(angles: pd.Series) -> pd.Series:
    """Each angle's position in the natural order of the labels present.

    Args:
        angles: Angle labels; missing values (``None``, ``NaN``) have no angle.

    Returns:
        Integer ranks (nullable ``Int64``), ``<NA>`` for photos without an angle, so that
        sorting on them with ``na_position="last"`` puts those photos last.
    """
    labels = angles.map(angle_label)
    ordered = sorted(set(labels.dropna()), key=natural_key)
    rank = {label: position for position, label in enumerate(ordered)}
    return labels.map(rank).astype("Int64")
