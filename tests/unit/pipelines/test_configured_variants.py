"""``study.variants`` read from the configuration files when the pipeline is built, and
refused when a run changes it with ``--params``."""

from __future__ import annotations

import pytest
from kedro.config import MissingConfigException

from tests.helpers.parameters import REPO_ROOT
from transfer_study.config import ParameterError
from transfer_study.pipelines import configured
from transfer_study.pipelines.configured import (
    configured_study_variants,
    refuse_changed_variants,
)

CATALOGUE = ("scratch", "frozen", "finetune_top", "finetune")


def _configured_as(monkeypatch: pytest.MonkeyPatch, parameters: dict) -> None:
    monkeypatch.setattr(configured, "configured_parameters", lambda: parameters)


def test_the_configured_variants_come_in_the_study_order(monkeypatch):
    _configured_as(monkeypatch, {"study": {"variants": ["finetune", "scratch"]}})
    assert configured_study_variants(CATALOGUE) == ("scratch", "finetune")


@pytest.mark.parametrize(
    "parameters",
    [{}, {"study": {}}, {"study": {"variants": "frozen"}}, {"study": {"variants": ["bogus"]}}],
)
def test_without_a_usable_list_every_variant_is_built(monkeypatch, parameters):
    # An invalid list is reported by the start-of-run check, before the pipeline runs.
    _configured_as(monkeypatch, parameters)
    assert configured_study_variants(CATALOGUE) == CATALOGUE


def test_outside_a_project_every_variant_is_built(monkeypatch):
    def missing():
        raise MissingConfigException("no parameters")

    monkeypatch.setattr(configured, "configured_parameters", missing)
    assert configured_study_variants(CATALOGUE) == CATALOGUE


def test_the_shipped_study_leaves_the_partial_fine_tune_out(monkeypatch):
    monkeypatch.chdir(REPO_ROOT)
    assert configured_study_variants(CATALOGUE) == ("scratch", "frozen", "finetune")


def test_the_same_variants_in_another_order_pass():
    refuse_changed_variants(("scratch", "finetune"), ["finetune", "scratch"])


def test_other_variants_than_the_pipelines_are_refused_with_where_to_set_them():
    with pytest.raises(ParameterError, match="cannot be changed with --params") as caught:
        refuse_changed_variants(("scratch", "frozen", "finetune"), ["frozen", "finetune"])
    assert "conf/local/parameters_training.yml" in str(caught.value)
    assert "['finetune', 'frozen']" in str(caught.value)
