"""Deterministic demo dataset: photos of plastic and natural beach fragments on sand."""

from .pipeline import create_pipeline

__all__ = ["create_pipeline"]
