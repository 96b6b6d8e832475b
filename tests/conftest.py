"""Shared fixtures: tiny photo folders written on the fly, never downloaded."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from tests.helpers.photos import write_photo_folder


@pytest.fixture
def photo_folder(tmp_path: Path) -> Callable[..., Path]:
    """Returns a function that writes a photo folder under ``tmp_path``."""

    def make(
        samples_per_class: dict[str, int] | None = None, n_angles: int = 2, name: str = "photos"
    ) -> Path:
        return write_photo_folder(
            tmp_path / name, samples_per_class or {"cat": 6, "dog": 6}, n_angles
        )

    return make
