"""The project's ``kedro run``: Kedro's options, user errors as one message, bugs as before."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner
from kedro.framework.cli.project import run as kedro_run

from transfer_study import cli as project_cli
from transfer_study.errors import UserError
from transfer_study.grid.tasks import RUNTIME_PARAMS_ENV
from transfer_study.photos.errors import SplitError

REPO_ROOT = Path(__file__).resolve().parents[2]


def _option_names(command) -> set[str]:
    return {option for param in command.params for option in param.opts}


def test_run_keeps_every_option_of_kedros_run():
    project_run = project_cli.cli.commands["run"]
    assert _option_names(project_run) == _option_names(kedro_run)
    assert {"--params", "--pipelines", "--env", "--runner"} <= _option_names(project_run)


def _fail_with(monkeypatch: pytest.MonkeyPatch, error: Exception) -> list[dict]:
    """Makes Kedro's run raise ``error``; returns the options it was called with."""
    calls: list[dict] = []

    def failing_run(**options):
        calls.append(options)
        raise error

    monkeypatch.setattr(kedro_run, "callback", failing_run)
    return calls


@pytest.fixture
def logged(monkeypatch, caplog) -> pytest.LogCaptureFixture:
    """The CLI's records, caught by caplog alone (as conf/logging.yml sends them to a file
    alone), not written to the checkout's info.log."""
    monkeypatch.setattr(project_cli.logger, "handlers", [caplog.handler])
    monkeypatch.setattr(project_cli.logger, "propagate", False)
    return caplog


def test_a_user_error_is_one_message_without_a_traceback(monkeypatch, logged):
    calls = _fail_with(monkeypatch, SplitError("Class(es) {'rare': 2} are too small. Add photos."))
    result = CliRunner().invoke(project_cli.cli, ["run", "--params=split.seed=3"])
    assert result.exit_code == 1
    assert "Error: Class(es) {'rare': 2} are too small. Add photos." in result.output
    assert "Traceback" not in result.output
    assert calls[0]["params"] == {"split": {"seed": 3}}  # Kedro's own option parsing
    # The traceback is logged, for the log file.
    (record,) = [r for r in logged.records if r.name == project_cli.__name__]
    assert isinstance(record.exc_info[1], SplitError)


def test_a_bug_keeps_its_exception_and_traceback(monkeypatch, logged):
    _fail_with(monkeypatch, KeyError("a bug"))
    result = CliRunner().invoke(project_cli.cli, ["run"])
    assert isinstance(result.exception, KeyError)
    assert not isinstance(result.exception, UserError)


def test_log_files_are_the_file_handlers_a_record_reaches(tmp_path: Path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    parent = logging.getLogger("transfer_study.tests.log_files")
    child = logging.getLogger("transfer_study.tests.log_files.child")
    handler = logging.FileHandler(tmp_path / "info.log", delay=True)
    parent.addHandler(handler)
    parent.propagate = False  # away from the root's handlers
    try:
        assert project_cli.log_files(child) == ["info.log"]
        child.propagate = False
        assert project_cli.log_files(child) == []
    finally:
        parent.removeHandler(handler)
        parent.propagate = child.propagate = True


def test_the_logging_config_sends_the_traceback_to_a_file_only():
    config = yaml.safe_load((REPO_ROOT / "conf" / "logging.yml").read_text())
    logger = config["loggers"][project_cli.__name__]
    assert logger["propagate"] is False
    handlers = [config["handlers"][name] for name in logger["handlers"]]
    assert handlers
    assert all("filename" in handler for handler in handlers)


def _capture(monkeypatch: pytest.MonkeyPatch) -> list[dict]:
    """Makes Kedro's run succeed without running; returns the options it was called with."""
    calls: list[dict] = []
    monkeypatch.setattr(kedro_run, "callback", lambda **options: calls.append(options))
    return calls


def test_a_grid_cells_process_runs_with_the_drivers_params(monkeypatch):
    monkeypatch.setenv(RUNTIME_PARAMS_ENV, '{"a": {"b": [1, 2]}, "model": {"name": "x,y"}}')
    calls = _capture(monkeypatch)
    result = CliRunner().invoke(project_cli.cli, ["run"])
    assert result.exit_code == 0, result.output
    assert calls[0]["params"] == {"a": {"b": [1, 2]}, "model": {"name": "x,y"}}


def test_explicit_params_win_over_the_drivers(monkeypatch):
    monkeypatch.setenv(RUNTIME_PARAMS_ENV, '{"a": {"b": [1, 2]}, "c": 1}')
    calls = _capture(monkeypatch)
    result = CliRunner().invoke(project_cli.cli, ["run", "--params=c=2,d=3"])
    assert result.exit_code == 0, result.output
    assert calls[0]["params"] == {"a": {"b": [1, 2]}, "c": 2, "d": 3}


def test_without_the_drivers_params_the_options_are_kedros(monkeypatch):
    monkeypatch.delenv(RUNTIME_PARAMS_ENV, raising=False)
    calls = _capture(monkeypatch)
    result = CliRunner().invoke(project_cli.cli, ["run", "--params=c=2"])
    assert result.exit_code == 0, result.output
    assert calls[0]["params"] == {"c": 2}


def test_explicit_params_merge_into_the_drivers_at_every_level(monkeypatch):
    monkeypatch.setenv(RUNTIME_PARAMS_ENV, '{"a": {"b": [1, 2]}}')
    calls = _capture(monkeypatch)
    result = CliRunner().invoke(project_cli.cli, ["run", "--params=a.x=5"])
    assert result.exit_code == 0, result.output
    assert calls[0]["params"] == {"a": {"b": [1, 2], "x": 5}}
