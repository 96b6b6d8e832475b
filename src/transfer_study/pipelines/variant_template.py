"""What the study and the data-size ablation share: the variants, the template pipeline
of one variant (train → evaluate → plot curves) and the frozen variant's embedding step."""

from __future__ import annotations

from collections.abc import Callable

from kedro.pipeline import Node, Pipeline

from .variant_nodes import (
    embed_images,
    evaluate_on_test,
    plot_training_curves,
    train_on_features,
    train_on_images,
)

# Variant name → trains on cached images, or on backbone features embedded once.
VARIANTS: dict[str, str] = {"scratch": "images", "frozen": "features", "finetune": "images"}
_SHARED_INPUTS = {"decoded_images", "split", "preprocessing"}


def variant_template(
    train: Callable, training_data: str, training_parameters: str = "params:training"
) -> Pipeline:
    """Train, evaluate and plot one variant; namespaced by the caller.

    Args:
        train: ``train_on_images`` or ``train_on_features``.
        training_data: The dataset ``train`` reads (``decoded_images`` or ``backbone_features``).
        training_parameters: The variant's settings: a parameter block, or a dataset made
            by an earlier node (an ablation cell's block with the cell's seed).

    Returns:
        The un-namespaced template pipeline.
    """
    return Pipeline(
        [
            Node(
                func=train,
                inputs=[
                    training_data,
                    "split",
                    "preprocessing",
                    "params:model",
                    training_parameters,
                ],
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


def training_node_and_data(variant: str) -> tuple[Callable, str]:
    """The training function of ``variant`` and the dataset it trains on."""
    if VARIANTS[variant] == "features":
        return train_on_features, "backbone_features"
    return train_on_images, "decoded_images"


def variant_pipeline(variant: str) -> Pipeline:
    """The template for ``variant`` under its own namespace and parameter block.

    Args:
        variant: ``scratch``, ``frozen`` or ``finetune``.

    Returns:
        The namespaced pipeline.
    """
    train, data = training_node_and_data(variant)
    return Pipeline(
        variant_template(train, data),
        namespace=variant,
        inputs=_SHARED_INPUTS | {data},
        parameters={
            "params:model": "params:model",
            "params:evaluation": "params:evaluation",
            "params:training": f"params:{variant}",
        },
    )


def embedding_pipeline() -> Pipeline:
    """Embeds every photo once with the frozen backbone, for every frozen run and cell."""
    return Pipeline(
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
