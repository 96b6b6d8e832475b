"""The study's variants: one template pipeline instantiated under three namespaces, after
a node that says how long the study will take."""

from __future__ import annotations

from kedro.pipeline import Node, Pipeline

from transfer_study.pipelines.variant_template import (
    VARIANTS,
    embedding_pipeline,
    variant_pipeline,
)

from .nodes import estimate_study_time


def create_pipeline(**kwargs) -> Pipeline:
    """Creates the training pipeline: the time estimate, the shared embedding step and the
    three variants. The estimate needs only the split and the settings, so it runs
    before the images are decoded and before any training.

    Returns:
        The pipeline.
    """
    estimate = Node(
        func=estimate_study_time,
        inputs=[
            "split",
            "preprocessing",
            "params:model",
            *(f"{variant}.training_settings" for variant in VARIANTS),
        ],
        outputs="study_time_estimate",
        name="estimate_study_time_node",
    )
    return (
        Pipeline([estimate])
        + embedding_pipeline()
        + sum(map(variant_pipeline, VARIANTS), Pipeline([]))
    )
