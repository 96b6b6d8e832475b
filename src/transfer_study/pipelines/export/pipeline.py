"""ONNX export of the study's chosen model: part of `kedro run`, or alone with
`kedro run --pipeline=export` after a study."""

from kedro.pipeline import Node, Pipeline

from transfer_study.pipelines.variant_template import study_variants

from .nodes import export_to_onnx


def create_pipeline(variants: tuple[str, ...] | None = None, **kwargs) -> Pipeline:
    """Creates the export pipeline.

    Args:
        variants: The study's variants; ``None``: ``study.variants`` as configured.

    Returns:
        One node: the checkpoint ``export.model`` names (by default the variant chosen on
        validation) to ONNX, checked against PyTorch on the test photos.
    """
    variants = variants or study_variants()
    return Pipeline(
        [
            Node(
                func=export_to_onnx,
                inputs={
                    "comparison": "variant_comparison",
                    "decoded_images": "decoded_images",
                    "split": "split",
                    "params": "params:export",
                    **{variant: f"{variant}.model" for variant in variants},
                },
                outputs=["onnx_models", "onnx_export"],
                name="export_to_onnx_node",
            )
        ]
    )
