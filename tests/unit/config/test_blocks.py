"""Every parameter block of every environment fits its model; the run-wide check."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from transfer_study.config.blocks import (
    PARAMETER_BLOCKS,
    check_parameters,
    parameter_problems,
)
from transfer_study.config.errors import ParameterError

CONF = Path(__file__).parents[3] / "conf"
# What the `${runtime_params:...}` and `${globals:...}` interpolations resolve to.
RESOLVED = {("raw_images", "path"): "data/01_raw/x", ("inference", "photos"): "photos"}
RESOLVED[("inference", "model")] = "best"


def _merged(*envs: str) -> dict[str, Any]:
    """The parameters of ``envs``, later ones merged softly over earlier ones (as Kedro)."""
    params: dict[str, Any] = {}
    for env in envs:
        for path in sorted((CONF / env).glob("parameters*.yml")):
            for block, value in (yaml.safe_load(path.read_text()) or {}).items():
                if isinstance(value, dict) and isinstance(params.get(block), dict):
                    params[block] = {**params[block], **value}
                else:
                    params[block] = value
    for (block, key), value in RESOLVED.items():
        params[block][key] = value
    return params


@pytest.mark.parametrize("envs", [("base",), ("base", "full")])
def test_the_shipped_parameters_are_valid(envs: tuple[str, ...]):
    params = _merged(*envs)
    assert set(params) == set(PARAMETER_BLOCKS)
    assert parameter_problems(params) == []


def test_an_unknown_block_is_named_with_the_closest_known_one():
    params = {**_merged("base"), "finetun": {"lr": 0.1}}
    (problem,) = parameter_problems(params)
    assert problem.path == ("finetun",)
    assert problem.message.startswith("unknown parameter block; did you mean finetune?")


def test_a_setting_no_block_gives_is_named_at_the_variant():
    params = _merged("base")
    params["training_defaults"] = {
        k: v for k, v in params["training_defaults"].items() if k != "batch_size"
    }
    problems = parameter_problems(params)
    assert [problem.path[0] for problem in problems] == [
        "scratch",
        "frozen",
        "finetune_top",
        "finetune",
    ]
    assert {p.path[1] for p in problems} == {"batch_size"}
    assert problems[0].message == (
        "missing: set it in training_defaults (every variant) or in scratch"
    )


def test_check_parameters_raises_one_error_for_every_problem():
    params = _merged("base")
    params["finetune"] = {**params["finetune"], "lrr": 0.001}
    params["split"] = {**params["split"], "val_fraction": 1.5}
    with pytest.raises(ParameterError) as raised:
        check_parameters(params, lambda path: f"file of {path[0]}")
    lines = str(raised.value).splitlines()
    assert lines[0] == "2 invalid parameter(s); nothing has run:"
    assert lines[1].startswith("  - split.val_fraction = 1.5 (file of split): Input should be")
    assert lines[2].startswith("  - finetune.lrr = 0.001 (file of finetune): unknown key")
