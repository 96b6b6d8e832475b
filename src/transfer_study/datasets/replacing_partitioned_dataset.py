"""``ReplacingPartitionedDataset``: partitions that a save replaces, in a shared folder.

kedro-datasets' ``PartitionedDataset(overwrite=True)`` deletes its whole folder before a
save. The ONNX exports live beside the checkpoints (``data/06_models/<variant>/
model.onnx``), where that would delete every trained model; without ``overwrite``, an
earlier run's export of another variant would linger next to a checkpoint it no longer
matches. This subclass deletes only its own partitions (files ending in its suffix) that
the new save does not write.
"""

from __future__ import annotations

from typing import Any

from kedro_datasets.partitions import PartitionedDataset


class ReplacingPartitionedDataset(PartitionedDataset):
    """A ``PartitionedDataset`` whose save leaves exactly the saved partitions.

    Example:
        ```yaml
        onnx_models:
          type: transfer_study.datasets.ReplacingPartitionedDataset
          path: data/06_models
          dataset: transfer_study.datasets.BinaryFileDataset
          filename_suffix: /model.onnx
        ```
    """

    def save(self, data: dict[str, Any]) -> None:
        self._invalidate_caches()
        keep = {self._partition_to_path(partition) for partition in data}
        for stale in set(self._list_partitions()) - keep:
            self._filesystem.rm(stale)
        super().save(data)
