"""Run a pipeline with ``SequentialRunner`` on a catalog of in-memory datasets.

No session, no hooks, no MLflow, no files: the free inputs are ``MemoryDataset``s holding
what the test gives (the parameters are ``project_parameters``' entries), and every dataset
a node writes is kept in memory after the run, intermediate ones included, so that a test
can check the split a later node consumed as well as the pipeline's free outputs.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from kedro.io import AbstractDataset, DataCatalog, MemoryDataset
from kedro.pipeline import Pipeline
from kedro.runner import SequentialRunner


class RetainedMemoryDataset(MemoryDataset):
    """A ``MemoryDataset`` that keeps its data when the runner releases it.

    It hands values on as they are (``copy_mode="assign"``): deep copies of every figure
    and checkpoint took a third of a tiny ablation's run time.
    """

    def __init__(self) -> None:
        super().__init__(copy_mode="assign")

    def _release(self) -> None:
        pass


def memory_catalog(pipeline: Pipeline, inputs: Mapping[str, Any]) -> DataCatalog:
    """A catalog with the given inputs and a retained in-memory dataset for every output.

    Args:
        pipeline: The pipeline to run.
        inputs: Values (or datasets) by name: data and ``params:`` entries. Values are
            handed to nodes as they are (``copy_mode="assign"``), as a catalog's lazy
            partition loaders and checkpoints would be; parameters are deep-copied as
            Kedro's parameter datasets are, so a node that mutates its block is caught.

    Returns:
        The catalog.

    Raises:
        ValueError: If a free input of the pipeline has no value, naming the missing ones.
    """
    missing = sorted(pipeline.inputs() - set(inputs))
    if missing:
        raise ValueError(f"No value for the pipeline's free inputs {missing}.")
    datasets: dict[str, AbstractDataset] = {}
    for name, value in inputs.items():
        if isinstance(value, AbstractDataset):
            datasets[name] = value
        elif name.startswith("params:"):
            datasets[name] = MemoryDataset(value)
        else:
            datasets[name] = MemoryDataset(value, copy_mode="assign")
    for name in pipeline.all_outputs():
        datasets[name] = RetainedMemoryDataset()
    return DataCatalog(datasets)


def run_in_memory(pipeline: Pipeline, inputs: Mapping[str, Any]) -> dict[str, Any]:
    """Runs ``pipeline`` with ``SequentialRunner`` and returns what its nodes wrote.

    Args:
        pipeline: The pipeline (or slice) to run.
        inputs: Values of its free inputs, parameters included (see ``memory_catalog``).

    Returns:
        ``{dataset name: value}`` for every output of every node, free or consumed.
    """
    catalog = memory_catalog(pipeline, inputs)
    SequentialRunner().run(pipeline, catalog)
    return {name: catalog.load(name) for name in sorted(pipeline.all_outputs())}
