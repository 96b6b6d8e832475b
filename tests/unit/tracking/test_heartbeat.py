"""Heartbeats on runs, and the reaping of runs whose process is gone."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import mlflow
import pytest

from transfer_study.tracking.heartbeat import (
    HEARTBEAT_TAG,
    HOST_TAG,
    PID_TAG,
    STALE_AFTER_S,
    Heartbeat,
    process_tags,
    reap_orphans,
)

OTHER_HOST = "another-host.invalid"


@pytest.fixture(scope="module")
def database(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """One sqlite store for the module (creating one takes seconds)."""
    folder = tmp_path_factory.mktemp("heartbeat")
    uri = f"sqlite:///{folder / 'mlflow.db'}"
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MLFLOW_TRACKING_URI", uri)
        mlflow.set_tracking_uri(uri)
        yield folder
    mlflow.set_tracking_uri(None)


@pytest.fixture
def store(database: Path, request: pytest.FixtureRequest) -> tuple:
    """A client and an experiment of the test's own."""
    client = mlflow.MlflowClient()
    experiment_id = client.create_experiment(
        request.node.name, artifact_location=(database / request.node.name).as_uri()
    )
    return client, experiment_id


@pytest.fixture(scope="module")
def dead_pid() -> int:
    """The pid of a process that has run and been waited for."""
    done = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        capture_output=True,
        text=True,
        check=True,
    )
    pid = int(done.stdout)
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)  # not reused meanwhile
    return pid


def _run(client, experiment_id: str, **tags: str) -> str:
    return client.create_run(experiment_id, tags=tags).info.run_id


def _tags(host: str, pid: int, age_s: float) -> dict[str, str]:
    return {HOST_TAG: host, PID_TAG: str(pid), HEARTBEAT_TAG: f"{time.time() - age_s:.0f}"}


def _status(client, run_id: str) -> str:
    return client.get_run(run_id).info.status


def test_process_tags_name_this_process():
    tags = process_tags()
    assert tags[HOST_TAG] == socket.gethostname()
    assert tags[PID_TAG] == str(os.getpid())
    assert abs(float(tags[HEARTBEAT_TAG]) - time.time()) < 5


def test_orphans_are_killed_and_live_or_foreign_runs_are_left_alone(store, dead_pid: int):
    client, experiment_id = store
    host = socket.gethostname()
    dead = _run(client, experiment_id, **_tags(host, dead_pid, age_s=1))
    stale = _run(client, experiment_id, **_tags(OTHER_HOST, os.getpid(), age_s=412))
    alive = _run(client, experiment_id, **_tags(host, os.getpid(), age_s=1))
    # Another host's pid means nothing here: only its heartbeat counts.
    elsewhere = _run(client, experiment_id, **_tags(OTHER_HOST, dead_pid, age_s=1))
    foreign = _run(client, experiment_id, **{HOST_TAG: host, PID_TAG: str(dead_pid)})
    finished = _run(client, experiment_id, **_tags(host, dead_pid, age_s=1000))
    client.set_terminated(finished, "FINISHED")

    reaped = reap_orphans(client, experiment_id)

    assert sorted(reaped) == sorted([dead, stale])
    assert _status(client, dead) == "KILLED"
    assert client.get_run(dead).data.tags["stop_reason"] == (
        f"orphaned: process {dead_pid} on {host} is gone"
    )
    assert _status(client, stale) == "KILLED"
    reason = client.get_run(stale).data.tags["stop_reason"]
    assert reason.startswith("orphaned: no heartbeat for 41") and reason.endswith(" s")
    for run_id in (alive, elsewhere, foreign):
        assert _status(client, run_id) == "RUNNING"
        assert "stop_reason" not in client.get_run(run_id).data.tags
    assert _status(client, finished) == "FINISHED"
    assert reap_orphans(client, experiment_id) == []


def test_kept_runs_are_not_reaped_and_stale_after_is_honoured(store, dead_pid: int):
    client, experiment_id = store
    kept = _run(client, experiment_id, **_tags(socket.gethostname(), dead_pid, age_s=1))
    slow = _run(client, experiment_id, **_tags(OTHER_HOST, 1, age_s=STALE_AFTER_S - 60))
    assert reap_orphans(client, experiment_id, keep={kept}) == []
    assert reap_orphans(client, experiment_id, keep={kept}, stale_after_s=30) == [slow]
    assert _status(client, kept) == "RUNNING"


def test_reaping_logs_one_warning(store, dead_pid: int, caplog: pytest.LogCaptureFixture):
    client, experiment_id = store
    for _ in range(2):
        _run(client, experiment_id, **_tags(socket.gethostname(), dead_pid, age_s=1))
    with caplog.at_level("WARNING", logger="transfer_study.tracking.heartbeat"):
        reap_orphans(client, experiment_id)
    (record,) = caplog.records
    assert "2 MLflow run(s)" in record.getMessage()


def _heartbeat_of(client, run_id: str) -> str:
    return client.get_run(run_id).data.tags[HEARTBEAT_TAG]


def _wait_for(condition, timeout_s: float = 10) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def test_the_heartbeat_refreshes_held_runs_until_stopped(store):
    client, experiment_id = store
    held = _run(client, experiment_id, **{HEARTBEAT_TAG: "0"})
    dropped = _run(client, experiment_id, **{HEARTBEAT_TAG: "0"})
    heartbeat = Heartbeat(client, interval_s=0.05)
    heartbeat.add(held)
    heartbeat.start()
    try:
        _wait_for(lambda: _heartbeat_of(client, held) != "0")
        assert abs(float(_heartbeat_of(client, held)) - time.time()) < 5
        assert _heartbeat_of(client, dropped) == "0"  # never added

        heartbeat.add(dropped)
        _wait_for(lambda: _heartbeat_of(client, dropped) != "0")
        heartbeat.discard(dropped)
        time.sleep(0.2)  # a beat under way when discarded may still land
        client.set_tag(dropped, HEARTBEAT_TAG, "1")
        time.sleep(0.3)  # six beats
        assert _heartbeat_of(client, dropped) == "1"
    finally:
        start = time.monotonic()
        heartbeat.stop()
        assert time.monotonic() - start < 1
    client.set_tag(held, HEARTBEAT_TAG, "2")
    time.sleep(0.3)
    assert _heartbeat_of(client, held) == "2"


class _FlakyClient:
    """Fails its first calls, as a tracking server that is down would."""

    def __init__(self, failures: int) -> None:
        self.failures = failures
        self.tags: list[tuple[str, str, str]] = []

    def set_tag(self, run_id: str, key: str, value: str) -> None:
        if self.failures:
            self.failures -= 1
            raise ConnectionError("server down")
        self.tags.append((run_id, key, value))


def test_a_failing_refresh_does_not_stop_the_heartbeat():
    client = _FlakyClient(failures=3)
    heartbeat = Heartbeat(client, interval_s=0.05)  # type: ignore[arg-type]
    heartbeat.add("run")
    heartbeat.start()
    try:
        _wait_for(lambda: client.tags)
    finally:
        heartbeat.stop()
    assert client.failures == 0
    assert client.tags[0][:2] == ("run", HEARTBEAT_TAG)
