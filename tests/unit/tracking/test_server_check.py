"""The tracking-server check: which URI, whether it answers, the message, MLflow's retries."""

from __future__ import annotations

import os
import shutil
import socket
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from types import SimpleNamespace

import pytest
from kedro.config import OmegaConfigLoader
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException

from transfer_study.errors import find_user_error
from transfer_study.settings import CONFIG_LOADER_ARGS
from transfer_study.tracking.server_check import (
    RETRY_DEFAULTS,
    TrackingServerCheckHook,
    TrackingServerError,
    bound_http_retries,
    configured_tracking_uri,
    is_http,
    unanswered,
    unreachable_message,
)

REPO_CONF = Path(__file__).parents[3] / "conf"


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture
def dead_uri() -> str:
    """An address where nothing listens."""
    return f"http://127.0.0.1:{_free_port()}"


@pytest.fixture
def silent_uri() -> Iterator[str]:
    """A server that accepts connections and never answers."""
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        yield f"http://127.0.0.1:{server.getsockname()[1]}"


@pytest.fixture
def answering_uri() -> Iterator[str]:
    """A web server that answers every request with 404."""

    class NotFound(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_error(404)

        def log_message(self, *args) -> None:
            pass

    server = HTTPServer(("127.0.0.1", 0), NotFound)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


@pytest.fixture
def conf(tmp_path: Path) -> Path:
    shutil.copytree(REPO_CONF / "base", tmp_path / "conf" / "base")
    (tmp_path / "conf" / "local").mkdir()
    return tmp_path / "conf"


def _loader(conf: Path) -> OmegaConfigLoader:
    return OmegaConfigLoader(conf_source=str(conf), **CONFIG_LOADER_ARGS)


@pytest.fixture
def retry_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    """Unsets MLflow's retry variables, and restores them after the test."""
    for name in RETRY_DEFAULTS:
        monkeypatch.setenv(name, "")
        monkeypatch.delenv(name)


def test_retry_defaults_are_set_only_where_the_user_has_not():
    environ = {"MLFLOW_HTTP_REQUEST_TIMEOUT": "300", "HOME": "/root"}
    bound_http_retries(environ)
    assert environ["MLFLOW_HTTP_REQUEST_TIMEOUT"] == "300"
    assert (
        environ["MLFLOW_HTTP_REQUEST_MAX_RETRIES"]
        == RETRY_DEFAULTS["MLFLOW_HTTP_REQUEST_MAX_RETRIES"]
    )
    assert set(environ) == {*RETRY_DEFAULTS, "HOME"}


def test_only_http_uris_name_a_server():
    assert is_http("http://127.0.0.1:5000")
    assert is_http("https://mlflow.example.org/")
    assert not is_http("sqlite:///mlflow.db")
    assert not is_http("file:///tmp/mlruns")
    assert not is_http("databricks")


def test_the_uri_is_mlflow_yml_s_which_reads_mlflow_tracking_uri(conf, monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    assert configured_tracking_uri(_loader(conf)) == "sqlite:///mlflow.db"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://127.0.0.1:5999")
    assert configured_tracking_uri(_loader(conf)) == "http://127.0.0.1:5999"


def test_a_dead_address_and_a_silent_server_do_not_answer(dead_uri, silent_uri):
    assert unanswered(dead_uri, timeout=2) == "nothing accepts connections there"
    assert unanswered(silent_uri, timeout=0.2) == "no answer within 0.2 s"


def test_any_http_answer_counts_as_an_answer(answering_uri):
    assert unanswered(answering_uri, timeout=2) is None


def test_the_message_names_the_uri_and_the_two_ways_out():
    message = unreachable_message(
        "http://127.0.0.1:5999", "nothing accepts connections there", from_environment=True
    )
    assert "http://127.0.0.1:5999 (MLFLOW_TRACKING_URI) does not answer" in message
    assert "mlflow server --host 127.0.0.1 --port 5999" in message
    assert "unset MLFLOW_TRACKING_URI" in message
    from_file = unreachable_message("https://mlflow.example.org", "x", from_environment=False)
    assert "check the address" in from_file
    assert "server.mlflow_tracking_uri back to sqlite:///mlflow.db" in from_file


def test_the_hook_stops_a_run_whose_server_is_down(conf, dead_uri, monkeypatch, retry_variables):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", dead_uri)
    context = SimpleNamespace(config_loader=_loader(conf))
    with pytest.raises(TrackingServerError, match="unset MLFLOW_TRACKING_URI") as raised:
        TrackingServerCheckHook().after_context_created(context)
    assert find_user_error(raised.value) is raised.value  # shown without a traceback


def test_the_hook_lets_a_local_store_through_and_bounds_mlflows_retries(
    conf, monkeypatch, retry_variables
):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    context = SimpleNamespace(config_loader=_loader(conf))
    assert TrackingServerCheckHook().after_context_created(context) is None
    for name, value in RETRY_DEFAULTS.items():
        assert os.environ[name] == value


@pytest.mark.slow
def test_mlflow_gives_up_on_a_dead_server_within_a_minute(dead_uri, retry_variables):
    """A server that dies mid-run: with MLflow's own defaults this waits ~4 minutes."""
    bound_http_retries(os.environ)
    start = time.monotonic()
    with pytest.raises(MlflowException):
        MlflowClient(tracking_uri=dead_uri).search_experiments()
    assert time.monotonic() - start < 30
