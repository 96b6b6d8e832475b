"""The training-speed benchmark runs end to end and prints tables that parse.

No timing is asserted: the figures depend on the machine and on what else runs on it.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
SCRIPT = REPO_ROOT / "benchmarks" / "training_speed.py"
# Generous: the quick run takes ~20 s on 2 idle cores, far longer on busy ones.
TIMEOUT_SECONDS = 600
MEASURED = [
    ("tutorial", "frozen"),
    ("ours", "frozen"),
    ("ours", "frozen"),
    ("tutorial", "finetune"),
    ("ours", "finetune"),
    ("ours", "finetune"),
    ("bound", "finetune"),
]
RATIOS = 3


def _run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(SCRIPT), *args],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=TIMEOUT_SECONDS,
        check=False,
    )


def _tables(output: str) -> dict[str, list[list[str]]]:
    """The Markdown tables of ``output``: body rows (as cells) by their first header cell."""
    tables: dict[str, list[list[str]]] = {}
    rows: list[list[str]] | None = None
    for line in output.splitlines():
        if not line.startswith("|"):
            rows = None
            continue
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if rows is None:
            rows = tables.setdefault(cells[0], [])
        elif not set(line) <= set("|-"):  # skip the separator line
            rows.append(cells)
    return tables


@pytest.fixture(scope="module")
def quick_tables() -> dict[str, list[list[str]]]:
    completed = _run("--quick")
    assert completed.returncode == 0, completed.stderr[-4000:]
    assert completed.stdout.startswith("machine: ")
    return _tables(completed.stdout)


@pytest.mark.slow
def test_quick_benchmark_prints_every_measurement_as_a_positive_number(quick_tables):
    rows = quick_tables["loop"]
    assert [(row[0], row[1]) for row in rows] == MEASURED
    for loop, variant, measure, value, unit, how in rows:
        assert float(value) > 0, (loop, variant, measure)
        assert unit in {"s", "img/s"}
        assert how


@pytest.mark.slow
def test_quick_benchmark_prints_each_ratio_with_a_target_and_verdict(quick_tables):
    rows = quick_tables["ratio"]
    assert len(rows) == RATIOS
    for _, value, target, verdict in rows:
        assert float(value.rstrip("×%").strip()) > 0
        assert target.startswith("≥ ")
        assert verdict in {"PASS", "FAIL"}
    assert "train images" not in quick_tables  # --quick skips the scaling table


def test_benchmark_rejects_a_training_set_too_small_to_time():
    completed = _run("--quick", "--images", "4")
    assert completed.returncode != 0
    assert "--images" in completed.stderr
