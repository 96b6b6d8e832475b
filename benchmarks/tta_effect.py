"""Measures what test-time augmentation does to each variant's test accuracy.

    python benchmarks/tta_effect.py                      # every trained variant, every mode
    python benchmarks/tta_effect.py --variants finetune --modes none flip --device cpu

Needs a project where `kedro run` has finished: each variant's kept model
(data/06_models/<variant>/model.pt), the decoded-image cache and the split, read through
the Kedro catalog as the pipeline reads them. Each variant's checkpoint is evaluated on
the test split with each TTA mode through `evaluate_on_test`, with the `evaluation`
parameters of the project (its bootstrap settings, so the intervals are the cluster
bootstrap over physical samples of the study's own report). Prints a Markdown table of
test accuracy [confidence interval] per variant × mode, and one of the seconds each mode
took (prediction, metrics and figure, summed over the variants). Only the kept seed is
evaluated. This is a script, not a test: nothing is written to the project or MLflow.
"""

from __future__ import annotations

import argparse
import functools
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, get_args

import pandas as pd

from transfer_study.config import Device, EvaluationSettings, VariantName
from transfer_study.models.tta import TTA_MODES
from transfer_study.training.testing import evaluate_on_test

REPO_ROOT = Path(__file__).resolve().parents[1]
VARIANTS: tuple[str, ...] = get_args(VariantName)


@dataclass(frozen=True)
class Result:
    """One variant evaluated with one TTA mode."""

    variant: str
    mode: str
    accuracy: float
    ci_low: float
    ci_high: float
    seconds: float


@dataclass(frozen=True)
class Study:
    """What the evaluation reads from a finished study."""

    checkpoints: Mapping[str, Callable[[], Mapping[str, Any]]]
    decoded_images: Mapping[str, Callable[[], dict]]
    split: pd.DataFrame
    settings: EvaluationSettings


def load_study(project: Path, env: str | None, variants: Sequence[str]) -> Study:
    """Reads the study's outputs and ``evaluation`` parameters through the Kedro catalog.

    Variants without a saved model are left out (with a note); none at all is an error.
    """
    from kedro.framework.session import KedroSession
    from kedro.framework.startup import bootstrap_project

    bootstrap_project(project)
    with KedroSession.create(project_path=project, env=env) as session:
        context = session.load_context()
        catalog = context.catalog
        trained = [variant for variant in variants if catalog.exists(f"{variant}.model")]
        for variant in sorted(set(variants) - set(trained)):
            print(f"note: {variant} has no saved model; left out")
        if not trained:
            raise SystemExit(f"No trained model of {list(variants)} in {project}: run `kedro run`.")
        return Study(
            checkpoints={
                variant: (lambda name=f"{variant}.model": catalog.load(name)) for variant in trained
            },
            # Each entry read once, not once per evaluation: the seconds are the modes'.
            decoded_images={
                key: functools.cache(load) for key, load in catalog.load("decoded_images").items()
            },
            split=catalog.load("split"),
            settings=EvaluationSettings.model_validate(context.params["evaluation"]),
        )


def measure(study: Study, modes: Sequence[str], device: str | None = None) -> list[Result]:
    """Evaluates every variant with every mode; ``device`` replaces the parameter's.

    One untimed evaluation comes first, so that no mode's seconds include the one-off
    costs (loading the cache, cuDNN's autotuning, first allocations).
    """

    def settings_for(mode: str) -> EvaluationSettings:
        update: dict[str, Any] = {"tta": mode} | ({"device": device} if device else {})
        return EvaluationSettings.model_validate(study.settings.model_dump() | update)

    results = []
    for i, (variant, load) in enumerate(study.checkpoints.items()):
        checkpoint = load()
        if i == 0:
            evaluate_on_test(checkpoint, study.decoded_images, study.split, settings_for("none"))
        for mode in modes:
            settings = settings_for(mode)
            started = time.perf_counter()
            _, metrics, _ = evaluate_on_test(
                checkpoint, study.decoded_images, study.split, settings
            )
            seconds = time.perf_counter() - started
            results.append(
                Result(
                    variant=variant,
                    mode=mode,
                    accuracy=metrics["accuracy"],
                    ci_low=metrics["accuracy_ci_low"],
                    ci_high=metrics["accuracy_ci_high"],
                    seconds=seconds,
                )
            )
    return results


def markdown_tables(results: Sequence[Result], confidence: float) -> str:
    """Accuracy [interval] by variant (rows) and mode (columns); then seconds per mode."""
    modes = list(dict.fromkeys(result.mode for result in results))
    variants = list(dict.fromkeys(result.variant for result in results))
    cell = {
        (r.variant, r.mode): f"{r.accuracy:.3f} [{r.ci_low:.3f}, {r.ci_high:.3f}]" for r in results
    }
    lines = [
        f"| variant | {' | '.join(f'tta: {mode}' for mode in modes)} |",
        f"|---|{'---|' * len(modes)}",
        *(f"| {v} | {' | '.join(cell[v, m] for m in modes)} |" for v in variants),
        "",
        f"Test accuracy [{confidence:.0%} cluster-bootstrap interval over physical samples].",
        "",
        "| mode | seconds | × none |",
        "|---|---|---|",
    ]
    seconds = {m: sum(r.seconds for r in results if r.mode == m) for m in modes}
    for mode in modes:
        ratio = f"{seconds[mode] / seconds['none']:.1f}" if seconds.get("none") else "–"
        lines.append(f"| {mode} | {seconds[mode]:.1f} | {ratio} |")
    return "\n".join(lines)


def _parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--project", type=Path, default=REPO_ROOT, help="the Kedro project (default: this one)"
    )
    parser.add_argument("--env", help="Kedro configuration environment (default: local)")
    parser.add_argument(
        "--variants", nargs="+", choices=VARIANTS, default=list(VARIANTS), help="default: all"
    )
    parser.add_argument(
        "--modes", nargs="+", choices=TTA_MODES, default=list(TTA_MODES), help="default: all"
    )
    parser.add_argument(
        "--device",
        choices=get_args(Device),
        help="replaces evaluation.device (default: the parameter's)",
    )
    return parser.parse_args()


def main() -> None:
    args = _parse_args()
    study = load_study(args.project.resolve(), args.env, args.variants)
    results = measure(study, args.modes, args.device)
    print(markdown_tables(results, study.settings.confidence))


if __name__ == "__main__":
    main()
