"""Training at the weights' native resolution on a CPU: every way we have, side by side.

    python benchmarks/native_resolution.py --photos ../shared/data/hymenoptera
    python benchmarks/native_resolution.py --photos DIR --skip scratch progressive_scratch

On one photo folder and one split, at the backbone's native input size (224 px for
EfficientNet-Lite0), it trains each configuration to convergence with `kedro run` (in a
copy of this project, so your data/ is untouched) and prints one Markdown table: seconds
per epoch, epochs, training and whole-variant seconds, test accuracy, and the paired
difference from full fine-tuning on the same test samples (cluster bootstrap interval
and sign-flip p, over physical samples, as the comparison report computes them).

* frozen: the frozen variant (it also caches what the fine-tunes' probe needs)
* fine-tune: the study's fine-tune (plateau schedule, early stopping)
* partial fine-tune: `finetune_top` (later stages on cached early-stage outputs)
* progressive fine-tune / scratch: `progressive_scales: [0.5]`, then full size
* one-cycle and cosine fine-tune: `scheduler: onecycle` or `cosine` over
  `--onecycle-epochs` epochs (the cap), no early stopping, from the same validated
  learning rate
* scratch: the study's scratch
* tutorial: the PyTorch transfer-learning tutorial's fine-tuning loop (batch 4, SGD,
  StepLR, PIL decode every epoch; benchmarks/training_speed.py) for `--tutorial-epochs`
  epochs on the same split, the best validation epoch tested

Run nothing else meanwhile: on a small machine concurrent work distorts every figure.
"""

from __future__ import annotations

import argparse
import copy
import json
import math
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from time_budgets import REPO_ROOT
from torch import nn
from training_speed import (
    _tutorial_loader,
    _tutorial_model,
    load_parameters,
    print_table,
)

from transfer_study.evaluation.pairs import (
    bootstrap_difference_ci,
    per_sample_totals,
    sign_flip_test,
)
from transfer_study.models.preprocessing import preprocessing_for
from transfer_study.training.data import seed_everything
from transfer_study.training.device import pick_device

RESAMPLES = 10_000
REFERENCE = "fine-tune"
# Trained over a fixed horizon (`--onecycle-epochs`), not to convergence.
FIXED_HORIZON = ("one-cycle fine-tune", "cosine fine-tune")


@dataclass(frozen=True)
class Config:
    """One training: the variant it runs as and the parameters it changes."""

    label: str
    variant: str
    params: tuple[str, ...] = ()


@dataclass
class Outcome:
    """What one configuration measured."""

    label: str
    wall: float
    train_seconds: float
    epochs: float
    accuracy: float
    predictions: pd.DataFrame | None
    note: str = ""
    compute: str = ""


def _configs(onecycle_steps: int, batch_size: int) -> list[Config]:
    # Exactly one cycle: the cap is the cycle, no early stop, no min_steps floor beyond it.
    horizon = (
        f"finetune.max_images={onecycle_steps * batch_size}",
        f"finetune.min_steps={onecycle_steps}",
        "finetune.patience=null",
    )
    return [
        Config("frozen", "frozen"),
        Config("fine-tune", "finetune"),
        Config("partial fine-tune", "finetune_top"),
        Config("progressive fine-tune", "finetune", ("finetune.progressive_scales=[0.5]",)),
        Config("one-cycle fine-tune", "finetune", ("finetune.scheduler=onecycle", *horizon)),
        Config("cosine fine-tune", "finetune", ("finetune.scheduler=cosine", *horizon)),
        Config("scratch", "scratch"),
        Config("progressive scratch", "scratch", ("scratch.progressive_scales=[0.5]",)),
    ]


def _copy_project(target: Path) -> Path:
    ignore = shutil.ignore_patterns(".git", ".venv", "data", "mlruns", "__pycache__", "*.egg-info")
    shutil.copytree(REPO_ROOT, target, ignore=ignore)
    for layer in ("01_raw", "02_intermediate", "04_feature", "05_model_input", "06_models"):
        (target / "data" / layer).mkdir(parents=True, exist_ok=True)
    return target


def _kedro(project: Path, base: list[str], config: Config) -> float:
    params = ",".join([*base, *config.params])
    command = [
        str(Path(sys.executable).parent / "kedro"),
        "run",
        f"--to-nodes={config.variant}.evaluate_node",
        f"--params={params}",
    ]
    environment = {**os.environ, "PYTHONPATH": str(project / "src")}
    started = time.perf_counter()
    done = subprocess.run(command, cwd=project, capture_output=True, text=True, env=environment)
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        sys.exit(f"{config.label}: `{' '.join(command)}` failed:\n{done.stderr[-3000:]}")
    return seconds


def _outcome(project: Path, config: Config, wall: float) -> Outcome:
    reporting = project / "data" / "08_reporting" / config.variant
    summary = json.loads((reporting / "training_summary.json").read_text())
    metrics = json.loads((reporting / "test_metrics.json").read_text())
    predictions = pd.read_csv(
        project / "data" / "07_model_output" / config.variant / "test_predictions.csv"
    )
    sides = summary.get("input_sizes")
    note = f"{' → '.join(map(str, sides))} px" if sides else ""
    if config.label in FIXED_HORIZON:
        note = f"{summary['epochs_run']:.1f} epochs annealed, no early stopping"
    elif not summary["converged"]:
        note = f"{note}; not converged ({summary['stop_reason']})".lstrip("; ")
    return Outcome(
        config.label,
        wall,
        float(summary["train_seconds"]),
        float(summary["epochs_run"]),
        float(metrics["accuracy"]),
        predictions,
        note,
        f"{summary.get('precision', '?')}, "
        f"{'channels-last' if summary.get('channels_last') else 'contiguous'}",
    )


def _train_photos(project: Path) -> int:
    split = pd.read_csv(project / "data" / "05_model_input" / "split.csv")
    return int((split["split"] == "train").sum())


# ---------------------------------------------------------------------------- tutorial


def _lay_out_split(project: Path, photos: Path, folder: Path) -> Path:
    """Links the split's photos into ``folder/{train,val,test}/<class>/`` for ImageFolder."""
    split = pd.read_csv(project / "data" / "05_model_input" / "split.csv")
    for row in split.itertuples():
        target = folder / row.split / row.label / Path(row.path).name
        target.parent.mkdir(parents=True, exist_ok=True)
        os.link(photos / row.path, target)
    return folder


def _tutorial_accuracy(model: nn.Module, loader: torch.utils.data.DataLoader) -> float:
    model.eval()
    right = seen = 0
    with torch.no_grad():
        for inputs, labels in loader:
            right += int((model(inputs).argmax(dim=1) == labels).sum())
            seen += len(labels)
    return right / max(seen, 1)


def _tutorial(folder: Path, image_size: int, epochs: int) -> Outcome:
    """The tutorial's fine-tuning loop: ``epochs`` epochs, the best validation tested."""
    params = load_parameters()
    seed_everything(0)
    spec = preprocessing_for(params.model.backbone, image_size)
    model, optimizer = _tutorial_model(params.model, pick_device("cpu"), frozen=False)
    scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=7, gamma=0.1)
    criterion = nn.CrossEntropyLoss()
    train = _tutorial_loader(folder, spec, train=True)
    val = _tutorial_loader(folder, spec, train=False)
    best, best_state, train_seconds = -1.0, None, 0.0
    for _ in range(epochs):
        model.train()
        started = time.perf_counter()
        for inputs, labels in train:
            optimizer.zero_grad()
            criterion(model(inputs), labels).backward()
            optimizer.step()
        scheduler.step()
        train_seconds += time.perf_counter() - started
        accuracy = _tutorial_accuracy(model, val)
        if accuracy > best:
            best, best_state = accuracy, copy.deepcopy(model.state_dict())
    model.load_state_dict(best_state)
    (folder / "val").rename(folder / "tuning")
    (folder / "test").rename(folder / "val")  # _tutorial_loader's eval pass reads val/
    accuracy = _tutorial_accuracy(model, _tutorial_loader(folder, spec, train=False))
    return Outcome(
        "tutorial loop",
        train_seconds,
        train_seconds,
        float(epochs),
        accuracy,
        None,
        f"{epochs} epoch{'s' if epochs > 1 else ''}, best validation epoch",
        "float32, contiguous",
    )


# ---------------------------------------------------------------------------- report


def _paired(outcome: Outcome, reference: Outcome) -> str:
    """Reference − this, in points, with its cluster-bootstrap interval and p."""
    if outcome.predictions is None or reference.predictions is None or outcome is reference:
        return ""
    joined = reference.predictions.merge(outcome.predictions, on="path", suffixes=("_a", "_b"))
    correct = {
        "a": (joined["predicted_a"] == joined["label_a"]).to_numpy(),
        "b": (joined["predicted_b"] == joined["label_a"]).to_numpy(),
    }
    hits, sizes, classes = per_sample_totals(
        correct, joined["sample_id_a"].astype(str).to_numpy(), joined["label_a"].to_numpy()
    )
    options = {"balanced": False, "n_resamples": RESAMPLES, "seed": 0}
    low, high = bootstrap_difference_ci(
        hits["a"], hits["b"], sizes, classes, confidence=0.95, **options
    )
    p_value, _ = sign_flip_test(hits["a"], hits["b"], sizes, classes, **options)
    difference = 100 * (correct["a"].mean() - correct["b"].mean())
    return f"{difference:+.1f} [{100 * low:+.1f}, {100 * high:+.1f}], p {p_value:.2f}"


def _print(outcomes: list[Outcome]) -> None:
    reference = next((o for o in outcomes if o.label == REFERENCE), None)
    rows = [
        [
            o.label,
            f"{o.train_seconds / max(o.epochs, 1e-9):.1f}",
            f"{o.epochs:.1f}",
            f"{o.train_seconds:.0f}",
            f"{o.wall:.0f}",
            f"{100 * o.accuracy:.1f}",
            _paired(o, reference) if reference else "",
            o.compute,
            o.note,
        ]
        for o in outcomes
    ]
    header = [
        "training",
        "s / epoch",
        "epochs",
        "training s",
        "run s",
        "test accuracy %",
        f"{REFERENCE} − this, points [95 % CI], p",
        "computed in",
        "note",
    ]
    print_table(header, rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--photos", type=Path, required=True, help="the photo folder")
    parser.add_argument("--image-size", type=int, default=224)
    parser.add_argument("--split-seed", type=int, default=42)
    parser.add_argument("--onecycle-epochs", type=int, default=8)
    parser.add_argument("--tutorial-epochs", type=int, default=5)
    parser.add_argument("--skip", nargs="*", default=[], help="labels to skip, _ for space")
    args = parser.parse_args()
    photos = args.photos.resolve()
    skip = {label.replace("_", " ") for label in args.skip}
    with tempfile.TemporaryDirectory(prefix="native-resolution-") as scratch:
        project = _copy_project(Path(scratch) / "project")
        base = [
            f"raw_images.path={photos}",
            f"model.image_size={args.image_size}",
            f"split.seed={args.split_seed}",
            "registry.enabled=false",
        ]
        outcomes = []
        first = _kedro(project, base, Config("frozen", "frozen"))
        outcomes.append(_outcome(project, Config("frozen", "frozen"), first))
        batch_size = load_parameters().finetune.batch_size
        steps = math.ceil(args.onecycle_epochs * _train_photos(project) / batch_size)
        for config in _configs(steps, batch_size)[1:]:
            if config.label in skip:
                continue
            wall = _kedro(project, base, config)
            outcomes.append(_outcome(project, config, wall))
            print(f"{config.label}: {wall:.0f} s", file=sys.stderr, flush=True)
        if "tutorial loop" not in skip:
            folder = _lay_out_split(project, photos, Path(scratch) / "tutorial")
            outcomes.append(_tutorial(folder, args.image_size, args.tutorial_epochs))
    print(
        f"\n{photos.name}, {args.image_size} px, split seed {args.split_seed}, "
        f"{torch.get_num_threads()} threads\n"
    )
    _print(outcomes)
    print(
        "\nThe frozen run includes the split, decoding and the backbone features shared "
        "by the later runs (cached); every other run's time is its variant's own nodes."
    )


if __name__ == "__main__":
    np.seterr(all="ignore")
    main()
