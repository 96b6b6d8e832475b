"""The grid's MLflow server: a server store is used as it is; a SQLite store gets an
``mlflow server`` in front of it for the block's duration, stopped with its process group."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import psutil
import pytest

from transfer_study.errors import UserError
from transfer_study.grid import tracking_server
from transfer_study.grid.tracking_server import (
    TrackingServerStartError,
    free_port,
    is_server,
    shared_tracking_uri,
)


@pytest.mark.parametrize(
    ("uri", "expected"),
    [
        ("http://127.0.0.1:5000", True),
        ("https://mlflow.example.org", True),
        ("sqlite:///mlflow.db", False),
        ("file:///tmp/mlruns", False),
        ("/tmp/mlruns", False),
        ("databricks", False),
    ],
)
def test_is_server(uri: str, expected: bool):
    assert is_server(uri) is expected


def test_free_port_is_free_to_bind():
    port = free_port()
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", port))


def test_a_server_store_is_shared_as_it_is(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    def no_process(*args, **kwargs):
        raise AssertionError("no server may be started for a server store")

    monkeypatch.setattr(tracking_server.subprocess, "Popen", no_process)
    with shared_tracking_uri("http://x:1", tmp_path / "logs") as uri:
        assert uri == "http://x:1"
    assert not (tmp_path / "logs").exists()


def _group_alive(pgid: int) -> bool:
    """Whether any process of group ``pgid`` is alive (zombies awaiting their reaper are
    not)."""
    for process in psutil.process_iter(["status"]):
        try:
            if os.getpgid(process.pid) == pgid and process.info["status"] != "zombie":
                return True
        except (ProcessLookupError, psutil.Error):
            continue
    return False


def _refused(port: int) -> bool:
    with socket.socket() as probe:
        try:
            probe.connect(("127.0.0.1", port))
        except ConnectionRefusedError:
            return True
    return False


@pytest.mark.slow
def test_a_sqlite_store_gets_a_server_for_the_block(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    started: list[subprocess.Popen] = []
    real_popen = subprocess.Popen

    def recording_popen(*args, **kwargs):
        started.append(real_popen(*args, **kwargs))
        return started[-1]

    monkeypatch.setattr(tracking_server.subprocess, "Popen", recording_popen)
    store = f"sqlite:///{tmp_path / 'mlflow.db'}"

    with shared_tracking_uri(store, tmp_path / "logs") as uri:
        assert uri.startswith("http://127.0.0.1:")
        with urllib.request.urlopen(f"{uri}/health", timeout=10) as answer:
            assert answer.status == 200
        (server,) = started
        assert os.getpgid(server.pid) == server.pid  # a process group of its own
        assert server.poll() is None

    port = int(uri.rsplit(":", 1)[1])
    assert server.poll() is not None
    assert _refused(port)
    assert not _group_alive(server.pid)
    assert (tmp_path / "logs" / "mlflow_server.log").exists()


def test_a_server_that_exits_is_reported_with_its_log(tmp_path: Path):
    log_file = tmp_path / "mlflow_server.log"
    with open(log_file, "wb") as log:
        server = subprocess.Popen(
            [sys.executable, "-c", "import sys; print('no such store: nope://'); sys.exit(3)"],
            stdout=log,
            stderr=log,
        )
    server.wait(timeout=30)
    uri = f"http://127.0.0.1:{free_port()}"

    started = time.monotonic()
    with pytest.raises(TrackingServerStartError) as caught:
        tracking_server._wait_until_healthy(uri, server, log_file)

    assert time.monotonic() - started < 10  # not the whole start timeout
    assert isinstance(caught.value, UserError)
    message = str(caught.value)
    assert "exit code 3" in message
    assert "no such store: nope://" in message
    assert uri in message
    assert "MLFLOW_TRACKING_URI" in message


GROUP = """
import signal, subprocess, sys, time
child = subprocess.Popen([sys.executable, "-c",
    "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
    "print('ready', flush=True); time.sleep(120)"], stdout=subprocess.PIPE, text=True)
child.stdout.readline()
print(child.pid, flush=True)
time.sleep(120)
"""


def test_stopping_ends_the_whole_process_group(tmp_path: Path):
    """A server whose worker ignores SIGTERM (as a busy gunicorn/uvicorn worker may):
    the worker ends with the server."""
    server = subprocess.Popen(
        [sys.executable, "-c", GROUP], stdout=subprocess.PIPE, text=True, start_new_session=True
    )
    try:
        worker = int(server.stdout.readline())
        assert _group_alive(server.pid)

        tracking_server._stop(server)

        assert server.returncode == -signal.SIGTERM
        deadline = time.monotonic() + 10
        while _group_alive(server.pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not _group_alive(server.pid), f"worker {worker} outlived the server"
    finally:
        server.stdout.close()
        if _group_alive(server.pid):
            os.killpg(server.pid, signal.SIGKILL)
        server.wait()


def test_stopping_a_server_that_is_gone_does_nothing():
    server = subprocess.Popen([sys.executable, "-c", "pass"], start_new_session=True)
    server.wait(timeout=30)
    tracking_server._stop(server)  # no ProcessLookupError
