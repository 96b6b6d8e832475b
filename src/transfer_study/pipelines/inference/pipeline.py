"""Classify a folder of new photos with a trained model; run by name only."""

from kedro.pipeline import Node, Pipeline

from .nodes import classify_photos, select_model


def create_pipeline(**kwargs) -> Pipeline:
    """Creates the inference pipeline.

    Returns:
        Two nodes: pick the model ``inference.model`` names, then classify every file of
        the folder ``inference.photos``.
    """
    return Pipeline(
        [
            Node(
                func=select_model,
                inputs=[
                    "trained_models",
                    "latest_variant_comparison",
                    "inference_checkpoint_file",
                    "params:inference",
                ],
                outputs="inference_model",
                name="select_model_node",
            ),
            Node(
                func=classify_photos,
                inputs=["inference_photos", "inference_model", "params:inference"],
                outputs="inference_predictions",
                name="classify_photos_node",
            ),
        ]
    )
