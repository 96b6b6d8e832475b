"""The registry pipeline: the variant chosen on validation, to register after the
comparison (its target was resolved and checked by the training pipeline)."""

from kedro.pipeline import Node, Pipeline

from transfer_study.pipelines.variant_template import study_variants

from .nodes import choose_model_to_register


def create_pipeline(variants: tuple[str, ...] | None = None, **kwargs) -> Pipeline:
    """Creates the registry pipeline.

    Args:
        variants: The study's variants; ``None``: ``study.variants`` as configured.

    Returns:
        One node: the variant the comparison chose, with what its version records.
    """
    variants = variants or study_variants()
    return Pipeline(
        [
            Node(
                func=choose_model_to_register,
                inputs={
                    "comparison": "variant_comparison",
                    "target": "registry_target",
                    **{variant: f"{variant}.training_summary" for variant in variants},
                },
                outputs="model_registration",
                name="choose_model_to_register_node",
            ),
        ]
    )
