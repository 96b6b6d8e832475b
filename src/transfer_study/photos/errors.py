"""The errors of reading a photo folder: each says what is wrong and what to do."""

from __future__ import annotations


class DataLayoutError(ValueError):
    """The photo folder or its manifest cannot be read as a labelled dataset."""


class SampleGroupingError(DataLayoutError):
    """The photos cannot be grouped into physical samples safely: a split would leak."""
