"""The Model Registry: registered-model names, the target check, versions and the champion."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import mlflow
import pytest

from transfer_study.errors import UserError
from transfer_study.tracking.registry import (
    RegistryConflictError,
    check_registration_target,
    register_version,
    registry_name,
)

NAME = "study"
BACKBONE = "resnet18"
CLASSES = ["ant", "bee"]


class _Echo(mlflow.pyfunc.PythonModel):
    def predict(self, context, model_input: list[str]) -> list[str]:
        return model_input


@pytest.fixture(scope="module")
def empty_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An MLflow database with its tables created (a fresh one takes seconds to set up)."""
    database = tmp_path_factory.mktemp("store") / "mlflow.db"
    mlflow.MlflowClient(f"sqlite:///{database}").search_experiments()
    return database


@pytest.fixture
def tracking(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, empty_store: Path):
    """A client of a store of this test's own, and an experiment whose artifacts stay in
    ``tmp_path``."""
    shutil.copy(empty_store, tmp_path / "mlflow.db")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    mlflow.set_tracking_uri(f"sqlite:///{tmp_path / 'mlflow.db'}")
    client = mlflow.MlflowClient()
    experiment_id = client.create_experiment(
        "registry", artifact_location=(tmp_path / "artifacts").as_uri()
    )
    yield client, experiment_id
    while mlflow.active_run():
        mlflow.end_run()


def _candidate(
    val_metric: float,
    *,
    split: str = "split-a",
    backbone: str = BACKBONE,
    class_names: list[str] = CLASSES,
) -> dict[str, Any]:
    """What ``choose_model_to_register`` returns for a chosen variant."""
    return {
        "register": True,
        "name": NAME,
        "backbone": backbone,
        "class_names": list(class_names),
        "promote_across_splits": False,
        "variant": "frozen",
        "val_metric": val_metric,
        "split_fingerprint": split,
        "tags": {
            "variant": "frozen",
            "backbone": backbone,
            "weights": "imagenet",
            "split_fingerprint": split,
            "val_metric_name": "accuracy",
            "test_accuracy": "0.8100",
            "seed": "7",
        },
    }


def _logged_model(experiment_id: str) -> tuple[str, str]:
    """A tiny logged model to register: its ``models:/<model_id>`` URI and its run."""
    with mlflow.start_run(experiment_id=experiment_id) as run:
        info = mlflow.pyfunc.log_model(name="m", python_model=_Echo(), pip_requirements=[])
    return info.model_uri, run.info.run_id


def _register(tracking, candidate: dict[str, Any], *, promote: bool = False) -> dict[str, Any]:
    client, experiment_id = tracking
    uri, run_id = _logged_model(experiment_id)
    return register_version(
        client,
        name=NAME,
        model_uri=uri,
        run_id=run_id,
        candidate=candidate,
        promote_across_splits=promote,
    )


def _champion(client: mlflow.MlflowClient) -> int:
    return int(client.get_model_version_by_alias(NAME, "champion").version)


# ---------------------------------------------------------------------------- names


def test_the_default_name_is_transfer_study_and_the_backbone():
    assert registry_name(None, "convnext_tiny") == "transfer-study-convnext_tiny"


def test_a_given_name_is_kept():
    assert registry_name("birds", "convnext_tiny") == "birds"


# ---------------------------------------------------------------------------- versions


def test_the_first_version_becomes_the_champion(tracking):
    client, _ = tracking
    outcome = _register(tracking, _candidate(0.8))
    assert outcome == {
        "name": NAME,
        "version": 1,
        "champion": 1,
        "previous_champion": None,
        "champion_moved": True,
        "reason": "no champion yet",
    }
    assert _champion(client) == 1


def test_the_registered_model_is_tagged_with_the_backbone_and_the_class_list(tracking):
    client, _ = tracking
    _register(tracking, _candidate(0.8, class_names=["cat", "ant", "bee"]))
    tags = client.get_registered_model(NAME).tags
    assert tags["backbone"] == BACKBONE
    assert json.loads(tags["class_names"]) == ["cat", "ant", "bee"]


def test_the_version_points_at_the_logged_model_and_its_run(tracking):
    client, experiment_id = tracking
    uri, run_id = _logged_model(experiment_id)
    register_version(
        client,
        name=NAME,
        model_uri=uri,
        run_id=run_id,
        candidate=_candidate(0.8),
        promote_across_splits=False,
    )
    version = client.get_model_version(NAME, "1")
    assert version.run_id == run_id
    assert version.source == uri


def test_the_version_tags_hold_the_candidates_tags_its_metric_and_split(tracking):
    client, _ = tracking
    candidate = _candidate(0.8125, split="fingerprint-123")
    _register(tracking, candidate)
    tags = client.get_model_version(NAME, "1").tags
    assert candidate["tags"].items() <= tags.items()
    assert float(tags["val_metric"]) == 0.8125
    assert tags["split_fingerprint"] == "fingerprint-123"


def test_a_better_version_on_the_same_split_takes_the_champion(tracking):
    client, _ = tracking
    _register(tracking, _candidate(0.8))
    outcome = _register(tracking, _candidate(0.9))
    assert outcome["version"] == 2
    assert outcome["champion"] == 2
    assert outcome["previous_champion"] == 1
    assert outcome["champion_moved"] is True
    assert outcome["reason"].startswith("beats it on the same split")
    assert _champion(client) == 2


@pytest.mark.parametrize("val_metric", [0.8, 0.7], ids=["equal", "lower"])
def test_a_version_that_does_not_beat_the_champion_leaves_it(tracking, val_metric):
    client, _ = tracking
    _register(tracking, _candidate(0.8))
    outcome = _register(tracking, _candidate(val_metric))
    assert outcome["version"] == 2
    assert outcome["champion"] == 1
    assert outcome["previous_champion"] == 1
    assert outcome["champion_moved"] is False
    assert "does not beat it on the same split" in outcome["reason"]
    assert "0.8000" in outcome["reason"]
    assert _champion(client) == 1


def test_the_champion_is_the_bar_not_the_latest_version(tracking):
    client, _ = tracking
    _register(tracking, _candidate(0.9))
    _register(tracking, _candidate(0.7))  # not the champion
    outcome = _register(tracking, _candidate(0.8))  # beats v2 but not the champion v1
    assert outcome["champion_moved"] is False
    assert outcome["previous_champion"] == 1
    assert _champion(client) == 1


def test_another_split_keeps_the_champion(tracking):
    client, _ = tracking
    _register(tracking, _candidate(0.8, split="split-a"))
    outcome = _register(tracking, _candidate(0.99, split="split-b"))
    assert outcome["champion_moved"] is False
    assert outcome["champion"] == 1
    assert "another split" in outcome["reason"]
    assert "promote_across_splits" in outcome["reason"]
    assert _champion(client) == 1


def test_another_split_takes_the_champion_when_promote_across_splits(tracking):
    client, _ = tracking
    _register(tracking, _candidate(0.8, split="split-a"))
    outcome = _register(tracking, _candidate(0.5, split="split-b"), promote=True)
    assert outcome["champion_moved"] is True
    assert outcome["champion"] == 2
    assert "promote_across_splits is true" in outcome["reason"]
    assert _champion(client) == 2


# ---------------------------------------------------------------------------- target check


def test_a_new_name_passes_the_check(tracking):
    client, _ = tracking
    check_registration_target(client, "never-registered", BACKBONE, CLASSES)


def test_the_same_backbone_and_class_list_pass_the_check(tracking):
    client, _ = tracking
    _register(tracking, _candidate(0.8))
    check_registration_target(client, NAME, BACKBONE, list(CLASSES))


def test_another_backbone_is_refused_naming_both(tracking):
    client, _ = tracking
    _register(tracking, _candidate(0.8))
    with pytest.raises(RegistryConflictError) as raised:
        check_registration_target(client, NAME, "efficientnet_b0", CLASSES)
    assert isinstance(raised.value, UserError)
    assert isinstance(raised.value, ValueError)
    message = str(raised.value)
    assert f"'{NAME}'" in message
    assert "backbone resnet18 there, efficientnet_b0 here" in message
    assert "class_names" not in message  # the classes agree
    assert "registry.name=" in message


def test_another_class_order_is_refused_naming_both(tracking):
    client, _ = tracking
    _register(tracking, _candidate(0.8, class_names=["a", "b"]))
    with pytest.raises(RegistryConflictError) as raised:
        check_registration_target(client, NAME, BACKBONE, ["b", "a"])
    message = str(raised.value)
    assert 'class_names ["a", "b"] there, ["b", "a"] here' in message
    assert "backbone" not in message  # the backbones agree


def test_a_registered_model_without_the_tags_is_refused(tracking):
    client, _ = tracking
    client.create_registered_model(NAME)
    with pytest.raises(RegistryConflictError) as raised:
        check_registration_target(client, NAME, BACKBONE, CLASSES)
    message = str(raised.value)
    assert "backbone (not set) there, resnet18 here" in message
    assert "class_names (not set) there" in message
