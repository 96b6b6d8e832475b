"""Checks every parameter block when a run starts, before any node does work.

Kedro validates the ``params:`` inputs of typed nodes too, but only once it builds the
catalog, and its message names neither the YAML file nor what is allowed. This hook runs
when the context is created and raises one ``ParameterError`` listing every problem
with its key path, value, what is allowed and the file under ``conf/<env>/`` that
defines it, or ``(from --params)``.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from kedro.config import AbstractConfigLoader, MissingConfigException
from kedro.framework.context import KedroContext
from kedro.framework.hooks import hook_impl

from transfer_study.config.blocks import check_parameters
from transfer_study.config.errors import KeyPath

logger = logging.getLogger(__name__)

PARAMETERS = "parameters"
FROM_PARAMS = "from --params"
_CONFIG_SUFFIXES = {".yml", ".yaml", ".json"}


@dataclass(frozen=True)
class ParameterSources:
    """Which file, or ``--params``, defines each key path of the run's parameters.

    Attributes:
        runtime: The ``--params`` of the run, nested.
        files: ``(shown name, content)`` of each parameters file, highest precedence
            first (the run's environment before ``base``).
    """

    runtime: Mapping[str, Any]
    files: tuple[tuple[str, Mapping[str, Any]], ...]

    @classmethod
    def from_loader(cls, loader: AbstractConfigLoader) -> ParameterSources:
        """Reads the parameters files of the loader's base and run environments."""
        root = Path(str(loader.conf_source))
        base_env = getattr(loader, "base_env", None) or "base"
        run_env = loader.env or getattr(loader, "default_run_env", None) or base_env
        patterns = getattr(loader, "config_patterns", {}).get(PARAMETERS, ["parameters*"])
        envs = [run_env, base_env] if run_env != base_env else [base_env]
        files = tuple(
            (f"{root.name}/{env}/{path.relative_to(root / env).as_posix()}", content)
            for env in envs
            for path in _matching_files(root / env, patterns)
            if isinstance(content := _read(path), Mapping)
        )
        return cls(runtime=loader.runtime_params or {}, files=files)

    def describe(self, path: KeyPath) -> str:
        """``from --params``, or the file that defines most of ``path`` (the run's
        environment winning ties, as it wins the merge)."""
        keys = [part for part in path if isinstance(part, str)]
        best_name, best_depth = "", 0
        for name, content in self.files:
            depth = _depth(content, keys)
            if depth > best_depth:
                best_name, best_depth = name, depth
        if _depth(self.runtime, keys) == len(keys):
            # A whole block checked as one (e.g. two fractions that must sum below 1)
            # may mix values from a file and from --params.
            partly = isinstance(_value(self.runtime, keys), Mapping) and best_name
            return f"{best_name}, {FROM_PARAMS}" if partly else FROM_PARAMS
        return best_name or "in no parameters file"


class ParameterCheckHook:
    """Validates every parameter block as soon as the run's context exists."""

    @hook_impl(tryfirst=True)  # before any other hook reads the parameters
    def after_context_created(self, context: KedroContext) -> None:
        """Raises ``ParameterError`` if any parameter is unknown, missing or invalid."""
        loader = context.config_loader
        try:
            params = loader[PARAMETERS]
        except MissingConfigException:
            return
        check_parameters(params, ParameterSources.from_loader(loader).describe)
        logger.info("Checked %d parameter blocks.", len(params))


def _matching_files(folder: Path, patterns: list[str]) -> list[Path]:
    if not folder.is_dir():
        return []
    found = {
        path
        for pattern in patterns
        for path in folder.glob(pattern)
        if path.is_file() and path.suffix in _CONFIG_SUFFIXES
    }
    return sorted(found)


def _read(path: Path) -> Any:
    try:
        return yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError):  # Kedro itself reports unreadable files
        return None


def _value(tree: Any, keys: list[str]) -> Any:
    for key in keys:
        tree = tree[key]
    return tree


def _depth(tree: Any, keys: list[str]) -> int:
    """How many leading ``keys`` exist as nested keys of ``tree``."""
    depth = 0
    for key in keys:
        if not isinstance(tree, Mapping) or key not in tree:
            break
        tree, depth = tree[key], depth + 1
    return depth
