"""Run the real project's pipelines in a throwaway copy of its configuration.

The copy lives in ``tmp_path``: data, caches and the MLflow store are written there,
never into the developer's checkout.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from kedro.framework.session import KedroSession
from kedro.framework.startup import bootstrap_project

from tests.helpers.parameters import nested

REPO_ROOT = Path(__file__).resolve().parents[2]

# Small enough for CI on 2 cores, big enough that every class reaches every split.
TINY_DEMO = {
    "demo_data.n_samples": 24,
    "demo_data.n_angles": 2,
    "demo_data.image_size": 64,
    "model.image_size": 32,
}

# lr stays auto, so that end-to-end runs exercise the range test and the candidate
# search, with few steps and candidates.
TINY_TRAINING = {
    **{f"{variant}.max_images": 48 for variant in ("scratch", "finetune_top", "finetune")},
    # A head on features converges well within this: the study always has a variant to
    # choose (one that hit its cap never is).
    "frozen.max_images": 4000,
    **{f"{variant}.min_steps": 4 for variant in ("scratch", "frozen", "finetune_top", "finetune")},
    "training_defaults.patience": 2,
    "training_defaults.lr_search.min_lr": 1.0e-3,
    "training_defaults.lr_search.max_lr": 1.0,
    "training_defaults.lr_search.steps": 6,
    "finetune.lr_search.candidate_steps": 4,
    "finetune_top.lr_search.candidate_steps": 4,
    "finetune_top.augmented_views": 2,
    "finetune.head_warmup_steps": 2,
    "training_defaults.seeds": 1,  # auto would train 3 on a GPU
    "training_defaults.batch_size": 8,
    "evaluation.bootstrap_resamples": 200,
}


def make_project(root: Path) -> Path:
    """Copies ``conf/base``, ``conf/logging.yml`` and ``pyproject.toml`` into ``root``."""
    (root / "conf" / "local").mkdir(parents=True)
    shutil.copytree(REPO_ROOT / "conf" / "base", root / "conf" / "base")
    shutil.copy(REPO_ROOT / "conf" / "logging.yml", root / "conf" / "logging.yml")
    shutil.copy(REPO_ROOT / "pyproject.toml", root / "pyproject.toml")
    (root / ".telemetry").write_text("consent: false\n")
    (root / "data").mkdir()
    (root / "src").mkdir()  # bootstrap_project checks it exists; the package is installed
    return root


def run_pipeline(
    project: Path, runtime_params: dict[str, Any] | None = None, **run_kwargs: Any
) -> dict[str, Any]:
    """Runs a pipeline of the project copy in a fresh ``KedroSession``.

    Args:
        project: A folder made by ``make_project``.
        runtime_params: What ``--params`` would pass (dotted keys allowed).
        **run_kwargs: Passed to ``KedroSession.run`` (``pipeline_name``, ``namespaces``…).

    Returns:
        The run's free outputs.
    """
    bootstrap_project(project)
    with KedroSession.create(
        project_path=project, runtime_params=nested(runtime_params or {})
    ) as session:
        return session.run(**run_kwargs)


@contextmanager
def project_environment(root: Path) -> Iterator[Path]:
    """Works in a project copy: its folder, its own MLflow store, no telemetry."""
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(root)
        patch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{root / 'mlflow.db'}")
        patch.setenv("KEDRO_DISABLE_TELEMETRY", "1")
        yield root


def tiny_study(root: Path) -> Path:
    """A project copy in ``root`` after the demo data and the default ``kedro run``, tiny."""
    make_project(root)
    with project_environment(root):
        run_pipeline(root, TINY_DEMO, pipeline_name="demo_data")
        run_pipeline(root, {**TINY_DEMO, **TINY_TRAINING})
    return root
