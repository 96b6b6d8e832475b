"""``ContentAddressedDataset``: a cache whose partitions are named by a content key.

A partition id is a fingerprint of everything its content depends on (for the decoded
image cache: every image's bytes and label, and the resize settings). A partition that
already exists is therefore still valid, and saving it again is skipped without even
calling its lazy save function: re-running ``kedro run``, a different pipeline or an
ablation cell reuses the work instead of decoding every image again. Kedro's
``PartitionedDataset`` always rewrites; this is the one behaviour added to it.
"""

from __future__ import annotations

import logging
from typing import Any

from kedro_datasets.partitions import PartitionedDataset

logger = logging.getLogger(__name__)


class ContentAddressedDataset(PartitionedDataset):
    """A ``PartitionedDataset`` that never rebuilds a partition that already exists.

    Example:
        ```yaml
        decoded_images:
          type: transfer_study.datasets.ContentAddressedDataset
          path: data/04_feature/decoded_images
          dataset: transfer_study.datasets.TorchDataset
          filename_suffix: .pt
        ```
    """

    def save(self, data: dict[str, Any]) -> None:
        self._invalidate_caches()
        existing = {self._path_to_partition(path) for path in self._list_partitions()}
        missing = {}
        for key, value in data.items():
            if key in existing:
                logger.info("Reusing cached '%s' from %s", key, self._path)
            else:
                missing[key] = value
        if missing:
            super().save(missing)
