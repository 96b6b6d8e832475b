"""The pyfunc model served over HTTP by ``mlflow models serve``, as docs/checkpoints.md shows.

One server (``--env-manager local``, its own process group) serves a tiny checkpoint's
model for the whole module. The requests are the documented ones: a photo's bytes
base64-encoded in the ``image`` column, a server-side file path in the ``path`` column
(one request each), and one request mixing both; each answer must equal what the same
model predicts in process (``mlflow.pyfunc.load_model(...).predict``).
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import mlflow.pyfunc
import pandas as pd
import pytest

from tests.helpers.photos import write_photo
from tests.helpers.tiny_models import save_tiny_checkpoint
from transfer_study.inference.pyfunc import (
    IMAGE_COLUMN,
    PATH_COLUMN,
    image_classifier_model_kwargs,
)

pytestmark = pytest.mark.slow

REPO_ROOT = Path(__file__).resolve().parents[2]
DOCS = REPO_ROOT / "docs" / "checkpoints.md"
HOST = "127.0.0.1"
# The documented address, which the documented curl commands are sent to.
DOCUMENTED_ADDRESS = "127.0.0.1:5001"
# Seconds a fresh server may take to import MLflow, torch and timm on a busy CPU.
START_TIMEOUT = 300
POLL_INTERVAL = 0.5
REQUEST_TIMEOUT = 120
# Seconds the server has to exit after SIGTERM before its process group is killed.
STOP_TIMEOUT = 20
LOG_TAIL = 6000
TOLERANCE = 1e-6
STRING_FIELDS = ("predicted", "status", "error")


@dataclass(frozen=True)
class Served:
    address: str
    url: str
    model_dir: Path
    photos: list[Path]
    log: Path


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        return sock.getsockname()[1]


def _log_tail(log: Path) -> str:
    text = log.read_text(errors="replace") if log.exists() else ""
    return f"--- server log ({log}), last {LOG_TAIL} characters ---\n{text[-LOG_TAIL:]}"


def _wait_until_ready(process: subprocess.Popen, url: str, log: Path) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(
                f"`mlflow models serve` exited with code {process.returncode} before "
                f"answering GET {url}/ping.\n{_log_tail(log)}"
            )
        try:
            with urllib.request.urlopen(f"{url}/ping", timeout=POLL_INTERVAL * 4) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        time.sleep(POLL_INTERVAL)
    pytest.fail(
        f"`mlflow models serve` did not answer GET {url}/ping within {START_TIMEOUT} s.\n"
        f"{_log_tail(log)}"
    )


def _stop(process: subprocess.Popen, pgid: int) -> None:
    """SIGTERM to the server's process group, then SIGKILL to whatever is left of it."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pgid, signal.SIGTERM)
    with contextlib.suppress(subprocess.TimeoutExpired):
        process.wait(timeout=STOP_TIMEOUT)
    # Also reaches workers that outlived the leader; a no-op when the group is gone.
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pgid, signal.SIGKILL)
    process.wait(timeout=STOP_TIMEOUT)


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    root = tmp_path_factory.mktemp("serving")
    checkpoint = save_tiny_checkpoint(root / "06_models" / "tiny" / "model.pt")
    model_dir = root / "image_classifier"
    mlflow.pyfunc.save_model(
        path=model_dir, **image_classifier_model_kwargs(checkpoint, device="cpu", top_k=2)
    )
    photos = [
        write_photo(root / "photos" / "photo.jpg", seed=1, size=48),
        write_photo(root / "photos" / "photo.png", seed=2, size=40, fmt="PNG"),
    ]
    port = _free_port()
    address = f"{HOST}:{port}"
    url = f"http://{address}"
    log = root / "server.log"
    # The server starts `uvicorn` from PATH: this interpreter's environment first.
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    command = [
        str(Path(sys.executable).with_name("mlflow")),
        "models",
        "serve",
        "-m",
        str(model_dir),
        "--env-manager",
        "local",
        "-h",
        HOST,
        "-p",
        str(port),
    ]
    with log.open("wb") as log_file:
        process = subprocess.Popen(
            command,
            cwd=root,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        pgid = os.getpgid(process.pid)
        try:
            _wait_until_ready(process, url, log)
            yield Served(address, url, model_dir, photos, log)
        finally:
            _stop(process, pgid)


def _b64(path: Path) -> str:
    return base64.b64encode(path.read_bytes()).decode("ascii")


def _split(columns: list[str], data: list[list[Any]]) -> dict[str, Any]:
    return {"dataframe_split": {"columns": columns, "data": data}}


def _post(served: Served, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    request = urllib.request.Request(
        f"{served.url}/invocations",
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=REQUEST_TIMEOUT) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read() or b"{}")


def _predictions(served: Served, body: dict[str, Any]) -> list[dict[str, Any]]:
    status, answer = _post(served, body)
    assert status == 200, f"{status}: {answer}\n{_log_tail(served.log)}"
    return answer["predictions"]


def _in_process(served: Served, frame: pd.DataFrame) -> list[dict[str, Any]]:
    model = mlflow.pyfunc.load_model(str(served.model_dir))
    return model.predict(frame).to_dict("records")


def _assert_same(served_rows: list[dict[str, Any]], local_rows: list[dict[str, Any]]) -> None:
    assert len(served_rows) == len(local_rows)
    for got, expected in zip(served_rows, local_rows, strict=True):
        assert set(got) == set(expected)
        assert got["status"] == "ok", got
        for name in STRING_FIELDS:
            assert got[name] == expected[name], name
        top_k = json.loads(got["top_k"])
        assert list(top_k) == list(json.loads(expected["top_k"]))
        assert top_k == pytest.approx(json.loads(expected["top_k"]), abs=TOLERANCE)
        numbers = [name for name in expected if name == "probability" or name.startswith("prob_")]
        assert len(numbers) > 1
        for name in numbers:
            assert got[name] == pytest.approx(expected[name], abs=TOLERANCE), name


def test_base64_bytes_in_image_and_a_server_side_path_in_path_answer_like_in_process(served):
    jpeg, png = served.photos

    from_bytes = _predictions(served, _split([IMAGE_COLUMN], [[_b64(jpeg)]]))
    from_path = _predictions(served, _split([PATH_COLUMN], [[str(png)]]))

    _assert_same(from_bytes, _in_process(served, pd.DataFrame({IMAGE_COLUMN: [jpeg.read_bytes()]})))
    _assert_same(from_path, _in_process(served, pd.DataFrame({PATH_COLUMN: [str(png)]})))


def test_one_request_may_mix_both_columns_one_value_per_row(served):
    jpeg, png = served.photos
    # `""`, not null, in `image`: MLflow base64-decodes every value of a binary column.
    body = _split([IMAGE_COLUMN, PATH_COLUMN], [[_b64(jpeg), None], ["", str(png)]])

    _assert_same(
        _predictions(served, body),
        _in_process(served, pd.DataFrame({PATH_COLUMN: [str(jpeg), str(png)]})),
    )


@pytest.mark.parametrize(
    ("row", "reason"),
    [
        (["", None], "Row 0: no image given"),
        (["AAAA", "/photos/photo.jpg"], "Row 0: both 'image' and 'path' are given"),
    ],
)
def test_a_row_without_exactly_one_image_is_refused_with_the_reason(served, row, reason):
    status, answer = _post(served, _split([IMAGE_COLUMN, PATH_COLUMN], [row]))
    assert status == 400, answer
    assert reason in answer["message"]


def _documented_curls() -> list[str]:
    section = DOCS.read_text().split("### Serve it over HTTP", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```bash\n(.*?)```", section, flags=re.DOTALL)
    return [block for block in blocks if block.startswith("curl ")]


def test_the_documented_curl_requests_run_as_written(served, tmp_path):
    if shutil.which("curl") is None or shutil.which("base64") is None:
        pytest.skip("curl and base64 are needed to run the documented requests")
    curls = _documented_curls()
    assert len(curls) == 2, "docs/checkpoints.md: one curl per column"
    jpeg = served.photos[0]
    shutil.copy(jpeg, tmp_path / "photo.jpg")
    expected = _in_process(served, pd.DataFrame({IMAGE_COLUMN: [jpeg.read_bytes()]}))
    for curl in curls:
        completed = subprocess.run(
            ["bash", "-euo", "pipefail", "-c", curl.replace(DOCUMENTED_ADDRESS, served.address)],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=REQUEST_TIMEOUT,
            check=False,
        )
        assert completed.returncode == 0, completed.stderr
        answer = json.loads(completed.stdout)
        assert "predictions" in answer, f"{curl}\n{answer}"
        _assert_same(answer["predictions"], expected)
