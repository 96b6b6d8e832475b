"""Project pipelines."""

from kedro.framework.project import find_pipelines
from kedro.pipeline import Pipeline

from transfer_study.pipelines import data_processing
from transfer_study.pipelines.data_size_ablation.pipeline import configured_grid
from transfer_study.pipelines.variant_template import (
    embedding_pipeline,
    variant_learning_rate_pipeline,
    variants_needed,
)

# Pipelines that a plain `kedro run` leaves out: they are run by name.
_RUN_BY_NAME_ONLY = ("demo_data", "data_size_ablation", "inference")


def register_pipelines() -> dict[str, Pipeline]:
    """Register the project's pipelines.

    Returns:
        A mapping from pipeline names to ``Pipeline`` objects. ``__default__`` is the
        study, with its registration and ONNX export; the demo-data generator, the
        data-size ablation and inference are only run by name. The ablation runs after
        data processing and the embedding step of the study, whose near-copy check every
        cell waits for (through the learning rates the study's own nodes choose, which
        read the checked split).
    """
    # `kedro run --pipeline=<name>` makes find_pipelines load only the named pipelines
    # (Kedro ≥ 1.7), so data processing is built here rather than looked up.
    pipelines = find_pipelines(raise_errors=True)
    pipelines["__default__"] = sum(
        (pipeline for name, pipeline in pipelines.items() if name not in _RUN_BY_NAME_ONLY),
        Pipeline([]),
    )
    if "data_size_ablation" in pipelines:
        grid = configured_grid()
        # The embedding runs whatever the grid: the near-copy check reads its features. A
        # probed variant (fine-tune) also needs the frozen variant's chosen settings,
        # whether or not the grid trains frozen cells.
        shared = (
            data_processing.create_pipeline()
            + embedding_pipeline()
            + sum(
                (variant_learning_rate_pipeline(v) for v in variants_needed(grid["variants"])),
                Pipeline([]),
            )
        )
        pipelines["data_size_ablation"] = shared + pipelines["data_size_ablation"]
    return pipelines
