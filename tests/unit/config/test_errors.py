"""The parameter message: key path, bad value, what is allowed, and where it is defined."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from transfer_study.config import SplitSettings, TrainingSettings, VariantOverrides
from transfer_study.config.errors import (
    ParameterError,
    Problem,
    dotted,
    parameter_message,
    parse_settings,
    problems_from,
)


def _problems(model, raw, block):
    with pytest.raises(ValidationError) as raised:
        model.model_validate(raw)
    return problems_from(raised.value, model, block)


def test_dotted_paths_join_keys_and_index_lists():
    assert dotted(("demo_data", "view", "scale", 1)) == "demo_data.view.scale[1]"
    assert dotted(("finetune",)) == "finetune"


def test_an_unknown_key_names_the_closest_allowed_keys():
    (problem,) = _problems(VariantOverrides, {"lrr": 0.001}, "finetune")
    assert problem.path == ("finetune", "lrr")
    assert problem.value == 0.001
    assert problem.message.startswith("unknown key; did you mean lr? allowed: amp, ")


def test_an_unknown_nested_key_lists_the_nested_model_keys():
    (problem,) = _problems(VariantOverrides, {"head": {"type": "linear", "droput": 0}}, "scratch")
    assert problem.path == ("scratch", "head", "droput")
    assert problem.message == (
        "unknown key; did you mean dropout? allowed: dropout, hidden_units, type"
    )


def test_an_out_of_range_value_says_what_is_allowed_and_what_the_key_means():
    (problem,) = _problems(
        SplitSettings, {"val_fraction": 1.5, "test_fraction": 0.25, "seed": 0}, "split"
    )
    assert (problem.path, problem.value) == (("split", "val_fraction"), 1.5)
    assert problem.message == "Input should be less than 1"
    assert problem.hint == SplitSettings.model_fields["val_fraction"].description


def test_a_missing_key_has_no_value():
    problems = _problems(TrainingSettings, {}, "scratch")
    assert all(problem.message == "missing" for problem in problems)
    assert ("scratch", "lr") in {problem.path for problem in problems}


def test_the_message_lists_every_problem_with_its_source():
    problems = [
        Problem(("finetune", "lrr"), "unknown key", 0.001),
        Problem(("split", "val_fraction"), "Input should be less than 1", 1.5, "share held out"),
        Problem(("frozen", "max_images"), "missing"),
    ]
    sources = {"finetune": "from --params", "split": "conf/base/p.yml", "frozen": "conf/base/t.yml"}
    message = parameter_message(problems, lambda path: sources[path[0]])
    assert message.splitlines() == [
        "3 invalid parameter(s); nothing has run:",
        "  - finetune.lrr = 0.001 (from --params): unknown key",
        "  - split.val_fraction = 1.5 (conf/base/p.yml): Input should be less than 1 "
        "[share held out]",
        "  - frozen.max_images (conf/base/t.yml): missing",
    ]


def test_long_values_are_shortened():
    message = parameter_message([Problem(("model",), "bad", "x" * 500)])
    assert len(message.splitlines()[1]) < 160
    assert message.splitlines()[1].endswith("…: bad")


def test_parse_settings_raises_one_value_error_naming_the_block():
    with pytest.raises(ParameterError, match=r"split\.seed = -1: .*greater than or equal to 0"):
        parse_settings(
            SplitSettings, {"val_fraction": 0.1, "test_fraction": 0.1, "seed": -1}, block="split"
        )
    assert issubclass(ParameterError, ValueError)
