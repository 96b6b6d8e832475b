"""``BinaryFileDataset``: a file's raw bytes.

kedro-datasets has text, pickle and format-specific datasets but none that hands a node
the untouched bytes of a file, which ingestion needs to hash files and to decode them
itself (so that a corrupt file becomes a reported row, not a crash while loading).
"""

from __future__ import annotations

from copy import deepcopy
from pathlib import PurePosixPath
from typing import Any

import fsspec
from kedro.io.core import AbstractDataset, get_filepath_str, get_protocol_and_path


class BinaryFileDataset(AbstractDataset[bytes, bytes]):
    """Loads and saves the raw bytes of one file on any fsspec filesystem.

    Example:
        ```yaml
        logo:
          type: transfer_study.datasets.BinaryFileDataset
          filepath: data/01_raw/logo.png
        ```
    """

    def __init__(
        self,
        *,
        filepath: str,
        fs_args: dict[str, Any] | None = None,
        credentials: dict[str, Any] | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> None:
        """Creates a dataset for one file.

        Args:
            filepath: Path to the file, optionally prefixed with a protocol (``s3://``).
            fs_args: Extra arguments for the fsspec filesystem constructor.
            credentials: Credentials for the filesystem.
            metadata: Arbitrary metadata, ignored by Kedro.
        """
        protocol, path = get_protocol_and_path(filepath)
        self._protocol = protocol
        self._filepath = PurePosixPath(path)
        self._fs = fsspec.filesystem(protocol, **deepcopy(credentials or {}), **(fs_args or {}))
        self.metadata = metadata

    def load(self) -> bytes:
        with self._fs.open(get_filepath_str(self._filepath, self._protocol), mode="rb") as file:
            return file.read()

    def save(self, data: bytes) -> None:
        path = get_filepath_str(self._filepath, self._protocol)
        self._fs.mkdirs(str(PurePosixPath(path).parent), exist_ok=True)
        with self._fs.open(path, mode="wb") as file:
            file.write(data)

    def _exists(self) -> bool:
        return self._fs.exists(get_filepath_str(self._filepath, self._protocol))

    def _describe(self) -> dict[str, Any]:
        return {"filepath": self._filepath, "protocol": self._protocol}
