"""The study's variants (``study.variants``): one template pipeline instantiated under a
namespace per variant, after a node that says how long the study will take and one that
resolves the registry target (``study_split``, what the variants train on, passes
through it).

With ``split.folds: k`` (grouped k-fold cross-validation) the embedding step and the
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
    bound,
    embedding_pipeline,
    study_variants,
    variant_learning_rate_pipeline,
    variant_pipeline,
    variants_needed,
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


def _estimate(folds: int | None, variants: tuple[str, ...]) -> Node:
    # The estimate needs only the split and the settings, so it runs before the images are
    # decoded and before any training; with folds, the first fold's settings stand for all.
    # It also refuses a run whose study.variants differ from the pipeline's.
    prefix = f"{fold_namespace(0)}." if folds else ""
    return Node(
        func=bound(
            estimate_study_time,
            "estimate_study_time",
            folds=folds or 1,
            pipeline_variants=variants,
        ),
        inputs=[
            "split",
            "preprocessing",
            "params:model",
            "params:study",
            *(f"{prefix}{variant}.training_settings" for variant in variants),
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


def _study(variants: tuple[str, ...]) -> Pipeline:
    # A probed variant reads the frozen variant's chosen settings: without frozen in the
    # study, its learning rate is still chosen (cheap, on the cached features).
    return embedding_pipeline() + sum(
        (
            variant_pipeline(v) if v in variants else variant_learning_rate_pipeline(v)
            for v in variants_needed(list(variants))
        ),
        Pipeline([]),
    )


def _fold_pipeline(fold: int, folds: int, variants: tuple[str, ...]) -> Pipeline:
    select = Node(
        func=bound(select_fold_split, "select_fold_split", fold=fold, pipeline_folds=folds),
        inputs=["study_split", "params:split"],
        outputs="split",
        name="select_fold_split_node",
    )
    study = Pipeline([select]) + _study(variants)
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


def cross_validation_pipeline(folds: int, variants: tuple[str, ...]) -> Pipeline:
    """The study once per fold, then each variant's folds pooled.

    Args:
        folds: ``k``, at least 2.
        variants: The study's variants.

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
        Pipeline([_estimate(folds, variants), groupings, _registry_check()])
        + sum((_fold_pipeline(f, folds, variants) for f in range(folds)), Pipeline([]))
        + Pipeline([_pool_node(variant, folds) for variant in variants])
    )


def create_pipeline(variants: tuple[str, ...] | None = None, **kwargs) -> Pipeline:
    """Creates the training pipeline: the time estimate, the shared embedding step and the
    variants of ``study.variants``; with ``split.folds`` (both read from the configuration
    files), all of it once per fold and the folds pooled (``cross_validation_pipeline``).

    Args:
        variants: The study's variants; ``None``: ``study.variants`` as configured.

    Returns:
        The pipeline.
    """
    folds, variants = configured_folds(), variants or study_variants()
    if folds:
        return cross_validation_pipeline(folds, variants)
    study = Pipeline(_study(variants), inputs={"split": STUDY_SPLIT})
    return Pipeline([_estimate(None, variants), _registry_check()]) + study
