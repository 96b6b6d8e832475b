"""The house rules of docs/architecture.md, checked on the source tree itself.

Each rule reads the code as text (``ast``), so a new module that breaks one fails here
with the file and the offending import or size, before a reviewer has to notice.
"""

from __future__ import annotations

import ast
import json
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
PACKAGE = REPO_ROOT / "src" / "transfer_study"
PIPELINES = PACKAGE / "pipelines"
MAX_MODULE_LINES = 400
MAX_NODES_LINES = 200
# The layers that know nothing of Kedro: nodes call them, they never call back.
LIBRARY_PACKAGES = ("config", "demo", "evaluation", "inference", "models", "photos", "training")
LIBRARY_MODULES = ("images.py",)


def _modules(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*.py") if "__pycache__" not in p.parts)


def _imported_modules(source: str, package: str | None = None) -> set[str]:
    """Absolute names of every module ``source`` imports (relative imports resolved)."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level and package:
                base = package.rsplit(".", node.level - 1)[0]
                module = f"{base}.{node.module}" if node.module else base
            else:
                module = node.module or ""
            names.add(module)
            names.update(f"{module}.{alias.name}" for alias in node.names)
    return names


def _dotted(path: Path) -> str:
    relative = path.relative_to(REPO_ROOT / "src").with_suffix("")
    parts = list(relative.parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _package(path: Path) -> str:
    """The package that relative imports in ``path`` start from."""
    module = _dotted(path)
    return module if path.name == "__init__.py" else module.rpartition(".")[0]


def _pipeline_package(module: str) -> str | None:
    """``transfer_study.pipelines.training.nodes`` → ``training``; shared modules → None."""
    parts = module.split(".")
    if len(parts) >= 3 and parts[:2] == ["transfer_study", "pipelines"]:
        return parts[2] if (PIPELINES / parts[2]).is_dir() else None
    return None


@pytest.mark.parametrize("path", _modules(PACKAGE), ids=lambda p: str(p.relative_to(PACKAGE)))
def test_no_source_module_is_over_400_lines(path: Path):
    lines = len(path.read_text().splitlines())
    assert lines <= MAX_MODULE_LINES, f"{path.relative_to(REPO_ROOT)} has {lines} lines"


@pytest.mark.parametrize("path", sorted(PIPELINES.glob("*/nodes.py")), ids=lambda p: p.parent.name)
def test_nodes_modules_are_thin_and_hold_only_functions(path: Path):
    tree = ast.parse(path.read_text())
    lines = len(path.read_text().splitlines())
    classes = [node.name for node in tree.body if isinstance(node, ast.ClassDef)]
    assert lines <= MAX_NODES_LINES, f"{path.relative_to(REPO_ROOT)} has {lines} lines"
    assert not classes, f"{path.relative_to(REPO_ROOT)} defines classes {classes}"


def test_every_public_function_of_a_nodes_module_is_a_node():
    pipeline_sources = "\n".join(p.read_text() for p in PIPELINES.rglob("pipeline*.py"))
    pipeline_sources += (PIPELINES / "variant_template.py").read_text()
    idle = []
    for path in [*PIPELINES.glob("*/nodes.py"), PIPELINES / "variant_nodes.py"]:
        for node in ast.parse(path.read_text()).body:
            is_public = isinstance(node, ast.FunctionDef) and not node.name.startswith("_")
            if is_public and node.name not in pipeline_sources:
                idle.append(f"{path.relative_to(REPO_ROOT)}:{node.name}")
    assert not idle, f"functions in a nodes module that no pipeline uses: {idle}"


def test_no_pipeline_package_imports_another():
    crossings = []
    for path in _modules(PIPELINES):
        own = _pipeline_package(_dotted(path))
        for module in _imported_modules(path.read_text(), _package(path)):
            other = _pipeline_package(module)
            if other is not None and other != own:
                crossings.append(f"{path.relative_to(REPO_ROOT)} imports {module}")
    assert not crossings, "\n".join(crossings)


def test_the_library_layer_imports_neither_kedro_nor_the_pipelines():
    library = [p for name in LIBRARY_PACKAGES for p in _modules(PACKAGE / name)]
    library += [PACKAGE / name for name in LIBRARY_MODULES if (PACKAGE / name).exists()]
    offences = []
    for path in library:
        for module in _imported_modules(path.read_text(), _package(path)):
            if module.split(".")[0] in ("kedro", "kedro_mlflow", "kedro_datasets") or (
                module.startswith("transfer_study.pipelines")
            ):
                offences.append(f"{path.relative_to(REPO_ROOT)} imports {module}")
    assert not offences, "\n".join(offences)


def _notebook_sources() -> list[tuple[str, str]]:
    sources = []
    for notebook in sorted((REPO_ROOT / "notebooks").glob("*.ipynb")):
        cells = json.loads(notebook.read_text())["cells"]
        code = "\n".join(
            "".join(cell["source"])
            for cell in cells
            if cell["cell_type"] == "code"
            # IPython magics are not Python.
        )
        code = "\n".join(line for line in code.splitlines() if not line.startswith("%"))
        sources.append((str(notebook.relative_to(REPO_ROOT)), code))
    return sources


def test_benchmarks_and_notebooks_use_only_the_library_layers_public_names():
    sources = [
        (str(p.relative_to(REPO_ROOT)), p.read_text())
        for p in sorted((REPO_ROOT / "benchmarks").glob("*.py"))
    ] + _notebook_sources()
    offences = []
    for name, source in sources:
        for module in _imported_modules(source):
            parts = module.split(".")
            if parts[0] != "transfer_study":
                continue
            if "pipelines" in parts or any(part.startswith("_") for part in parts[1:]):
                offences.append(f"{name} imports {module}")
    assert not offences, "\n".join(offences)


def test_no_test_module_imports_another_test_module():
    offences = []
    for path in _modules(REPO_ROOT / "tests"):
        for module in _imported_modules(path.read_text()):
            parts = module.split(".")
            if parts[0] == "tests" and len(parts) > 1 and parts[1] != "helpers":
                offences.append(f"{path.relative_to(REPO_ROOT)} imports {module}")
    assert not offences, "\n".join(offences)


def test_the_rules_see_a_crossing_import():
    """The import reader resolves relative imports, so the rules above can fail."""
    source = "from ..training.nodes import train\nfrom .nodes import report\n"
    imported = _imported_modules(source, "transfer_study.pipelines.reporting")
    assert "transfer_study.pipelines.training.nodes" in imported
    assert _pipeline_package("transfer_study.pipelines.training.nodes") == "training"
    assert _pipeline_package("transfer_study.pipelines.variant_template") is None
