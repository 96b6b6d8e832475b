"""The study's variants: one template pipeline instantiated under three namespaces."""

from __future__ import annotations

from collections.abc import Callable

from kedro.pipeline import Node, Pipeline

from .nodes import (
    embed_images,
    evaluate_on_test,
    plot_training_curves,
    train_on_features,
    train_on_images,
)

# Variant name → trains on cached images, or on backbone features embedded once.
VARIANTS: dict[str, str] = {"scratch": "images", "frozen": "features", "finetune": "images"}
_SHARED_INPUTS = {"decoded_images", "split", "preprocessing"}


def variant_template(train: Callable, training_data: str) -> Pipeline:
    """Train, evaluate and plot one variant; namespaced by the caller.

    Args:
        train: ``train_on_images`` or ``train_on_features``.
        training_data: The dataset ``train`` reads (``decoded_images`` or ``backbone_features``).

    Returns:
        The un-namespaced template pipeline.
    """
    return Pipeline(
        [
            Node(
                func=train,
                inputs=[training_data, "split", "preprocessing", "params:model", "params:training"],
                outputs=["model", "training_history", "training_summary"],
                name="train_node",
            ),
            Node(
                func=evaluate_on_test,
                inputs=["model", "decoded_images", "split", "params:evaluation"],
                outputs=["test_predictions", "test_metrics", "confusion_matrix"],
                name="evaluate_node",
            ),
            Node(
                func=plot_training_curves,
                inputs=["training_history", "training_summary"],
                outputs="training_curves",
                name="plot_training_curves_node",
            ),
        ]
    )


def variant_pipeline(
    variant: str, kind: str, *, namespace: str | None = None, parameters: str | None = None
) -> Pipeline:
    """The template for ``variant`` under ``namespace`` with its own parameter block.

    Args:
        variant: ``scratch``, ``frozen`` or ``finetune``.
        kind: ``images`` or ``features`` (see ``VARIANTS``).
        namespace: Namespace of its datasets and nodes; the variant name by default.
        parameters: Parameter key of its settings; the variant name by default.

    Returns:
        The namespaced pipeline.
    """
    train, data = (
        (train_on_features, "backbone_features")
        if kind == "features"
        else (train_on_images, "decoded_images")
    )
    return Pipeline(
        variant_template(train, data),
        namespace=namespace or variant,
        inputs=_SHARED_INPUTS | {data},
        parameters={
            "params:model": "params:model",
            "params:evaluation": "params:evaluation",
            "params:training": f"params:{parameters or variant}",
        },
    )


def create_pipeline(**kwargs) -> Pipeline:
    """Creates the training pipeline: the shared embedding step and the three variants.

    Returns:
        The pipeline.
    """
    embedding = Pipeline(
        [
            Node(
                func=embed_images,
                inputs=[
                    "decoded_images",
                    "split",
                    "preprocessing",
                    "params:model",
                    "params:frozen",
                ],
                outputs="backbone_features",
                name="embed_images_node",
            )
        ]
    )
    return embedding + sum(
        (variant_pipeline(v, kind) for v, kind in VARIANTS.items()), Pipeline([])
    )
