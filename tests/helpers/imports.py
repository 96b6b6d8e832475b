"""What a module needs at run time, read from its source (``ast``), never by running it.

``third_party_imports`` follows a module's imports through the modules of its own
package that it imports, and maps every third-party import to the distributions that
provide it (``importlib.metadata.packages_distributions``), so that tests can check
requirement lists against the code instead of against a constant.
"""

from __future__ import annotations

import ast
import importlib.metadata
import importlib.util
import sys
from pathlib import Path

_TYPE_CHECKING = "TYPE_CHECKING"


def third_party_imports(module: str) -> dict[str, set[str]]:
    """The third-party imports of ``module`` and of every module of its package it imports.

    Args:
        module: A dotted module name, e.g. ``transfer_study.inference.pyfunc``.

    Returns:
        Each imported top-level name (``PIL``) → the distributions that provide it
        (``{"pillow"}``). Standard-library imports are left out; imports only made for
        type checkers (``if TYPE_CHECKING:``) too.
    """
    package = module.partition(".")[0]
    distributions = importlib.metadata.packages_distributions()
    seen, pending, third_party = set(), [module], set()
    while pending:
        name = pending.pop()
        if name in seen or not _is_module(name):
            continue
        seen.add(name)
        # Importing a module runs its parent packages' __init__ first.
        parents = name.split(".")
        pending += [".".join(parents[:i]) for i in range(1, len(parents))]
        for imported in _imports_of(name):
            top = imported.partition(".")[0]
            if top == package:
                pending.append(imported)
            elif top not in sys.stdlib_module_names:
                third_party.add(top)
    return {top: set(distributions.get(top, ())) for top in sorted(third_party)}


def _is_module(name: str) -> bool:
    """Whether ``name`` is an importable module (not a function or constant in one)."""
    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):
        return False


def _imports_of(module: str) -> set[str]:
    """The modules a module's source imports (``from a import b`` gives ``a`` and ``a.b``)."""
    spec = importlib.util.find_spec(module)
    path = Path(spec.origin)
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    collector = _ImportCollector(package)
    collector.visit(ast.parse(path.read_text(encoding="utf-8"), filename=str(path)))
    return collector.found


class _ImportCollector(ast.NodeVisitor):
    def __init__(self, package: str) -> None:
        self.package = package
        self.found: set[str] = set()

    def visit_If(self, node: ast.If) -> None:
        test = node.test
        name = test.attr if isinstance(test, ast.Attribute) else getattr(test, "id", None)
        for child in node.orelse if name == _TYPE_CHECKING else [*node.body, *node.orelse]:
            self.visit(child)

    def visit_Import(self, node: ast.Import) -> None:
        self.found.update(alias.name for alias in node.names)

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        if node.module == "__future__":
            return
        relative = "." * node.level + (node.module or "")
        base = importlib.util.resolve_name(relative, self.package) if node.level else relative
        self.found.add(base)
        self.found.update(f"{base}.{alias.name}" for alias in node.names)
