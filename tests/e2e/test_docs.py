"""The documentation matches the configuration."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import yaml

REPO_ROOT = Path(__file__).resolve().parents[2]
REFERENCE = REPO_ROOT / "docs" / "parameters.md"
# Keys nested deeper than this below their group are documented through their parent.
DOCUMENTED_DEPTH = 2


def _keys(tree: dict, prefix: str = "", depth: int = 0) -> Iterator[str]:
    for key, value in tree.items():
        path = f"{prefix}{key}"
        yield path
        if isinstance(value, dict) and depth + 1 < DOCUMENTED_DEPTH:
            yield from _keys(value, f"{path}.", depth + 1)


def _sections() -> dict[str, str]:
    """Maps each group named in a `## ` heading (in backticks) to its section's text."""
    sections: dict[str, str] = {}
    for block in re.split(r"^## ", REFERENCE.read_text(), flags=re.MULTILINE)[1:]:
        heading, _, body = block.partition("\n")
        for group in re.findall(r"`([^`]+)`", heading.split("(")[0]):
            sections[group] = body
    return sections


def test_every_parameter_key_is_in_the_parameters_reference():
    sections = _sections()
    missing = []
    for parameters_file in sorted((REPO_ROOT / "conf" / "base").glob("parameters*.yml")):
        for group, tree in (yaml.safe_load(parameters_file.read_text()) or {}).items():
            if group not in sections:
                missing.append(f"{parameters_file.name}: section for `{group}`")
                continue
            if not isinstance(tree, dict):
                continue
            for key in _keys(tree):
                if f"`{key}`" not in sections[group]:
                    missing.append(f"{parameters_file.name}: `{group}.{key}`")
    assert not missing, "Undocumented in docs/parameters.md:\n" + "\n".join(missing)
