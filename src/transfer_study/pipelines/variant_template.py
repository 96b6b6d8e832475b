"""What the study and the data-size ablation share: the variants, the template pipeline
of one variant (resolve its settings → train → evaluate → plot curves) and the frozen
variant's embedding step."""

from __future__ import annotations

from collections.abc import Callable
from functools import partial, update_wrapper
from typing import Any

from kedro.pipeline import Node, Pipeline

from .variant_nodes import (
    embed_backbone_features,
    evaluate_variant,
    plot_training_curves,
    resolve_variant_settings,
    train_feature_variant,
    train_image_variant,
)

# Variant name → trains on cached images, or on backbone features embedded once.
VARIANTS: dict[str, str] = {"scratch": "images", "frozen": "features", "finetune": "images"}
FEATURES_VARIANT = "frozen"  # whose settings embed the photos once for every frozen run
TRAINING_DEFAULTS = "params:training_defaults"
# Kept outside the variant's namespace when it is applied.
SHARED_PARAMETERS = ("params:model", "params:evaluation", TRAINING_DEFAULTS)
_SHARED_INPUTS = {"decoded_images", "split", "preprocessing"}


def bound(func: Callable, name: str, **values: Any) -> Callable:
    """``func`` with keyword arguments fixed, named ``name`` for Kedro and kedro viz.

    The wrapper keeps ``func``'s annotations, so Kedro still validates typed parameters.
    """
    wrapper = update_wrapper(partial(func, **values), func)
    wrapper.__name__ = name
    return wrapper


def _resolve_node(variant: str, overrides: str, output: str, name: str) -> Node:
    return Node(
        func=bound(resolve_variant_settings, "resolve_variant_settings", variant=variant),
        inputs=[TRAINING_DEFAULTS, overrides],
        outputs=output,
        name=name,
    )


def training_node_and_data(variant: str) -> tuple[Callable, str]:
    """The training node function of ``variant`` and the dataset it trains on."""
    if VARIANTS[variant] == "features":
        return train_feature_variant, "backbone_features"
    return train_image_variant, "decoded_images"


def variant_template(variant: str, training_settings: str = "training_settings") -> Pipeline:
    """Resolve the settings of ``variant``, train, evaluate and plot; namespaced by the caller.

    Args:
        variant: ``scratch``, ``frozen`` or ``finetune``; its block is ``params:training``.
        training_settings: The dataset the training node reads: ``training_settings``
            (the resolved settings), or one made from them by a later node (an ablation
            cell's settings with the cell's seed).

    Returns:
        The un-namespaced template pipeline.
    """
    train, training_data = training_node_and_data(variant)
    return Pipeline(
        [
            _resolve_node(
                variant, "params:training", "training_settings", "resolve_training_settings_node"
            ),
            Node(
                func=train,
                inputs=[
                    training_data,
                    "split",
                    "preprocessing",
                    "params:model",
                    training_settings,
                ],
                outputs=["model", "training_history", "training_summary"],
                name="train_node",
            ),
            Node(
                func=evaluate_variant,
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


def variant_pipeline(variant: str) -> Pipeline:
    """The template for ``variant`` under its own namespace and parameter block.

    Args:
        variant: ``scratch``, ``frozen`` or ``finetune``.

    Returns:
        The namespaced pipeline.
    """
    _, training_data = training_node_and_data(variant)
    return Pipeline(
        variant_template(variant),
        namespace=variant,
        inputs=_SHARED_INPUTS | {training_data},
        parameters={
            **{shared: shared for shared in SHARED_PARAMETERS},
            "params:training": f"params:{variant}",
        },
    )


def embedding_pipeline() -> Pipeline:
    """Embeds every photo once with the frozen backbone, for every frozen run and cell."""
    return Pipeline(
        [
            _resolve_node(
                FEATURES_VARIANT,
                f"params:{FEATURES_VARIANT}",
                "embedding_settings",
                "resolve_embedding_settings_node",
            ),
            Node(
                func=embed_backbone_features,
                inputs=[
                    "decoded_images",
                    "split",
                    "preprocessing",
                    "params:model",
                    "embedding_settings",
                ],
                outputs="backbone_features",
                name="embed_images_node",
            ),
        ]
    )
