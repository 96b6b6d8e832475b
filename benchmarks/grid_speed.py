"""The data-size ablation in one process against the grid runner, side by side.

Run in a project where `kedro run` has run (the study's caches and learning rates exist):

    python benchmarks/grid_speed.py                  # the project in this folder
    python benchmarks/grid_speed.py --project /path --workers 2

Each side starts from no cell outputs (they are moved aside first and put back after), so
both train every cell of the configured grid; the shared prefix is already cached for
both. Prints the wall time of each and their ratio. Run nothing else meanwhile: on a
small machine the two would compete for the cores.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

CELL_OUTPUTS = (
    "data/06_models/ablation",
    "data/07_model_output/ablation",
    "data/08_reporting/ablation",
)
RUNNER = "--runner=transfer_study.grid.DaskGridRunner"


def _kedro(project: Path, *args: str) -> float:
    command = [
        str(Path(sys.executable).parent / "kedro"),
        "run",
        "--pipeline=data_size_ablation",
        *args,
    ]
    started = time.perf_counter()
    completed = subprocess.run(command, cwd=project, capture_output=True, text=True)
    seconds = time.perf_counter() - started
    if completed.returncode != 0:
        sys.exit(f"`{' '.join(command)}` failed:\n{completed.stderr[-3000:]}")
    return seconds


def _without_cell_outputs(project: Path) -> None:
    for folder in CELL_OUTPUTS:
        shutil.rmtree(project / folder, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--project", type=Path, default=Path.cwd())
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    project = args.project.resolve()
    with tempfile.TemporaryDirectory(prefix="grid-speed-") as scratch:
        kept = Path(scratch) / "kept"
        for folder in CELL_OUTPUTS:  # the user's own cell outputs, restored at the end
            if (project / folder).exists():
                shutil.copytree(project / folder, kept / folder)
        try:
            _without_cell_outputs(project)
            sequential = _kedro(project)
            _without_cell_outputs(project)
            grid = _kedro(
                project, RUNNER, f"--params=data_size_ablation.cluster.workers={args.workers}"
            )
        finally:
            for folder in CELL_OUTPUTS:
                shutil.rmtree(project / folder, ignore_errors=True)
                if (kept / folder).exists():
                    shutil.copytree(kept / folder, project / folder)
    print("| run | wall time |\n|---|---|")
    print(f"| one process (`kedro run --pipeline=data_size_ablation`) | {sequential:.0f} s |")
    print(f"| grid runner, {args.workers} local workers | {grid:.0f} s |")
    print(f"\nsequential / grid: {sequential / grid:.2f}× ({os.cpu_count()} cores)")


if __name__ == "__main__":
    main()
