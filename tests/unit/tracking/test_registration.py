"""ChildRunHook's registry handlers: ``registry_check`` and ``register`` datasets."""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path
from typing import Any

import mlflow
import pytest
from mlflow.exceptions import MlflowException

from transfer_study.tracking import registration
from transfer_study.tracking.hooks import ChildRunHook
from transfer_study.tracking.registry import RegistryConflictError

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
    """A client of a store of this test's own, an experiment whose artifacts stay in
    ``tmp_path``, and a parent run in it."""
    shutil.copy(empty_store, tmp_path / "mlflow.db")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    mlflow.set_tracking_uri(f"sqlite:///{tmp_path / 'mlflow.db'}")
    client = mlflow.MlflowClient()
    experiment_id = client.create_experiment(
        "registration", artifact_location=(tmp_path / "artifacts").as_uri()
    )
    parent = client.create_run(experiment_id, run_name="parent")
    yield client, experiment_id, parent.info.run_id
    while mlflow.active_run():
        mlflow.end_run()


def _chosen(variant: str = "frozen", **changes: Any) -> dict[str, Any]:
    """What ``choose_model_to_register`` returns when it chose ``variant``."""
    return {
        "register": True,
        "name": NAME,
        "backbone": BACKBONE,
        "class_names": list(CLASSES),
        "promote_across_splits": False,
        "variant": variant,
        "val_metric": 0.8,
        "split_fingerprint": "split-a",
        "tags": {"variant": variant, "backbone": BACKBONE, "split_fingerprint": "split-a"},
        **changes,
    }


def _hook_with_logged_model(
    experiment_id: str, variant: str = "frozen"
) -> tuple[ChildRunHook, str]:
    """A hook that logged ``variant``'s model (in a run of its own), and that run's id."""
    with mlflow.start_run(experiment_id=experiment_id) as run:
        info = mlflow.pyfunc.log_model(name="m", python_model=_Echo(), pip_requirements=[])
    hook = ChildRunHook()
    hook._logged_models = {variant: (info.model_uri, run.info.run_id)}
    return hook, run.info.run_id


# ---------------------------------------------------------------------------- register


def test_register_registers_the_chosen_variant_and_records_it_in_the_run(tracking):
    client, experiment_id, parent_id = tracking
    hook, model_run_id = _hook_with_logged_model(experiment_id)
    hook._base_tags = {"pipeline": "__default__", "git_commit": "0123abc"}

    hook._log_register(parent_id, _chosen(), {}, "model_registration")

    version = client.get_model_version_by_alias(NAME, "champion")
    assert int(version.version) == 1
    assert version.tags["git_commit"] == "0123abc" and version.tags["variant"] == "frozen"
    assert version.run_id == model_run_id  # the run that logged the model, not the parent
    assert version.source == hook._logged_models["frozen"][0]
    assert client.get_run(parent_id).data.tags["registered_model"] == f"{NAME}/1"
    recorded = json.loads(mlflow.artifacts.load_text(f"runs:/{parent_id}/model_registration.json"))
    assert recorded == {
        "variant": "frozen",
        "name": NAME,
        "version": 1,
        "champion": 1,
        "previous_champion": None,
        "champion_moved": True,
        "reason": "no champion yet",
    }


def test_register_passes_promote_across_splits_on(tracking):
    client, experiment_id, parent_id = tracking
    hook, _ = _hook_with_logged_model(experiment_id)
    hook._log_register(parent_id, _chosen(), {}, "model_registration")
    moved = _chosen(split_fingerprint="split-b", val_metric=0.1, promote_across_splits=True)

    hook._log_register(parent_id, moved, {}, "model_registration")

    assert int(client.get_model_version_by_alias(NAME, "champion").version) == 2
    assert client.get_run(parent_id).data.tags["registered_model"] == f"{NAME}/2"


def test_register_false_registers_nothing(tracking, caplog):
    client, experiment_id, parent_id = tracking
    hook, _ = _hook_with_logged_model(experiment_id)
    skipped = {"register": False, "reason": "registry.enabled is false"}

    with caplog.at_level(logging.INFO, logger=registration.__name__):
        hook._log_register(parent_id, skipped, {}, "model_registration")

    assert client.search_registered_models() == []
    assert "registered_model" not in client.get_run(parent_id).data.tags
    assert "registry.enabled is false" in caplog.text


def test_a_variant_whose_model_was_not_logged_warns_and_registers_nothing(tracking, caplog):
    client, _, parent_id = tracking
    hook = ChildRunHook()
    hook._logged_models = {"scratch": ("models:/m-scratch", "scratch-run")}

    with caplog.at_level(logging.WARNING, logger=registration.__name__):
        hook._log_register(parent_id, _chosen("frozen"), {}, "model_registration")

    assert client.search_registered_models() == []
    assert "registered_model" not in client.get_run(parent_id).data.tags
    warnings = [r for r in caplog.records if r.name == registration.__name__]
    assert len(warnings) == 1
    assert "'frozen'" in warnings[0].getMessage()
    assert "not logged" in warnings[0].getMessage()


def test_a_registry_failure_is_logged_and_tagged_not_raised(tracking, caplog, monkeypatch):
    client, experiment_id, parent_id = tracking
    hook, _ = _hook_with_logged_model(experiment_id)

    def _fail(*args, **kwargs):
        raise MlflowException("registry unreachable")

    monkeypatch.setattr(registration, "register_version", _fail)
    with caplog.at_level(logging.ERROR, logger=registration.__name__):
        hook._log_register(parent_id, _chosen(), {}, "model_registration")

    tags = client.get_run(parent_id).data.tags
    assert tags["registration_error"] == "registry unreachable"
    assert "registered_model" not in tags
    assert "registry unreachable" in caplog.text


# ---------------------------------------------------------------------------- registry_check


def _target(register: bool = True, backbone: str = BACKBONE) -> dict[str, Any]:
    """What ``resolve_registry_target`` returns."""
    return {
        "register": register,
        "name": NAME,
        "backbone": backbone,
        "class_names": list(CLASSES),
        "promote_across_splits": False,
    }


def _foreign_model(client: mlflow.MlflowClient) -> None:
    """``NAME`` registered for another backbone."""
    client.create_registered_model(
        NAME, tags={"backbone": "vit_small", "class_names": json.dumps(CLASSES)}
    )


def test_registry_check_refuses_a_name_that_holds_another_kind_of_model(tracking):
    client, _, parent_id = tracking
    _foreign_model(client)
    with pytest.raises(RegistryConflictError, match="backbone vit_small there, resnet18 here"):
        ChildRunHook()._log_registry_check(parent_id, _target(), {}, "registry_target")


def test_registry_check_passes_a_new_name_without_creating_it(tracking):
    client, _, parent_id = tracking
    ChildRunHook()._log_registry_check(parent_id, _target(), {}, "registry_target")
    assert client.search_registered_models() == []


def test_registry_check_does_nothing_when_registration_is_off(tracking):
    client, _, parent_id = tracking
    _foreign_model(client)
    ChildRunHook()._log_registry_check(parent_id, _target(register=False), {}, "registry_target")
