"""Export of the study's chosen model to ONNX, checked against PyTorch."""

from .pipeline import create_pipeline

__all__ = ["create_pipeline"]
