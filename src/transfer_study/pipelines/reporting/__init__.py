"""Compare the trained variants: table, paired tests, chart and Markdown summary."""

from .pipeline import create_pipeline

__all__ = ["create_pipeline"]
