"""RunParamsHook keeps the ``kedro run``'s parameters while it runs, for the grid runner."""

from __future__ import annotations

import pytest
from kedro.framework.hooks.manager import _create_hook_manager
from kedro.io import DataCatalog
from kedro.pipeline import Pipeline

from transfer_study.grid import run_params
from transfer_study.grid.run_params import RunParamsHook, current_run_params

RUN_PARAMS = {
    "run_id": "2026-01-01T00.00.00.000Z",
    "env": "local",
    "runtime_params": {"model": {"name": "a,b"}, "sizes": [1, 2]},
    "pipeline_names": ["data_size_ablation"],
    "runner": "transfer_study.grid.DaskGridRunner",
}


@pytest.fixture(autouse=True)
def no_earlier_context():
    """A context created by an earlier test in this process (a session that ran nothing)
    leaves its configuration folder behind; these tests start without one."""
    run_params._CONF_SOURCE.clear()
    yield
    run_params._CONF_SOURCE.clear()


@pytest.fixture
def hooks():
    """Kedro's hook manager with the hook registered (so its names match Kedro's specs)."""
    manager = _create_hook_manager()
    manager.register(RunParamsHook())
    yield manager.hook
    run_params._CURRENT.clear()


def _run_args() -> dict:
    return {"run_params": RUN_PARAMS, "pipeline": Pipeline([]), "catalog": DataCatalog()}


def test_no_run_has_no_run_params():
    run_params._CURRENT.clear()
    assert current_run_params() == {}


def test_the_run_params_are_kept_during_the_run_and_cleared_after(hooks):
    hooks.before_pipeline_run(**_run_args())
    assert current_run_params() == RUN_PARAMS
    hooks.after_pipeline_run(run_result={}, **_run_args())
    assert current_run_params() == {}


def test_the_run_params_are_cleared_when_the_run_fails(hooks):
    hooks.before_pipeline_run(**_run_args())
    hooks.on_pipeline_error(error=RuntimeError("boom"), **_run_args())
    assert current_run_params() == {}


def test_a_new_run_replaces_the_last_runs_params(hooks):
    hooks.before_pipeline_run(**_run_args())
    hooks.before_pipeline_run(**{**_run_args(), "run_params": {"env": "full"}})
    assert current_run_params() == {"env": "full"}


def test_the_run_params_handed_out_are_a_copy(hooks):
    hooks.before_pipeline_run(**_run_args())
    current_run_params()["env"] = "changed"
    assert current_run_params()["env"] == "local"


def test_the_projects_settings_register_the_hook():
    from transfer_study import settings

    assert any(isinstance(hook, RunParamsHook) for hook in settings.HOOKS)


def test_the_contexts_configuration_folder_is_remembered_for_the_run(tmp_path):
    from types import SimpleNamespace

    hook = RunParamsHook()
    context = SimpleNamespace(config_loader=SimpleNamespace(conf_source=str(tmp_path)))
    hook.after_context_created(context)
    hook.before_pipeline_run({"env": "local"})
    assert current_run_params()["conf_source"] == str(tmp_path)
    hook.after_pipeline_run()
    assert current_run_params() == {}
