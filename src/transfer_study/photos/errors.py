"""The errors of reading and splitting a photo folder: each says what is wrong and what
to do. They are user errors (``transfer_study.errors``): ``kedro run`` shows the message
without a traceback."""

from __future__ import annotations

from transfer_study.errors import UserError


class DataLayoutError(UserError, ValueError):
    """The photo folder or its manifest cannot be read as a labelled dataset."""


class SampleGroupingError(DataLayoutError):
    """The photos cannot be grouped into physical samples safely: a split would leak."""


class SplitError(UserError, ValueError):
    """The photos cannot be split (train/val/test, folds, ablation subsets) as asked."""
