"""The ``demo_data`` pipeline: renders the embedded demo dataset of fragment photos."""

from kedro.pipeline import Node, Pipeline

from .nodes import generate_demo_fragments


def create_pipeline(**kwargs) -> Pipeline:
    """Creates the demo-data pipeline.

    Args:
        **kwargs: Unused; accepted for Kedro's ``find_pipelines``.

    Returns:
        One node that lays out ``demo_fragments`` as lazily rendered photos.
    """
    return Pipeline(
        [
            Node(
                func=generate_demo_fragments,
                inputs="params:demo_data",
                outputs="demo_fragments",
                name="generate_demo_fragments_node",
            ),
        ]
    )
