"""Partial fine-tuning (the ``finetune_top`` variant): the backbone's later stages and the
head train on the early stages' cached outputs (``training.intermediate``).

The learning-rate choice and the training are fine-tune's own (``training.variants``);
only what they train on differs, so the two variants compare like for like.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import pandas as pd

from transfer_study.config import ModelSettings, TrainingSettings
from transfer_study.models.preprocessing import Preprocessing
from transfer_study.training.setup import intermediate_setup
from transfer_study.training.variants import HeadState, _choose_lr, _train, with_head

Cache = Mapping[str, Callable[[], dict]]


def choose_lr_on_intermediate(
    intermediate_features: Cache,
    split: pd.DataFrame,
    preprocessing: Preprocessing,
    model: ModelSettings,
    settings: TrainingSettings,
    head: HeadState | None = None,
) -> tuple[dict[str, Any], pd.DataFrame]:
    """The learning rate of the partial fine-tune, from the (probed) model it starts from.

    Returns:
        The choice (``lr``, ``source`` and the search's figures) and its curve or table.
    """
    setup = intermediate_setup(intermediate_features, split, preprocessing, model, settings)
    setup = with_head(setup, head)
    return _choose_lr(setup, settings)


def train_on_intermediate(
    intermediate_features: Cache,
    split: pd.DataFrame,
    preprocessing: Preprocessing,
    model: ModelSettings,
    settings: TrainingSettings,
    head: HeadState | None = None,
) -> tuple[dict[str, Any], pd.DataFrame, dict[str, Any]]:
    """Trains the backbone's last ``settings.trainable_stages`` stages and the head, to
    convergence, on the cached early-stage outputs.

    Args:
        intermediate_features: The cache written by ``embed_intermediate``.
        split: The split table.
        preprocessing: Input size and normalisation (stored in the checkpoint).
        model: The ``model`` parameters (``backbone``).
        settings: The partial fine-tune's settings, with a numeric ``lr``.
        head: The head to start from (``probe_head``); ``None``: a random one.

    Returns:
        The checkpoint (the whole classifier: early stages as pretrained, later stages and
        head as trained), the history (one row per validation) and a training summary.
    """
    setup = intermediate_setup(intermediate_features, split, preprocessing, model, settings)
    setup = with_head(setup, head)
    return _train(setup, split, preprocessing, model, settings, validate_start=head is not None)
