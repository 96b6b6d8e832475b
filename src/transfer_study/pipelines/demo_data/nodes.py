"""The node that lays out the demo dataset; ``transfer_study.demo`` renders its photos."""

from __future__ import annotations

from collections.abc import Callable

from PIL import Image

from transfer_study.config.demo import DemoConfig
from transfer_study.demo.renderer import render_fragments


def generate_demo_fragments(params: DemoConfig) -> dict[str, Callable[[], Image.Image]]:
    """Lays out the demo dataset of fragment photos as lazily rendered partitions.

    Args:
        params: ``params:demo_data``: counts, image size, seed, class names, the share of
            ambiguous samples, each class's appearance and the ranges of view and sand.

    Returns:
        ``{"<class>/s<sample:04d>_a<angle:02d>": render}``, where ``render()`` returns that
        RGB photo, so that a ``PartitionedDataset`` renders and saves them one at a time.
    """
    return render_fragments(params)
