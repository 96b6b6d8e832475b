"""``study``: the variants of ``kedro run``, checked when the run starts."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from transfer_study.config import StudySettings
from transfer_study.config.blocks import parameter_problems


def test_any_non_empty_set_of_known_variants_is_a_study():
    assert StudySettings(variants=["finetune", "frozen"]).variants == ["finetune", "frozen"]


@pytest.mark.parametrize(
    ("variants", "message"),
    [
        ([], "at least 1"),
        (["frozen", "frozen"], "repeated: frozen"),
        (["frozen", "finetune_bottom"], "finetune_bottom"),
        ("frozen", "valid list"),
    ],
)
def test_an_empty_repeated_or_unknown_list_is_refused(variants, message):
    with pytest.raises(ValidationError, match=message):
        StudySettings(variants=variants)


def test_the_run_start_check_names_the_study_block():
    problems = parameter_problems({"study": {"variants": ["frozen", "frozen"]}})
    assert [problem.path[:2] for problem in problems] == [("study", "variants")]
