"""An MLflow tracking server for the grid's processes, over the project's own store.

Several processes writing one SQLite file directly lock each other out ("database is
locked"); one ``mlflow server`` in front of it serialises their writes. A store that is
already a server (``http(s)://``) is used as it is.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

from transfer_study.errors import UserError

START_TIMEOUT_S = 120


class TrackingServerStartError(UserError, RuntimeError):
    """The grid's MLflow server did not start; the message holds its log."""


def is_server(uri: str) -> bool:
    """Whether ``uri`` is already a tracking server that processes can share."""
    return uri.startswith(("http://", "https://"))


def free_port() -> int:
    """A TCP port free on 127.0.0.1 now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@contextmanager
def shared_tracking_uri(store_uri: str, log_folder: Path) -> Iterator[str]:
    """A tracking URI the grid's processes can share while the block runs.

    Args:
        store_uri: The project's tracking URI (``sqlite:///…`` here, or a server).
        log_folder: Where the server writes ``mlflow_server.log``.

    Yields:
        ``store_uri`` itself when it is a server; else the URI of an ``mlflow server``
        started over it on 127.0.0.1 at a free port, in its own process group, stopped
        (with everything it started) when the block ends.
    """
    if is_server(store_uri):
        yield store_uri
        return
    port = free_port()
    log_folder.mkdir(parents=True, exist_ok=True)
    log_file = log_folder / "mlflow_server.log"
    command = [
        *(sys.executable, "-m", "mlflow", "server", "--backend-store-uri", store_uri),
        *("--host", "127.0.0.1", "--port", str(port), "--workers", "1"),
    ]
    with open(log_file, "ab") as log:
        server = subprocess.Popen(command, stdout=log, stderr=log, start_new_session=True)
    uri = f"http://127.0.0.1:{port}"
    try:
        _wait_until_healthy(uri, server, log_file)
        yield uri
    finally:
        _stop(server)


def _wait_until_healthy(uri: str, server: subprocess.Popen, log_file: Path) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if server.poll() is not None:
            break
        try:
            with urllib.request.urlopen(f"{uri}/health", timeout=2) as answer:
                if answer.status == 200:
                    return
        except OSError:
            time.sleep(0.5)
    tail = log_file.read_text(errors="replace")[-3000:]
    raise TrackingServerStartError(
        f"The grid's MLflow server ({uri}) did not start within {START_TIMEOUT_S} s "
        f"(exit code {server.poll()}). Its log, {log_file}, ends with:\n{tail}\n"
        "Start one yourself (`mlflow server …`) and point MLFLOW_TRACKING_URI at it."
    )


def _stop(server: subprocess.Popen) -> None:
    for stop_signal, wait_s in ((signal.SIGTERM, 15), (signal.SIGKILL, 5)):
        try:
            os.killpg(server.pid, stop_signal)
        except ProcessLookupError:
            return
        try:
            server.wait(timeout=wait_s)
        except subprocess.TimeoutExpired:
            continue
        if stop_signal == signal.SIGTERM:
            # gunicorn/uvicorn workers may outlive the master: end the group.
            with suppress(ProcessLookupError):
                os.killpg(server.pid, signal.SIGKILL)
            return
