"""Train the scratch, frozen and fine-tune variants and evaluate each on the test split."""

from .pipeline import VARIANTS, create_pipeline

__all__ = ["VARIANTS", "create_pipeline"]
