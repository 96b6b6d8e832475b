"""Typed parameters: one pydantic model per block of ``conf/<env>/parameters*.yml``.

Nodes declare these models in their signatures; Kedro validates ``params:`` inputs
against them and passes the instances. ``transfer_study.config_check`` checks every
block when a run starts, before any node, with messages that name the YAML file.
The YAML files hold the values (and so the defaults); the models hold only the rules.
"""

from .ablation import AblationGrid, AblationSettings, ReportSettings
from .base import Device, Settings, VariantName
from .data import ModelSettings, RawImagesSettings, SplitSettings
from .errors import ParameterError, parse_settings
from .export import ExportSettings
from .inference import InferenceSettings
from .registry import RegistrySettings
from .study import StudySettings
from .training import (
    Augmentation,
    EvaluationSettings,
    HeadSettings,
    TrainingSettings,
    VariantOverrides,
    resolve_training_settings,
    with_overrides,
)

__all__ = [
    "AblationGrid",
    "AblationSettings",
    "Augmentation",
    "Device",
    "EvaluationSettings",
    "ExportSettings",
    "HeadSettings",
    "InferenceSettings",
    "ModelSettings",
    "ParameterError",
    "RawImagesSettings",
    "RegistrySettings",
    "ReportSettings",
    "Settings",
    "SplitSettings",
    "StudySettings",
    "TrainingSettings",
    "VariantName",
    "VariantOverrides",
    "parse_settings",
    "resolve_training_settings",
    "with_overrides",
]
