"""The comparison report over the study's variants."""

from kedro.pipeline import Node, Pipeline

from transfer_study.pipelines.variant_template import VARIANTS

from .nodes import compare_variants


def create_pipeline(**kwargs) -> Pipeline:
    """Creates the reporting pipeline.

    Returns:
        One node that compares every variant of ``variant_template.VARIANTS``.
    """
    per_variant = [
        f"{variant}.{name}"
        for variant in VARIANTS
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
