"""Classify new photos with a trained model: the best variant, a named one, or a file."""

from .pipeline import create_pipeline

__all__ = ["create_pipeline"]
