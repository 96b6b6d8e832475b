"""The registry pipeline: name the registered model before training, and register the
variant chosen on validation after the comparison."""

from kedro.pipeline import Node, Pipeline

from transfer_study.pipelines.variant_template import STUDY_SPLIT, VARIANTS

from .nodes import choose_model_to_register, resolve_registry_target


def create_pipeline(**kwargs) -> Pipeline:
    """Creates the registry pipeline.

    Returns:
        Two nodes: the registry target, resolved from the split before the study trains
        on it (``study_split``), and the chosen variant to register.
    """
    return Pipeline(
        [
            Node(
                func=resolve_registry_target,
                inputs=["split", "params:registry", "params:model"],
                outputs=[STUDY_SPLIT, "registry_target"],
                name="resolve_registry_target_node",
            ),
            Node(
                func=choose_model_to_register,
                inputs={
                    "comparison": "variant_comparison",
                    "target": "registry_target",
                    **{variant: f"{variant}.training_summary" for variant in VARIANTS},
                },
                outputs="model_registration",
                name="choose_model_to_register_node",
            ),
        ]
    )
