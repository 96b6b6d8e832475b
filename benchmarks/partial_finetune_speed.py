"""Times a full fine-tune step against a partial one (``finetune_top``), side by side.

    python benchmarks/partial_finetune_speed.py                  # 128 and 224 px, 2 stages
    python benchmarks/partial_finetune_speed.py --sizes 224 --stages 1 2 3

For each input size it builds the study's backbone (``model.backbone`` in
conf/base/parameters.yml) with its pretrained weights and times, on one in-memory batch
of 32 (no data loading), with AdamW and channels-last as the study trains:

* full: a training step of the whole classifier (forward, backward, update);
* partial: a training step of the last ``trainable_stages`` stages and the head on the
  early stages' output (what ``finetune_top`` trains on, from its cache);
* cache: the early stages' forward pass per photo, which the partial fine-tune pays once
  per photo and per augmented view instead of once per step.

It prints a Markdown table with the ratio full / partial per step. Accuracy is not
measured here: see docs/results.md ("At native size") for the study's own comparison.
Timings depend on the machine and on what else runs on it: measure on a quiet machine.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

import torch
import yaml
from time_budgets import REPO_ROOT
from torch import nn

from transfer_study.models.factory import create_classifier
from transfer_study.models.stages import cut_backbone
from transfer_study.training.device import tune_cpu_allocator

BATCH_SIZE = 32
WARMUP_STEPS = 2  # untimed: the first steps pay one-off allocations


def _backbone() -> str:
    parameters = yaml.safe_load((REPO_ROOT / "conf/base/parameters.yml").read_text())
    return parameters["model"]["backbone"]


def _seconds_per_call(call: Callable[[], None], repeats: int) -> float:
    for _ in range(WARMUP_STEPS):
        call()
    started = time.perf_counter()
    for _ in range(repeats):
        call()
    return (time.perf_counter() - started) / repeats


def _training_step(module: nn.Module, inputs: torch.Tensor) -> Callable[[], None]:
    optimizer = torch.optim.AdamW([p for p in module.parameters() if p.requires_grad], lr=1e-4)
    labels = torch.zeros(len(inputs), dtype=torch.long)
    module.train()

    def step() -> None:
        loss = nn.functional.cross_entropy(module(inputs), labels)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    return step


def measure(backbone: str, size: int, stages: int, repeats: int) -> dict[str, float]:
    """Seconds of a full step, a partial step and the early stages' pass per photo."""
    classifier = create_classifier(backbone, weights="imagenet", num_classes=2)
    classifier = classifier.to(memory_format=torch.channels_last)
    images = torch.randn(BATCH_SIZE, 3, size, size).contiguous(memory_format=torch.channels_last)
    cut = cut_backbone(classifier.backbone, backbone, stages)
    with torch.no_grad():
        frozen = cut.frozen.eval()
        cache = _seconds_per_call(lambda: frozen(images), repeats) / BATCH_SIZE
        early_output = frozen(images)
    full = _seconds_per_call(_training_step(classifier, images), repeats)
    top = nn.Sequential(cut.trainable, classifier.head)
    partial = _seconds_per_call(_training_step(top, early_output), repeats * 3)
    return {"full": full, "partial": partial, "cache_per_photo": cache}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[128, 224])
    parser.add_argument("--stages", type=int, nargs="+", default=[2])
    parser.add_argument("--repeats", type=int, default=5, help="timed full steps")
    args = parser.parse_args()
    tune_cpu_allocator()  # as the study's training does, once per process
    backbone = _backbone()
    print(
        f"{backbone}, batch {BATCH_SIZE}, AdamW, channels-last, {torch.get_num_threads()} threads\n"
    )
    columns = ["input", "trainable stages", "full step (s)", "partial step (s)"]
    columns += ["full / partial", "early stages per photo (s)"]
    print("| " + " | ".join(columns) + " |")
    print("|---|---|---|---|---|---|")
    for size in args.sizes:
        for stages in args.stages:
            m = measure(backbone, size, stages, args.repeats)
            print(
                f"| {size} px | {stages} | {m['full']:.3f} | {m['partial']:.3f} | "
                f"{m['full'] / m['partial']:.1f}× | {m['cache_per_photo']:.4f} |"
            )


if __name__ == "__main__":
    main()
