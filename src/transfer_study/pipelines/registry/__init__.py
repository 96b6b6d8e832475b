"""The registry pipeline: the study's chosen model in the MLflow Model Registry."""

from .pipeline import create_pipeline

__all__ = ["create_pipeline"]
