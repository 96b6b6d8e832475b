"""Parameters that shape a pipeline, read from the configuration files when it is built.

Kedro builds pipelines before it loads parameters, so a value that decides which nodes
exist (the ablation's grid, the number of cross-validation folds) is read here from the
configuration files (``conf/base`` + ``conf/local``, or the environment named by
``KEDRO_ENV``). A node of the pipeline then checks that the run's parameters say the same,
so a value changed only with ``--params`` or ``--env`` is refused with what to do instead
of silently running another pipeline.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from kedro.config import MissingConfigException
from kedro.framework.project import settings
from kedro.utils import find_kedro_project

from transfer_study.config import ParameterError


def configured_parameters() -> dict[str, Any]:
    """The project's parameters as the configuration files give them."""
    # Kedro sessions (and notebooks in notebooks/) may start below the project root.
    project = find_kedro_project(Path.cwd()) or Path.cwd()
    loader = settings.CONFIG_LOADER_CLASS(
        conf_source=str(project / settings.CONF_SOURCE),
        env=os.environ.get("KEDRO_ENV"),
        **settings.CONFIG_LOADER_ARGS,
    )
    return loader["parameters"]


def configured_folds() -> int | None:
    """``split.folds`` as configured: the number of cross-validation folds, or ``None``."""
    try:
        folds = configured_parameters().get("split", {}).get("folds")
    except MissingConfigException:  # built outside a project (a library user, a test)
        return None
    # Validated with the rest of the block when the run starts (SplitSettings); a value
    # that is not a whole number of at least 2 builds the single-split pipeline meanwhile.
    return folds if isinstance(folds, int) and not isinstance(folds, bool) and folds >= 2 else None


def refuse_changed_folds(configured: int | None, requested: int | None) -> None:
    """Stops a run whose ``split.folds`` differs from the one its pipeline was built with.

    Raises:
        ParameterError: (a ``ValueError``) Saying where to set ``split.folds`` instead.
    """
    if configured != requested:
        raise ParameterError(
            f"split.folds is {requested} for this run but the pipeline was built with "
            f"{configured} (from the configuration files): the number of folds shapes the "
            "pipeline, so it cannot be changed with --params. Set split.folds in "
            "conf/local/parameters.yml (or in an environment chosen with KEDRO_ENV)."
        )


def configured_study_variants(catalogue: tuple[str, ...]) -> tuple[str, ...]:
    """``study.variants`` as configured, in ``catalogue`` order (the report's order).

    Args:
        catalogue: Every variant the project knows, in the order the study lists them.

    Returns:
        The configured variants; all of ``catalogue`` when there is no configuration (a
        pipeline built outside a project) or its list names no known variant. An invalid
        list is reported by the start-of-run check; the estimate node refuses a list that
        differs from the one the pipeline was built with.
    """
    try:
        wanted = configured_parameters().get("study", {}).get("variants")
    except MissingConfigException:
        return catalogue
    if not isinstance(wanted, list):
        return catalogue
    chosen = tuple(variant for variant in catalogue if variant in wanted)
    return chosen or catalogue


def refuse_changed_variants(configured: tuple[str, ...], requested: list[str]) -> None:
    """Stops a run whose ``study.variants`` differs from the one its pipeline was built with.

    Raises:
        ParameterError: (a ``ValueError``) Saying where to set ``study.variants`` instead.
    """
    if set(configured) != set(requested):
        raise ParameterError(
            f"study.variants is {sorted(requested)} for this run but the pipeline was built "
            f"with {sorted(configured)} (from the configuration files): the variants shape "
            "the pipeline, so they cannot be changed with --params. Set study.variants in "
            "conf/local/parameters_training.yml (or in an environment chosen with KEDRO_ENV)."
        )
