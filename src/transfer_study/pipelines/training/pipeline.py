"""The study's variants: one template pipeline instantiated under three namespaces, after
a node that says how long the study will take and one that resolves the registry target
(``study_split``, what the variants train on, passes through it).

With ``split.folds: k`` (grouped k-fold cross-validation) the embedding step and the three
variants run once per fold, under the namespaces ``fold_0`` … ``fold_<k−1>`` (``kedro
viz`` shows one box per fold; ``--namespaces=fold_2`` runs one), and one node per
variant pools its folds into the datasets the single-split study writes
(``<variant>.test_predictions``, ``.test_metrics``, ``.training_summary``, ``.model``),
so the report and the inference pipeline read the same names either way.
"""

from __future__ import annotations

from kedro.pipeline import Node, Pipeline

from transfer_study.pipelines.configured import configured_folds
from transfer_study.pipelines.variant_nodes import resolve_registry_target
from transfer_study.pipelines.variant_template import (
    STUDY_SPLIT,
    VARIANTS,
    bound,
    embedding_pipeline,
    variant_pipeline,
)

from .nodes import (
    combine_fold_groupings,
    estimate_study_time,
    pool_variant_folds,
    select_fold_split,
)

# What every fold reads from the study as it is: the decoded photos and their settings.
_SHARED_BY_FOLDS = ("decoded_images", "preprocessing", "sample_grouping")
_POOLED = ("test_predictions", "training_summary", "model")


def fold_namespace(fold: int) -> str:
    """``2`` → ``fold_2``."""
    return f"fold_{fold}"


def _estimate(folds: int | None) -> Node:
    # The estimate needs only the split and the settings, so it runs before the images are
    # decoded and before any training; with folds, the first fold's settings stand for all.
    prefix = f"{fold_namespace(0)}." if folds else ""
    return Node(
        func=bound(estimate_study_time, "estimate_study_time", folds=folds or 1),
        inputs=[
            "split",
            "preprocessing",
            "params:model",
            *(f"{prefix}{variant}.training_settings" for variant in VARIANTS),
        ],
        outputs="study_time_estimate",
        name="estimate_study_time_node",
    )


def _registry_check() -> Node:
    # The split reaches the study only through this node, so nothing is embedded or
    # trained before the hook has checked the registry target (a tracked run).
    return Node(
        func=resolve_registry_target,
        inputs=["split", "params:registry", "params:model"],
        outputs=[STUDY_SPLIT, "registry_target"],
        name="resolve_registry_target_node",
    )


def _study() -> Pipeline:
    return embedding_pipeline() + sum(map(variant_pipeline, VARIANTS), Pipeline([]))


def _fold_pipeline(fold: int, folds: int) -> Pipeline:
    select = Node(
        func=bound(select_fold_split, "select_fold_split", fold=fold, pipeline_folds=folds),
        inputs=["study_split", "params:split"],
        outputs="split",
        name="select_fold_split_node",
    )
    study = Pipeline([select]) + _study()
    return Pipeline(
        study,
        namespace=fold_namespace(fold),
        inputs={"study_split": STUDY_SPLIT, **{name: name for name in _SHARED_BY_FOLDS}},
        parameters={name: name for name in study.inputs() if name.startswith("params:")},
    )


def _pool_node(variant: str, folds: int) -> Node:
    return Node(
        func=pool_variant_folds,
        inputs=[
            "params:evaluation",
            *(f"{fold_namespace(f)}.{variant}.{name}" for f in range(folds) for name in _POOLED),
        ],
        outputs=[
            f"{variant}.test_predictions",
            f"{variant}.test_metrics",
            f"{variant}.training_summary",
            f"{variant}.model",
            f"{variant}.confusion_matrix",
        ],
        name="pool_folds_node",
        namespace=variant,
    )


def cross_validation_pipeline(folds: int) -> Pipeline:
    """The study once per fold, then each variant's folds pooled.

    Args:
        folds: ``k``, at least 2.

    Returns:
        The pipeline.
    """
    groupings = Node(
        func=combine_fold_groupings,
        inputs=[f"{fold_namespace(f)}.grouping" for f in range(folds)],
        outputs="grouping",
        name="combine_fold_groupings_node",
    )
    return (
        Pipeline([_estimate(folds), groupings, _registry_check()])
        + sum((_fold_pipeline(f, folds) for f in range(folds)), Pipeline([]))
        + Pipeline([_pool_node(variant, folds) for variant in VARIANTS])
    )


def create_pipeline(**kwargs) -> Pipeline:
    """Creates the training pipeline: the time estimate, the shared embedding step and the
    three variants; with ``split.folds`` (read from the configuration files), all of it
    once per fold and the folds pooled (``cross_validation_pipeline``).

    Returns:
        The pipeline.
    """
    folds = configured_folds()
    if folds:
        return cross_validation_pipeline(folds)
    study = Pipeline(_study(), inputs={"split": STUDY_SPLIT})
    return Pipeline([_estimate(None), _registry_check()]) + study
