"""The data-size ablation: learning curves over training samples × angles."""

from .pipeline import create_pipeline

__all__ = ["create_pipeline"]
