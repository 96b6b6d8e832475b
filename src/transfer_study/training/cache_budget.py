"""How big a cache entry will be, checked before it is built rather than halfway through.

The decoded-image cache holds every photo as ``3 × S × S`` bytes (``S`` the resize size)
in one tensor, written to disk and held in memory whole while the variants train; the
frozen variant's features add ``feature_dim`` floats per photo and augmented view. A
folder too big for the machine used to fail after minutes of decoding (out of memory, or
a disk full mid-write). A ``CacheBuild`` carries its entry's estimated size, so that the
build refuses a size over ``raw_images.max_cache_gb`` and ``ContentAddressedDataset``
refuses one over the free disk, before either decodes anything. An entry that already
exists is never built, so it is never checked.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property
from typing import Any

from transfer_study.errors import UserError

BYTES_PER_GB = 10**9  # decimal, as disk tools report free space
RGB_CHANNELS = 3
FLOAT32_BYTES = 4


class CacheTooLargeError(UserError, RuntimeError):
    """A cache entry would not fit the memory cap or the free disk; nothing was built."""


def decoded_images_bytes(n_photos: int, side: int) -> int:
    """The bytes of ``n_photos`` decoded as ``uint8`` RGB at ``side × side`` pixels."""
    return n_photos * RGB_CHANNELS * side * side


def features_bytes(n_photos: int, feature_dim: int, augmented_views: int) -> int:
    """The bytes of float32 features of ``n_photos``, plus ``augmented_views`` views each."""
    return n_photos * feature_dim * FLOAT32_BYTES * (1 + augmented_views)


def gigabytes(n_bytes: float) -> str:
    """``9_830_400_000`` → ``"9.83 GB"``, to three significant digits."""
    return f"{n_bytes / BYTES_PER_GB:.3g} GB"


@dataclass(frozen=True)
class CacheBuild:
    """A cache entry's lazy build, with its estimated size checked before it runs.

    Callable like the plain function a node returns for ``ContentAddressedDataset``, which
    calls it only for an entry that does not exist yet.

    Attributes:
        build: Computes the entry.
        estimate: Its size in bytes (called at most once, and only when the entry is
            missing: estimating the features builds the backbone).
        max_bytes: The memory cap (``raw_images.max_cache_gb``); ``None``: none.
        what: The entry in words, e.g. ``"the decoded-image cache of 1200 photos at
            256 px"``.
        advice: What makes it smaller, e.g. ``"a smaller model.image_size"``.
    """

    build: Callable[[], Any]
    estimate: Callable[[], int]
    max_bytes: int | None
    what: str
    advice: str

    @cached_property
    def estimated_bytes(self) -> int:
        """The entry's estimated size in bytes."""
        return self.estimate()

    def __call__(self) -> Any:
        """Builds the entry, unless its estimate is over the memory cap.

        Raises:
            CacheTooLargeError: Over ``max_bytes``; the message says what to do.
        """
        self.refuse_if_over_cap()
        return self.build()

    def refuse_if_over_cap(self) -> None:
        """Refuses an entry whose estimate is over the memory cap.

        Raises:
            CacheTooLargeError: With the estimate, the cap and what to do.
        """
        if self.max_bytes is not None and self.estimated_bytes > self.max_bytes:
            self._refuse(
                f"more than raw_images.max_cache_gb = {self.max_bytes / BYTES_PER_GB:g} GB "
                "(the run holds it in memory whole)",
                "or raise raw_images.max_cache_gb if the machine has the memory",
            )

    def refuse_if_short_of_disk(self, free_bytes: int, folder: str) -> None:
        """Refuses an entry larger than the free space where it would be written.

        Args:
            free_bytes: Free bytes on the disk of ``folder``.
            folder: The cache folder, named in the message.

        Raises:
            CacheTooLargeError: With the estimate, the free space and what to do.
        """
        if self.estimated_bytes > free_bytes:
            self._refuse(
                f"more than the {gigabytes(free_bytes)} free on the disk of {folder}",
                f"or free disk space (old entries in {folder} can be deleted)",
            )

    def _refuse(self, limit: str, last_resort: str) -> None:
        raise CacheTooLargeError(
            f"{self.what[0].upper()}{self.what[1:]} would take about "
            f"{gigabytes(self.estimated_bytes)}, {limit}; nothing has been built. "
            f"To fit: {self.advice}, {last_resort}."
        )
