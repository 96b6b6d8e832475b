"""Headless Chromium and throwaway local servers for the browser tests.

Chromium and its driver come from Debian (``apt-get install -y chromium chromium-driver``,
as ``.ci/run`` does). Without them a browser test skips on a developer's machine and
fails in CI (the ``CI`` environment variable is set), so CI cannot pass by skipping.

A server (``kedro viz``, ``mlflow ui``) is started in its own session and stopped by
signalling its whole process group: both spawn children that outlive their parent.
"""

from __future__ import annotations

import os
import random
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from selenium.webdriver.remote.webdriver import WebDriver

REPO_ROOT = Path(__file__).resolve().parents[2]
SCREENSHOTS = REPO_ROOT / "docs" / "images"

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
INSTALL_HINT = (
    "Install headless Chromium and its driver: "
    "`sudo apt-get update && sudo apt-get install -y chromium chromium-driver` (Debian/Ubuntu), "
    "and selenium: `.venv/bin/pip install -e '.[test]'`."
)
WINDOW_SIZE = (1600, 1000)  # CSS pixels of the page, the size of the saved screenshots
CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
)
SERVER_START_TIMEOUT = 120.0  # seconds; kedro viz and mlflow need ~10–25 s on 2 busy cores
STOP_GRACE = 10.0  # seconds between SIGTERM and SIGKILL
PORT_RANGE = (20000, 32000)  # below Linux's ephemeral ports
LOG_TAIL = 4000  # characters of a server's output quoted in a failure message


def _missing_browser(reason: str) -> None:
    """Fails in CI, skips elsewhere: a browser test must never pass CI by skipping."""
    message = f"{reason}. {INSTALL_HINT}"
    if os.environ.get("CI"):
        pytest.fail(message, pytrace=False)
    pytest.skip(message)


def find_chromium() -> tuple[Path, Path]:
    """Returns the paths of Chromium and chromedriver, or fails/skips saying how to install.

    Returns:
        ``(chromium, chromedriver)``.
    """
    found = []
    for preferred, name in ((CHROMIUM, "chromium"), (CHROMEDRIVER, "chromedriver")):
        path = preferred if os.access(preferred, os.X_OK) else shutil.which(name)
        if path is None:
            _missing_browser(f"`{name}` not found (looked at {preferred} and on PATH)")
        found.append(Path(path))
    try:
        import selenium  # noqa: F401
    except ImportError:
        _missing_browser("The Python package `selenium` is not installed")
    return found[0], found[1]


@contextmanager
def chromium_driver(window_size: tuple[int, int] = WINDOW_SIZE) -> Iterator[WebDriver]:
    """A headless Chromium driven by selenium, with a fresh profile; quit on exit.

    Args:
        window_size: Width and height of the page's viewport in CSS pixels.

    Yields:
        The selenium ``WebDriver``.
    """
    chromium, chromedriver = find_chromium()
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    with tempfile.TemporaryDirectory(
        prefix="chromium-profile-", ignore_cleanup_errors=True
    ) as profile:
        options = webdriver.ChromeOptions()
        options.binary_location = str(chromium)
        for flag in (*CHROMIUM_FLAGS, f"--user-data-dir={profile}"):
            options.add_argument(flag)
        options.add_argument("--window-size={},{}".format(*window_size))
        driver = webdriver.Chrome(service=Service(str(chromedriver)), options=options)
        try:
            # --window-size sizes the window; this makes the page itself exactly that size.
            width, height = window_size
            driver.execute_cdp_cmd(
                "Emulation.setDeviceMetricsOverride",
                {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": False},
            )
            yield driver
        finally:
            driver.quit()


def free_port(low: int = PORT_RANGE[0], high: int = PORT_RANGE[1]) -> int:
    """A TCP port of 127.0.0.1 in ``[low, high]`` that nothing is bound to right now.

    Not a kernel-chosen port: those are ephemeral ones (32768 and up on Linux), which
    kedro viz refuses above 49151 and which outgoing connections may take meanwhile.
    """
    ports = list(range(low, high + 1))
    random.shuffle(ports)
    for port in ports[:200]:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
            try:
                probe.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    pytest.fail(f"No free TCP port on 127.0.0.1 between {low} and {high}")


@dataclass
class Server:
    """A server started by ``serve``."""

    url: str
    process: subprocess.Popen
    log: Path

    def output(self) -> str:
        """The last ``LOG_TAIL`` characters the server printed."""
        return self.log.read_text(errors="replace")[-LOG_TAIL:]


@contextmanager
def serve(
    command: Sequence[str],
    ready_url: str,
    *,
    cwd: Path,
    log: Path,
    env: dict[str, str] | None = None,
    timeout: float = SERVER_START_TIMEOUT,
) -> Iterator[Server]:
    """Starts ``command`` in its own process group, waits for ``ready_url``, stops the group.

    Args:
        command: The server's command line; it should bind to 127.0.0.1 on a free port.
        ready_url: A URL that answers 200 once the server is up.
        cwd: The server's working directory.
        log: File that receives the server's stdout and stderr.
        env: The server's environment; the current one by default.
        timeout: Seconds to wait for ``ready_url``.

    Yields:
        The running ``Server``.
    """
    with log.open("wb") as sink:
        process = subprocess.Popen(
            list(command),
            cwd=cwd,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=sink,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    server = Server(url=ready_url, process=process, log=log)
    try:
        wait_for_http(server, timeout)
        yield server
    finally:
        stop_process_group(process)


def wait_for_http(server: Server, timeout: float) -> None:
    """Polls ``server.url`` until it answers 200; fails with the server's output if not."""
    deadline = time.monotonic() + timeout
    last_error: object = None
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            pytest.fail(
                f"Server exited with code {server.process.returncode} before {server.url} "
                f"answered: {server.process.args}\n--- its output ---\n{server.output()}",
                pytrace=False,
            )
        try:
            with urllib.request.urlopen(server.url, timeout=5) as response:
                if response.status == 200:
                    return
                last_error = f"HTTP {response.status}"
        except (urllib.error.URLError, OSError) as error:
            last_error = error
        time.sleep(0.5)
    pytest.fail(
        f"{server.url} did not answer within {timeout:.0f} s (last error: {last_error}): "
        f"{server.process.args}\n--- its output ---\n{server.output()}",
        pytrace=False,
    )


def stop_process_group(process: subprocess.Popen, grace: float = STOP_GRACE) -> None:
    """SIGTERMs the process group led by ``process``, SIGKILLs what is left after ``grace``."""
    pgid = process.pid  # start_new_session made it the leader of its own group
    for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, grace)):
        try:
            os.killpg(pgid, sig)
        except ProcessLookupError:
            break
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            process.poll()  # reaps the leader once it exits
            if not _live_members(pgid):
                return
            time.sleep(0.1)
    process.poll()


def _live_members(pgid: int) -> list[int]:
    """PIDs in process group ``pgid`` that are not zombies.

    Orphans that exited may stay zombies when PID 1 does not reap them; they hold no
    port and no memory, so they do not count.
    """
    proc = Path("/proc")
    if not proc.is_dir():  # not Linux: ask the kernel whether the group is empty
        try:
            os.killpg(pgid, 0)
        except ProcessLookupError:
            return []
        return [pgid]
    members = []
    for entry in proc.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        # "pid (comm) state ppid pgrp ..."; comm may contain spaces and parentheses.
        state, _ppid, pgrp = stat.rsplit(")", 1)[1].split()[:3]
        if int(pgrp) == pgid and state != "Z":
            members.append(int(entry.name))
    return members


def screenshot_path(name: str, tmp_path: Path) -> Path:
    """Where to save screenshot ``name``: ``docs/images/`` or ``tmp_path``.

    The documented screenshot is written when it does not exist yet, or when
    ``UPDATE_SCREENSHOTS=1``; otherwise a run leaves the working tree untouched.
    """
    documented = SCREENSHOTS / name
    if os.environ.get("UPDATE_SCREENSHOTS") == "1" or not documented.exists():
        documented.parent.mkdir(parents=True, exist_ok=True)
        return documented
    return tmp_path / name


def wait_until_still(
    read: Callable[[], Any], *, settle: float = 1.0, timeout: float = 30.0, poll: float = 0.25
) -> Any:
    """Waits until ``read()`` returns the same value for ``settle`` seconds (animations done).

    Args:
        read: Returns what should stop changing, e.g. an SVG ``transform``.
        settle: Seconds the value must stay the same.
        timeout: Seconds to wait at most; then fails.
        poll: Seconds between reads.

    Returns:
        The settled value.
    """
    deadline = time.monotonic() + timeout
    value, since = read(), time.monotonic()
    while time.monotonic() < deadline:
        time.sleep(poll)
        current = read()
        if current != value:
            value, since = current, time.monotonic()
        elif time.monotonic() - since >= settle:
            return value
    pytest.fail(f"The page kept changing for {timeout:.0f} s (last value: {value!r})")
