"""The registry: every pipeline package registered, ``__default__`` the study only, and
pipeline packages independent of one another (what they share lives beside them)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
from kedro.pipeline import Pipeline

from tests.helpers.parameters import REPO_ROOT
from transfer_study.pipelines import (
    data_processing,
    demo_data,
    export,
    inference,
    reporting,
    training,
)
from transfer_study.pipelines.variant_template import VARIANTS, embedding_pipeline

PIPELINES_DIR = REPO_ROOT / "src" / "transfer_study" / "pipelines"
PIPELINES_MODULE = "transfer_study.pipelines"
RUN_BY_NAME_ONLY = ("demo_data", "data_size_ablation", "inference")


def _packages() -> list[str]:
    return sorted(path.parent.name for path in PIPELINES_DIR.glob("*/__init__.py"))


def _names(pipeline: Pipeline) -> set[str]:
    return {node.name for node in pipeline.nodes}


def _imported_modules(path: Path, module: str) -> set[str]:
    """Absolute names of every module ``path`` (the module ``module``) imports from."""
    package = module.rsplit(".", 1)[0] if path.name != "__init__.py" else module
    imported = set()
    for statement in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(statement, ast.Import):
            imported.update(alias.name for alias in statement.names)
        elif isinstance(statement, ast.ImportFrom):
            if statement.level:
                parts = package.split(".")
                base = ".".join(parts[: len(parts) - statement.level + 1])
                source = f"{base}.{statement.module}" if statement.module else base
            else:
                source = statement.module or ""
            imported.add(source)
            # `from transfer_study.pipelines import training` imports a package by name.
            imported.update(f"{source}.{alias.name}" for alias in statement.names)
    return imported


def test_every_pipeline_package_and_default_are_registered(registered_pipelines):
    assert set(registered_pipelines) == {*_packages(), "__default__"}
    assert set(_packages()) == {
        "data_processing",
        "training",
        "reporting",
        "export",
        "registry",
        "data_size_ablation",
        "demo_data",
        "inference",
    }


@pytest.mark.parametrize(
    "package",
    [data_processing, training, reporting, export, demo_data, inference],
    ids=lambda p: p.__name__,
)
def test_a_registered_pipeline_is_its_packages_create_pipeline(registered_pipelines, package):
    name = package.__name__.rsplit(".", 1)[-1]
    assert _names(registered_pipelines[name]) == _names(package.create_pipeline())


def test_default_is_the_sum_of_the_study_pipelines(registered_pipelines):
    study = ("data_processing", "registry", "training", "reporting", "export")
    assert _names(registered_pipelines["__default__"]) == set().union(
        *(_names(registered_pipelines[name]) for name in study)
    )


@pytest.mark.parametrize("name", RUN_BY_NAME_ONLY)
def test_pipelines_run_by_name_only_are_not_in_default(registered_pipelines, name):
    own = _names(registered_pipelines[name])
    if name == "data_size_ablation":  # composed with the study's first steps
        own -= _names(data_processing.create_pipeline()) | _names(embedding_pipeline())
        own -= {  # and the study's learning-rate choices: no search per cell
            f"{variant}.{node}"
            for variant in VARIANTS
            for node in ("resolve_training_settings_node", "choose_learning_rate_node")
        } | {"finetune.probe_head_node"}  # the study's probe, before its range test
    assert own
    assert not own & _names(registered_pipelines["__default__"])


def test_no_pipeline_package_imports_another_pipeline_package():
    packages = _packages()
    offences = []
    for package in packages:
        for path in sorted((PIPELINES_DIR / package).rglob("*.py")):
            relative = path.relative_to(PIPELINES_DIR).with_suffix("")
            module = ".".join((PIPELINES_MODULE, *relative.parts)).removesuffix(".__init__")
            for imported in _imported_modules(path, module):
                for other in packages:
                    prefix = f"{PIPELINES_MODULE}.{other}"
                    if other != package and (
                        imported == prefix or imported.startswith(f"{prefix}.")
                    ):
                        offences.append(f"{path.relative_to(REPO_ROOT)} imports {imported}")
    assert not offences, "\n".join(offences)


def test_the_import_check_sees_relative_and_absolute_imports(tmp_path: Path):
    """The check above must be able to fail: both spellings of a cross-package import."""
    source = tmp_path / "pipeline.py"
    source.write_text(
        "from ..training import pipeline\n"
        "from transfer_study.pipelines import reporting\n"
        "from ..variant_template import VARIANTS\n"
        "from .nodes import node\n"
    )
    imported = _imported_modules(source, f"{PIPELINES_MODULE}.inference.pipeline")
    assert f"{PIPELINES_MODULE}.training" in imported
    assert f"{PIPELINES_MODULE}.reporting" in imported
    assert f"{PIPELINES_MODULE}.variant_template" in imported
    assert f"{PIPELINES_MODULE}.inference.nodes" in imported


def test_a_finetune_only_ablation_still_probes_with_the_frozen_variants_choice(monkeypatch):
    from transfer_study import pipeline_registry
    from transfer_study.pipelines.data_size_ablation import pipeline as ablation_pipeline

    grid = ablation_pipeline.configured_grid() | {"variants": ["finetune"]}
    monkeypatch.setattr(ablation_pipeline, "configured_grid", lambda: grid)
    monkeypatch.setattr(pipeline_registry, "configured_grid", lambda: grid)
    ablation = pipeline_registry.register_pipelines()["data_size_ablation"]
    names = _names(ablation)
    assert {"embed_images_node", "frozen.choose_learning_rate_node"} <= names
    assert not {n for n in names if n.startswith("ablation.frozen.")}
    # Every input of a cell's probe is produced inside the ablation.
    probes = [n for n in ablation.nodes if n.name.endswith(".probe_head_node")]
    assert probes
    produced = ablation.all_outputs()
    for probe in probes:
        assert {i for i in probe.inputs if not i.startswith("params:")} <= produced
