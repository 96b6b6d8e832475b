"""What the study and the data-size ablation share: the variants, the template pipeline
of one variant (resolve its settings → train → evaluate → plot curves) and the frozen
variant's embedding step."""

from __future__ import annotations

from collections.abc import Callable
from functools import partial, update_wrapper
from typing import Any

from kedro.pipeline import Node, Pipeline

from .configured import configured_study_variants
from .variant_nodes import (
    check_near_copies,
    choose_feature_variant_lr,
    choose_image_variant_lr,
    choose_partial_variant_lr,
    embed_backbone_features,
    embed_intermediate_features,
    evaluate_variant,
    plot_training_curves,
    probe_variant_head,
    resolve_variant_settings,
    train_feature_variant,
    train_image_variant,
    train_partial_variant,
)

IMAGES, FEATURES, INTERMEDIATE = "images", "features", "intermediate"
# Variant name → trains on cached images, on backbone features embedded once, or (partial
# fine-tuning) on the early stages' outputs computed once per photo and view.
VARIANTS: dict[str, str] = {
    "scratch": IMAGES,
    "frozen": FEATURES,
    "finetune_top": INTERMEDIATE,
    "finetune": IMAGES,
}
FEATURES_VARIANT = "frozen"  # whose settings embed the photos once for every frozen run
# Variants whose head starts as a probe on the cached features (``head_init: probe``),
# trained with the frozen variant's settings and learning rate: the probe's inputs.
PROBED_VARIANTS = ("finetune_top", "finetune")
# What each kind of variant trains on, its training node and its learning-rate node.
_TRAINING = {
    IMAGES: ("decoded_images", train_image_variant, choose_image_variant_lr),
    FEATURES: ("backbone_features", train_feature_variant, choose_feature_variant_lr),
    INTERMEDIATE: ("intermediate_features", train_partial_variant, choose_partial_variant_lr),
}
PROBE_INPUTS = {
    "probe_settings": f"{FEATURES_VARIANT}.training_settings",
    "probe_learning_rate": f"{FEATURES_VARIANT}.learning_rate",
}
TRAINING_DEFAULTS = "params:training_defaults"
# Kept outside the variant's namespace when it is applied.
SHARED_PARAMETERS = ("params:model", "params:evaluation", "params:raw_images", TRAINING_DEFAULTS)
# The split after the near-copy check: what every variant trains and is evaluated on.
CHECKED_SPLIT = "checked_split"
# The split once the registry target is checked (the registry pipeline): what the study,
# unlike the ablation, embeds and trains on, so no study training starts before it.
STUDY_SPLIT = "study_split"


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
    data, train, _ = _TRAINING[VARIANTS[variant]]
    return train, data


def needs_features(variant: str) -> bool:
    """Whether ``variant`` reads the cached backbone features (to train, or to probe)."""
    return VARIANTS[variant] == FEATURES or variant in PROBED_VARIANTS


def variants_needed(variants: list[str]) -> list[str]:
    """``variants`` and the variant whose chosen settings probe them, in study order."""
    wanted = set(variants) | ({FEATURES_VARIANT} if set(variants) & set(PROBED_VARIANTS) else set())
    return [variant for variant in VARIANTS if variant in wanted]


def study_variants() -> tuple[str, ...]:
    """The variants ``kedro run`` trains and compares: ``study.variants`` as configured,
    in ``VARIANTS`` order."""
    return configured_study_variants(tuple(VARIANTS))


def probe_node(training_settings: str) -> Node:
    """Trains fine-tune's starting head on the cached features (``probe_head``)."""
    return Node(
        func=probe_variant_head,
        inputs=[
            "backbone_features",
            "split",
            "preprocessing",
            "params:model",
            training_settings,
            *PROBE_INPUTS,
        ],
        outputs="probe_head",
        name="probe_head_node",
    )


def _probe(variant: str) -> list[str]:
    return ["probe_head"] if variant in PROBED_VARIANTS else []


def _intermediate_node() -> Node:
    """Computes a partial fine-tune's frozen early stages once per photo and view."""
    return Node(
        func=embed_intermediate_features,
        inputs=[
            "decoded_images",
            "split",
            "preprocessing",
            "params:model",
            "training_settings",
            "params:raw_images",
        ],
        outputs="intermediate_features",
        name="embed_intermediate_node",
    )


def learning_rate_pipeline(variant: str) -> Pipeline:
    """Chooses ``variant``'s learning rate (``lr: auto``: a range test), un-namespaced.

    Its output ``learning_rate`` is what the study's training and every ablation cell of
    the variant train with: one search per variant, none per cell. A probed variant
    probes its head first (``probe_head``), and the search starts from it. A partial
    fine-tune first computes its frozen early stages once (``intermediate_features``), and
    its cells reuse them.
    """
    training_data, _, choose = _TRAINING[VARIANTS[variant]]
    probe = [probe_node("training_settings")] if variant in PROBED_VARIANTS else []
    embed = [_intermediate_node()] if VARIANTS[variant] == INTERMEDIATE else []
    return Pipeline(
        [
            _resolve_node(
                variant, "params:training", "training_settings", "resolve_training_settings_node"
            ),
            *embed,
            *probe,
            Node(
                func=choose,
                inputs=[
                    training_data,
                    "split",
                    "preprocessing",
                    "params:model",
                    "training_settings",
                    *_probe(variant),
                ],
                outputs=["learning_rate", "lr_range_test"],
                name="choose_learning_rate_node",
            ),
        ]
    )


def variant_template(variant: str, training_settings: str = "training_settings") -> Pipeline:
    """Resolve the settings of ``variant``, train, evaluate and plot; namespaced by the caller.

    Args:
        variant: ``scratch``, ``frozen``, ``finetune_top`` or ``finetune``; its block is
            ``params:training``.
        training_settings: The dataset the training node reads: ``training_settings``
            (the resolved settings), or one made from them by a later node (an ablation
            cell's settings with the cell's seed).

    Returns:
        The un-namespaced template pipeline.
    """
    train, training_data = training_node_and_data(variant)
    return Pipeline(
        [
            Node(
                func=train,
                inputs=[
                    training_data,
                    "split",
                    "preprocessing",
                    "params:model",
                    training_settings,
                    "learning_rate",
                    *_probe(variant),
                ],
                outputs=["model", "training_history", "training_summary", "seed_models"],
                name="train_node",
            ),
            Node(
                func=evaluate_variant,
                inputs=["model", "seed_models", "decoded_images", "split", "params:evaluation"],
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


def _namespaced(pipeline: Pipeline, variant: str) -> Pipeline:
    """``pipeline`` under the variant's namespace, its block as ``params:training``."""
    return Pipeline(
        pipeline,
        namespace=variant,
        # Every free input (decoded images, split, features, ...) is shared by the study;
        # a probe reads the frozen variant's chosen settings; the split is the one the
        # near-copy check passed, so no variant trains before it.
        inputs={
            name: CHECKED_SPLIT if name == "split" else PROBE_INPUTS.get(name, name)
            for name in pipeline.inputs()
            if not name.startswith("params:")
        },
        parameters={
            **{shared: shared for shared in SHARED_PARAMETERS if shared in pipeline.inputs()},
            "params:training": f"params:{variant}",
        },
    )


def variant_learning_rate_pipeline(variant: str) -> Pipeline:
    """``learning_rate_pipeline`` under the variant's namespace: ``<variant>.learning_rate``."""
    return _namespaced(learning_rate_pipeline(variant), variant)


def variant_pipeline(variant: str) -> Pipeline:
    """The variant's learning-rate choice and template, under its namespace and block.

    Args:
        variant: ``scratch``, ``frozen``, ``finetune_top`` or ``finetune``.

    Returns:
        The namespaced pipeline.
    """
    return _namespaced(learning_rate_pipeline(variant) + variant_template(variant), variant)


def embedding_pipeline() -> Pipeline:
    """Embeds every photo once with the frozen backbone, for every frozen run and cell,
    then checks on those features that no test photo has a near-copy in training."""
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
                    "params:raw_images",
                ],
                outputs="backbone_features",
                name="embed_images_node",
            ),
            Node(
                func=check_near_copies,
                inputs=[
                    "backbone_features",
                    "split",
                    "preprocessing",
                    "params:model",
                    "embedding_settings",
                    "params:raw_images",
                    "sample_grouping",
                ],
                outputs=[CHECKED_SPLIT, "grouping"],
                name="check_near_copies_node",
            ),
        ]
    )
