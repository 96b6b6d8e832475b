"""``OptionalDataset``: an input that may not exist yet, loaded as ``None`` then.

Kedro fails a run before any node starts when an input cannot be loaded, with a message
about the dataset rather than about what the user should do. Some inputs are needed only
in some cases, or their absence has a better explanation than "file not found": the
inference pipeline reads trained models that exist only after ``kedro run``, and a
checkpoint file that exists only when ``inference.model`` names one. Wrapped in this
dataset, such an input reaches the node as ``None`` when it does not exist, and the node
says what to do.
"""

from __future__ import annotations

from copy import deepcopy
from typing import Any

from kedro.io.core import AbstractDataset, DatasetError


class OptionalDataset(AbstractDataset[None, Any]):
    """Loads the wrapped dataset, or ``None`` when it does not exist; read-only.

    With ``lazy: true`` it loads a function that loads the wrapped dataset (still
    ``None`` when it does not exist), so that the node loads it only if it needs it and
    can explain a file that fails to load.

    Example:
        ```yaml
        trained_models:
          type: transfer_study.datasets.OptionalDataset
          dataset:
            type: partitions.PartitionedDataset
            path: data/06_models
            dataset: transfer_study.datasets.TorchDataset
            filename_suffix: /model.pt
        ```
    """

    def __init__(
        self,
        *,
        dataset: str | type | dict[str, Any],
        lazy: bool = False,
        metadata: dict[str, Any] | None = None,
    ) -> None:
        """Creates the wrapper.

        Args:
            dataset: The wrapped dataset: a type (name) or a catalog-style config with
                ``type``. It must implement ``exists``.
            lazy: Load a function that loads the wrapped dataset instead of its data.
            metadata: Arbitrary metadata, ignored by Kedro.
        """
        config = deepcopy(dataset) if isinstance(dataset, dict) else {"type": dataset}
        self._dataset = AbstractDataset.from_config(f"{type(self).__name__}.dataset", config)
        self._lazy = lazy
        self.metadata = metadata

    def load(self) -> Any:
        if not self._dataset.exists():
            return None
        return self._dataset.load if self._lazy else self._dataset.load()

    def save(self, data: None) -> None:
        raise DatasetError(f"{type(self).__name__} is read-only; save to the wrapped dataset.")

    def _exists(self) -> bool:
        # There is always something to load: the data, or None.
        return True

    def _describe(self) -> dict[str, Any]:
        return {"dataset": self._dataset._describe(), "lazy": self._lazy}
