"""``TorchDataset``: tensors and plain containers saved with ``torch.save``.

Loading uses ``weights_only=True`` (no arbitrary unpickling) and, for local files,
``mmap=True`` so a multi-gigabyte image cache is paged in on demand, not read whole.
"""

from __future__ import annotations

import io
from copy import deepcopy
from pathlib import PurePosixPath
from typing import Any

import fsspec
import torch
from kedro.io.core import AbstractDataset, get_filepath_str, get_protocol_and_path


class TorchDataset(AbstractDataset[Any, Any]):
    """Saves any ``torch.save``-able object; loads it back safely.

    The file is written under a temporary name and renamed, so an interrupted save never
    leaves a truncated file that later looks complete.

    Example:
        ```yaml
        features:
          type: transfer_study.datasets.TorchDataset
          filepath: data/04_feature/features.pt
          load_args: {mmap: true}
        ```
    """

    DEFAULT_LOAD_ARGS: dict[str, Any] = {"weights_only": True, "mmap": True}

    def __init__(
        self,
        *,
        filepath: str,
        load_args: dict[str, Any] | None = None,
        fs_args: dict[str, Any] | None = None,
        credentials: dict[str, Any] | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> None:
        """Creates a dataset for one ``.pt`` file.

        Args:
            filepath: Path to the file, optionally prefixed with a protocol.
            load_args: Keyword arguments for ``torch.load`` (default ``weights_only=True``,
                ``mmap=True``; ``mmap`` only applies to local files).
            fs_args: Extra arguments for the fsspec filesystem constructor.
            credentials: Credentials for the filesystem.
            metadata: Arbitrary metadata, ignored by Kedro.
        """
        protocol, path = get_protocol_and_path(filepath)
        self._protocol = protocol
        self._filepath = PurePosixPath(path)
        self._fs = fsspec.filesystem(protocol, **deepcopy(credentials or {}), **(fs_args or {}))
        self._load_args = {**self.DEFAULT_LOAD_ARGS, **(load_args or {})}
        self.metadata = metadata

    @property
    def _is_local(self) -> bool:
        return self._protocol in ("file", "local")

    def load(self) -> Any:
        path = get_filepath_str(self._filepath, self._protocol)
        if self._is_local:
            return torch.load(path, map_location="cpu", **self._load_args)
        load_args = {k: v for k, v in self._load_args.items() if k != "mmap"}
        with self._fs.open(path, mode="rb") as file:
            return torch.load(io.BytesIO(file.read()), map_location="cpu", **load_args)

    def save(self, data: Any) -> None:
        path = get_filepath_str(self._filepath, self._protocol)
        partial_path = f"{path}.partial"
        self._fs.mkdirs(str(PurePosixPath(path).parent), exist_ok=True)
        with self._fs.open(partial_path, mode="wb") as file:
            torch.save(data, file)
        self._fs.mv(partial_path, path)

    def _exists(self) -> bool:
        return self._fs.exists(get_filepath_str(self._filepath, self._protocol))

    def _describe(self) -> dict[str, Any]:
        return {
            "filepath": self._filepath,
            "protocol": self._protocol,
            "load_args": self._load_args,
        }
