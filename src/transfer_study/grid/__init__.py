"""The data-size ablation's cells on a Dask cluster: ``DaskGridRunner``."""

from .runner import DaskGridRunner

__all__ = ["DaskGridRunner"]
