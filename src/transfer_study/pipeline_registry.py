"""Project pipelines."""

from kedro.framework.project import find_pipelines
from kedro.pipeline import Pipeline

# Pipelines that a plain `kedro run` leaves out: they are run by name.
_RUN_BY_NAME_ONLY = ("demo_data", "data_size_ablation", "inference")


def register_pipelines() -> dict[str, Pipeline]:
    """Register the project's pipelines.

    Returns:
        A mapping from pipeline names to ``Pipeline`` objects. ``__default__`` is the
        study; the demo-data generator, the data-size ablation and inference are only
        run by name.
    """
    pipelines = find_pipelines(raise_errors=True)
    pipelines["__default__"] = sum(
        (pipeline for name, pipeline in pipelines.items() if name not in _RUN_BY_NAME_ONLY),
        Pipeline([]),
    )
    return pipelines
