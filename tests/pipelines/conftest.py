"""Fixtures of the pipeline tests: the registered pipelines, built as ``kedro run`` builds them."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import torch
from kedro.framework.project import configure_project
from kedro.pipeline import Pipeline

from tests.helpers.parameters import REPO_ROOT
from transfer_study.pipeline_registry import register_pipelines


@pytest.fixture(scope="module", autouse=True)
def one_torch_thread() -> Iterator[None]:
    """Tiny models gain nothing from intra-op threads; on a busy 2-core machine the
    threads' contention made the training runs 3-4 times slower. Per module, so that
    tests outside this folder keep torch's default."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def configured_project() -> None:
    """Points Kedro at the project package, as ``kedro run`` does (``find_pipelines`` needs it)."""
    configure_project("transfer_study")


@pytest.fixture(scope="session")
def registered_pipelines(configured_project: None) -> dict[str, Pipeline]:
    """``register_pipelines()`` of the project, its ablation grid read from ``conf/``."""
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(REPO_ROOT)  # the ablation reads its grid from the project's conf/
        return register_pipelines()
