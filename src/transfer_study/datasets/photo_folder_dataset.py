"""``PhotoFolderDataset``: every file below a folder, as lazily loaded bytes.

It is kedro-datasets' ``PartitionedDataset`` with two differences a user notices: the
partitions default to raw bytes, and a missing or empty folder fails with a message that
says how to point the study at photos instead of a bare "No partitions found".
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from kedro.io.core import DatasetError
from kedro_datasets.partitions import PartitionedDataset

from transfer_study.errors import UserError

from .binary_file_dataset import BinaryFileDataset

HOW_TO_POINT_AT_PHOTOS = (
    "Point the study at a folder of class sub-folders (or with a manifest.csv) with "
    "`kedro run --params=raw_images.path=/path/to/photos`, or create the demo data first "
    "with `kedro run --pipeline=demo_data`."
)


class PhotoFolderError(UserError, DatasetError):
    """The photo folder is missing or empty. A ``DatasetError``, so Kedro passes it on."""


class PhotoFolderDataset(PartitionedDataset):
    """Loads ``{relative path without suffix filter: load function}`` for a photo folder.

    Partition ids are paths relative to ``path`` *including* the file extension, so that
    ``cats/tom.jpg`` and ``cats/tom.png`` stay distinct.

    Example:
        ```yaml
        raw_images:
          type: transfer_study.datasets.PhotoFolderDataset
          path: data/01_raw/demo_fragments
        ```
    """

    def __init__(
        self,
        *,
        path: str,
        dataset: str | type | dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        """Creates the dataset.

        Args:
            path: The photo folder (local path or fsspec URL).
            dataset: Dataset for each file; raw bytes when omitted.
            **kwargs: Passed on to ``PartitionedDataset``.
        """
        super().__init__(path=path, dataset=dataset or BinaryFileDataset, **kwargs)

    def load(self) -> dict[str, Callable[[], Any]]:
        if not self._filesystem.isdir(self._normalized_path):
            raise PhotoFolderError(
                f"Photo folder '{self._path}' does not exist. {HOW_TO_POINT_AT_PHOTOS}"
            )
        try:
            return super().load()
        except DatasetError as error:
            if "No partitions found" not in str(error):
                raise
            raise PhotoFolderError(
                f"Photo folder '{self._path}' contains no files. {HOW_TO_POINT_AT_PHOTOS}"
            ) from error
