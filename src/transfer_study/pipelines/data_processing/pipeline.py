"""The data-processing pipeline: ingest, split, preprocessing, decoded-image cache."""

from kedro.pipeline import Node, Pipeline

from transfer_study.pipelines.configured import configured_folds
from transfer_study.pipelines.variant_template import bound

from .nodes import cache_decoded_images, ingest_images, resolve_preprocessing, split_by_sample


def create_pipeline(**kwargs) -> Pipeline:
    """Creates the data-processing pipeline.

    Returns:
        Nodes from the raw photo folder to the split and the decoded-image cache.
    """
    return Pipeline(
        [
            Node(
                func=ingest_images,
                inputs=["raw_images", "params:raw_images"],
                outputs=["image_index", "data_quality", "sample_grouping"],
                name="ingest_images_node",
            ),
            Node(
                # The folds shape the study's pipeline: the node refuses other folds.
                func=bound(split_by_sample, "split_by_sample", pipeline_folds=configured_folds()),
                inputs=["image_index", "params:split", "params:raw_images"],
                outputs=["split", "split_summary"],
                name="split_by_sample_node",
            ),
            Node(
                func=resolve_preprocessing,
                inputs=["params:model", "image_index"],
                outputs="preprocessing",
                name="resolve_preprocessing_node",
            ),
            Node(
                func=cache_decoded_images,
                inputs=["raw_images", "split", "preprocessing", "params:raw_images"],
                outputs="decoded_images",
                name="cache_decoded_images_node",
            ),
        ]
    )
