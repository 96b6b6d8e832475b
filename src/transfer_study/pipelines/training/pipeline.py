"""The study's variants: one template pipeline instantiated under three namespaces."""

from __future__ import annotations

from kedro.pipeline import Pipeline

from transfer_study.pipelines.variant_template import (
    VARIANTS,
    embedding_pipeline,
    variant_pipeline,
)


def create_pipeline(**kwargs) -> Pipeline:
    """Creates the training pipeline: the shared embedding step and the three variants.

    Returns:
        The pipeline.
    """
    return embedding_pipeline() + sum(map(variant_pipeline, VARIANTS), Pipeline([]))
