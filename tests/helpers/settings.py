"""The study's typed settings, read from conf/base as a run resolves them."""

from __future__ import annotations

from pathlib import Path

import yaml

from transfer_study.config import TrainingSettings, VariantOverrides, resolve_training_settings

REPO_ROOT = Path(__file__).resolve().parents[2]


def study_training_settings(variant: str) -> TrainingSettings:
    """``variant``'s settings: conf/base's ``training_defaults`` updated with its block."""
    blocks = yaml.safe_load((REPO_ROOT / "conf/base/parameters_training.yml").read_text())
    return resolve_training_settings(
        variant,
        VariantOverrides.model_validate(blocks["training_defaults"]),
        VariantOverrides.model_validate(blocks[variant]),
    )
