"""Train the scratch, frozen and fine-tune variants and evaluate each on the test split."""

from .pipeline import create_pipeline

__all__ = ["create_pipeline"]
