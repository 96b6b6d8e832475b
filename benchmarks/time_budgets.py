"""Times the README's two commands on a fresh clone and prints a table.

    python benchmarks/time_budgets.py            # clone HEAD into a temp dir and time it
    python benchmarks/time_budgets.py --skip-tests

Phases: install (new virtual environment), demo data, the default `kedro run`, and the
whole test suite. Budgets (2 CPU cores, the fair-study issue's): `kedro run` ≤ 5 min
(every variant trained to convergence), tests ≤ 20 min; set-up-and-run, install included,
≤ 15 min. Figures are recorded in docs/performance.md. This is a script,
not a test: timings depend on the machine.
"""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
BUDGETS_SECONDS = {"setup_and_run": 900, "kedro run": 300, "tests": 1200}


def _timed(label: str, command: list[str], cwd: Path, env: dict[str, str]) -> float:
    print(f"→ {label}: {' '.join(command)}", flush=True)
    started = time.perf_counter()
    completed = subprocess.run(
        command, cwd=cwd, env=env, capture_output=True, text=True, check=False
    )
    seconds = time.perf_counter() - started
    if completed.returncode != 0:
        output = f"{completed.stdout[-4000:]}\n{completed.stderr[-4000:]}"
        sys.exit(f"{label} failed ({completed.returncode}):\n{output}")
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--skip-tests", action="store_true", help="time only the set-up-and-run command"
    )
    args = parser.parse_args()

    env = {**os.environ, "KEDRO_DISABLE_TELEMETRY": "1"}
    env.pop("VIRTUAL_ENV", None)
    with tempfile.TemporaryDirectory(prefix="transfer-study-budget-") as scratch:
        clone = Path(scratch) / "clone"
        subprocess.run(["git", "clone", "--quiet", str(REPO_ROOT), str(clone)], check=True)
        kedro = str(clone / ".venv" / "bin" / "kedro")
        seconds = {
            "install": _timed("install", ["bash", "scripts/install.sh"], clone, env),
            "demo data": _timed("demo data", [kedro, "run", "--pipeline=demo_data"], clone, env),
            "kedro run": _timed("kedro run", [kedro, "run"], clone, env),
        }
        seconds["setup_and_run"] = sum(seconds.values())
        comparison = (clone / "data/08_reporting/variant_comparison.csv").read_text()
        if not args.skip_tests:
            python = str(clone / ".venv" / "bin" / "python")
            seconds["tests"] = _timed("tests", [python, "-m", "pytest", "-q"], clone, env)

    print(f"\nvariant comparison of that run:\n{comparison}")
    print(
        f"machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}"
    )
    print(f"{'phase':<15}{'seconds':>10}{'budget':>10}  verdict")
    for phase, value in seconds.items():
        budget = BUDGETS_SECONDS.get(phase)
        verdict = "" if budget is None else ("within" if value <= budget else "OVER")
        print(f"{phase:<15}{value:>10.1f}{budget or '':>10}  {verdict}")


if __name__ == "__main__":
    main()
