"""The comparison report over the study's variants."""

from kedro.pipeline import Node, Pipeline

from transfer_study.pipelines.variant_template import study_variants

from .nodes import compare_variants


def create_pipeline(variants: tuple[str, ...] | None = None, **kwargs) -> Pipeline:
    """Creates the reporting pipeline.

    Args:
        variants: The study's variants; ``None``: ``study.variants`` as configured.

    Returns:
        One node that compares every variant of the study (``study.variants``).
    """
    variants = variants or study_variants()
    per_variant = [
        f"{variant}.{name}"
        for variant in variants
        for name in ("test_metrics", "training_summary", "test_predictions")
    ]
    return Pipeline(
        [
            Node(
                func=compare_variants,
                inputs=["params:model", "params:evaluation", "grouping", *per_variant],
                outputs=[
                    "variant_comparison",
                    "variant_pairs",
                    "variant_comparison_report",
                    "variant_comparison_chart",
                ],
                name="compare_variants_node",
            )
        ]
    )
