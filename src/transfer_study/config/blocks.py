"""Every top-level parameter block and its model, and the check of all of them at once.

Imported by the start-of-run check only: the demo's model lives with the demo renderer,
which imports ``transfer_study.config.base``.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from typing import Any, get_args

from pydantic import BaseModel, ValidationError

from transfer_study.config.demo import DemoConfig

from .ablation import AblationSettings
from .base import PartialSettings, VariantName
from .data import ModelSettings, RawImagesSettings, SplitSettings
from .errors import Locate, ParameterError, Problem, parameter_message, problems_from
from .export import ExportSettings
from .inference import InferenceSettings
from .registry import RegistrySettings
from .study import StudySettings
from .training import (
    EvaluationSettings,
    TrainingSettings,
    VariantOverrides,
    resolve_training_settings,
)

TRAINING_DEFAULTS = "training_defaults"
VARIANT_NAMES: tuple[str, ...] = get_args(VariantName)
PARAMETER_BLOCKS: dict[str, type[BaseModel]] = {
    "model": ModelSettings,
    "raw_images": RawImagesSettings,
    "split": SplitSettings,
    "study": StudySettings,
    TRAINING_DEFAULTS: VariantOverrides,
    **dict.fromkeys(VARIANT_NAMES, VariantOverrides),
    "evaluation": EvaluationSettings,
    "data_size_ablation": AblationSettings,
    "inference": InferenceSettings,
    "export": ExportSettings,
    "registry": RegistrySettings,
    "demo_data": DemoConfig,
}


def check_parameters(params: Mapping[str, Any], locate: Locate | None = None) -> None:
    """Checks every block, and every variant's settings resolved from its defaults.

    Args:
        params: The run's parameters, as the configuration loader gives them.
        locate: Names the file (or ``--params``) that defines a key path.

    Raises:
        ParameterError: Listing every problem: key path, value, what is allowed, where.
    """
    problems = parameter_problems(params)
    if problems:
        raise ParameterError(parameter_message(problems, locate))


def parameter_problems(params: Mapping[str, Any]) -> list[Problem]:
    """Every problem of ``params``: unknown blocks, invalid blocks, incomplete variants."""
    problems: list[Problem] = []
    valid: dict[str, BaseModel] = {}
    for block, value in params.items():
        model = PARAMETER_BLOCKS.get(block)
        if model is None:
            problems.append(_unknown_block(block))
            continue
        try:
            valid[block] = model.model_validate(value)
        except ValidationError as error:
            problems += problems_from(error, model, block)
    if TRAINING_DEFAULTS in params and TRAINING_DEFAULTS not in valid:
        return problems  # the defaults' own problems are listed; resolving adds only noise
    defaults = valid.get(TRAINING_DEFAULTS) or VariantOverrides()
    for variant in VARIANT_NAMES:
        if variant in valid:
            problems += _resolution_problems(variant, defaults, valid[variant])
    return problems


def _unknown_block(block: str) -> Problem:
    close = difflib.get_close_matches(block, PARAMETER_BLOCKS, n=1)
    suggestion = f"did you mean {close[0]}? " if close else ""
    return Problem(
        (block,), f"unknown parameter block; {suggestion}known: {', '.join(PARAMETER_BLOCKS)}"
    )


def _resolution_problems(
    variant: str, defaults: PartialSettings, overrides: PartialSettings
) -> list[Problem]:
    """A variant's settings that its block and the defaults leave missing or invalid,
    each named at the block that set it (or at the variant's block, if neither did)."""
    try:
        resolve_training_settings(variant, defaults, overrides)
    except ValidationError as error:
        found = problems_from(error, TrainingSettings, variant)
    else:
        return []
    problems = []
    for problem in found:
        key = problem.path[1] if len(problem.path) > 1 else None
        block = TRAINING_DEFAULTS if key in defaults.model_fields_set else variant
        if key in overrides.model_fields_set:
            block = variant
        message = problem.message
        if message == "missing":
            message = f"missing: set it in {TRAINING_DEFAULTS} (every variant) or in {variant}"
        problems.append(Problem((block, *problem.path[1:]), message, problem.value, problem.hint))
    return problems
