"""Runs that say which process runs them and that it is alive; reaping those that lie.

A run is closed by the process that opened it (``tracking.hooks``), including on
Ctrl-C and SIGTERM. A ``kill -9``, an out-of-memory kill or a lost machine gives that
process no chance to, and the run would stay RUNNING in the MLflow UI forever. So every
run the project opens carries the host and process id that run it and a heartbeat time
that process refreshes while it runs, and each new run first marks KILLED the runs of
its experiment that are RUNNING but whose heartbeat stopped or whose process is gone.

Only runs with a heartbeat tag are reaped: one opened by something else (a notebook,
another tool) has no heartbeat to judge it by. The heartbeat is the writer's clock read
against the reader's: hosts sharing a store need clocks within a minute or so (NTP).
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from collections.abc import Collection

import mlflow
from mlflow.entities import Run, RunStatus
from mlflow.exceptions import MlflowException

logger = logging.getLogger(__name__)

HOST_TAG = "host"
PID_TAG = "pid"
HEARTBEAT_TAG = "heartbeat"  # Unix seconds, as a string
STOP_REASON_TAG = "stop_reason"

HEARTBEAT_INTERVAL_S = 30.0
# Ten missed beats: a busy machine or a short server outage does not reap a live run.
STALE_AFTER_S = 300.0
_PAGE = 1000

KILLED = RunStatus.to_string(RunStatus.KILLED)


def process_tags() -> dict[str, str]:
    """The tags that tie a run to this process: its host, its pid and a heartbeat of now."""
    return {HOST_TAG: socket.gethostname(), PID_TAG: str(os.getpid()), HEARTBEAT_TAG: _now()}


def _now() -> str:
    return f"{time.time():.0f}"


class Heartbeat:
    """Refreshes ``HEARTBEAT_TAG`` on the runs it holds every ``interval_s``, in a daemon
    thread, so that a run whose process died can be told from one that is still working.

    A refresh that fails (the server is down, the store is busy) is logged at DEBUG and
    tried again at the next beat: a heartbeat must never stop the run it reports on.
    It costs one ``set_tag`` per run per beat.
    """

    def __init__(
        self, client: mlflow.MlflowClient, interval_s: float = HEARTBEAT_INTERVAL_S
    ) -> None:
        self._client = client
        self._interval_s = interval_s
        self._run_ids: set[str] = set()
        self._lock = threading.Lock()
        self._stopped = threading.Event()
        self._thread: threading.Thread | None = None

    def add(self, run_id: str) -> None:
        """Refreshes ``run_id`` from the next beat on."""
        with self._lock:
            self._run_ids.add(run_id)

    def discard(self, run_id: str) -> None:
        """Stops refreshing ``run_id`` (it has ended, and its tags should too)."""
        with self._lock:
            self._run_ids.discard(run_id)

    def start(self) -> None:
        """Starts the beating thread (once; a second call does nothing)."""
        if self._thread is not None:
            return
        self._stopped.clear()
        self._thread = threading.Thread(target=self._beat, name="mlflow-heartbeat", daemon=True)
        self._thread.start()

    def stop(self, timeout_s: float = 5.0) -> None:
        """Stops the thread; returns at once unless a refresh is under way."""
        self._stopped.set()
        if self._thread is not None:
            self._thread.join(timeout_s)
            self._thread = None

    def _beat(self) -> None:
        while not self._stopped.wait(self._interval_s):
            with self._lock:
                run_ids = list(self._run_ids)
            for run_id in run_ids:
                if self._stopped.is_set():
                    return
                try:
                    self._client.set_tag(run_id, HEARTBEAT_TAG, _now())
                except Exception as error:  # never into the run: retried at the next beat
                    logger.debug("Heartbeat of MLflow run %s failed: %s", run_id, error)


def watch_runs(client: mlflow.MlflowClient, parent_run_id: str, *, owns_parent: bool) -> Heartbeat:
    """At the start of a run: reaps the orphans of the parent run's experiment (a failure
    to is a warning, not the run's end) and returns a started heartbeat, which holds the
    parent run if this process ``owns_parent``."""
    try:
        experiment_id = client.get_run(parent_run_id).info.experiment_id
        reap_orphans(client, experiment_id, keep={parent_run_id})
    except MlflowException as error:
        logger.warning("Could not look for MLflow runs left RUNNING: %s", error)
    heartbeat = Heartbeat(client)
    if owns_parent:
        heartbeat.add(parent_run_id)
    heartbeat.start()
    return heartbeat


def reap_orphans(
    client: mlflow.MlflowClient,
    experiment_id: str,
    *,
    stale_after_s: float = STALE_AFTER_S,
    keep: Collection[str] = (),
) -> list[str]:
    """Marks KILLED the runs of ``experiment_id`` left RUNNING by a process that is gone.

    A run is an orphan when its heartbeat is older than ``stale_after_s``, or when it was
    run on this host by a process that no longer exists. Runs in ``keep`` and runs without
    a heartbeat tag (not opened by this project) are left alone. Each orphan gets the tag
    ``stop_reason = "orphaned: <why>"``.

    Returns:
        The ids of the runs marked KILLED.
    """
    host, now = socket.gethostname(), time.time()
    reaped: dict[str, str] = {}
    for run in _running(client, experiment_id):
        if run.info.run_id in keep:
            continue
        why = _orphaned_because(run, host, now, stale_after_s)
        if why is None:
            continue
        client.set_tag(run.info.run_id, STOP_REASON_TAG, f"orphaned: {why}")
        client.set_terminated(run.info.run_id, KILLED)
        reaped[run.info.run_id] = why
    if reaped:
        logger.warning(
            "Marked %d MLflow run(s) left RUNNING by a process that is gone as KILLED: %s",
            len(reaped),
            "; ".join(f"{run_id} ({why})" for run_id, why in reaped.items()),
        )
    return list(reaped)


def _running(client: mlflow.MlflowClient, experiment_id: str) -> list[Run]:
    runs: list[Run] = []
    token = None
    while True:
        running = "attributes.status = 'RUNNING'"
        page = client.search_runs([experiment_id], running, max_results=_PAGE, page_token=token)
        runs.extend(page)
        token = page.token
        if not token:
            return runs


def _orphaned_because(run: Run, host: str, now: float, stale_after_s: float) -> str | None:
    """Why ``run`` is an orphan, or None if it is not (or is not ours to judge)."""
    tags = run.data.tags
    try:
        heartbeat = float(tags[HEARTBEAT_TAG])
    except (KeyError, ValueError):
        return None
    if now - heartbeat > stale_after_s:
        return f"no heartbeat for {now - heartbeat:.0f} s"
    pid = tags.get(PID_TAG, "")
    if tags.get(HOST_TAG) == host and pid.isdigit() and not _alive(int(pid)):
        return f"process {pid} on {host} is gone"
    return None


def _alive(pid: int) -> bool:
    """Whether a process ``pid`` exists on this host (signal 0 checks without sending)."""
    if pid <= 0:  # 0 and negatives would address process groups
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # PermissionError: it exists, owned by another user
        pass
    return True
