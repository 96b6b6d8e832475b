"""``ContentAddressedDataset``: a cache whose partitions are named by a content key.

A partition id is a fingerprint of everything its content depends on (for the decoded
image cache: every image's bytes and label, and the resize settings). A partition that
already exists is therefore still valid, and saving it again is skipped without even
calling its lazy save function: re-running ``kedro run``, a different pipeline or an
ablation cell reuses the work instead of decoding every image again. Kedro's
``PartitionedDataset`` always rewrites; this is the main behaviour added to it. The
other: a missing partition whose lazy value is a ``CacheBuild`` (it knows its estimated
size) is refused before it is built when it would not fit its memory cap or the free
disk.
"""

from __future__ import annotations

import logging
import shutil
from pathlib import Path
from typing import Any

from kedro.io.core import DatasetError
from kedro_datasets.partitions import PartitionedDataset

from transfer_study.training.cache_budget import CacheBuild, CacheTooLargeError

logger = logging.getLogger(__name__)

LOCAL_PROTOCOLS = frozenset({"file", "local"})


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
            self._refuse_what_does_not_fit(missing)
            super().save(missing)

    def _refuse_what_does_not_fit(self, missing: dict[str, Any]) -> None:
        """Checks each sized build against its memory cap and the free disk, before any
        is built; raised as ``DatasetError`` so that Kedro shows the message as it is."""
        builds = [value for value in missing.values() if isinstance(value, CacheBuild)]
        try:
            for build in builds:
                build.refuse_if_over_cap()
            if not builds or self._protocol not in LOCAL_PROTOCOLS:
                return  # a remote store's free space is not ours to measure
            folder = Path(self._path)
            existing = next(p for p in (folder, *folder.parents) if p.exists())
            free = shutil.disk_usage(existing).free
            for build in builds:
                build.refuse_if_short_of_disk(free, str(folder))
                free -= build.estimated_bytes
        except CacheTooLargeError as error:
            raise DatasetError(str(error)) from error
