"""Photo folder → checked image index → split by physical sample → decoded-image cache."""

from .pipeline import create_pipeline

__all__ = ["create_pipeline"]
