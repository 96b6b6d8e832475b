"""``CheckpointDataset``: a checkpoint from a file, or from a logged/registered MLflow model."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import mlflow
import pytest
import torch
from kedro.io.core import DatasetError

from tests.helpers.tiny_models import save_tiny_checkpoint, tiny_checkpoint
from transfer_study.datasets import CheckpointDataset, TorchDataset
from transfer_study.inference.model_choice import is_mlflow_model_uri
from transfer_study.tracking.model_logging import log_trained_model

CLASSIFIER = "classifier"  # the registered image_classifier model
PLAIN = "plain"  # a registered pyfunc that packs no checkpoint


class _Echo(mlflow.pyfunc.PythonModel):
    def predict(self, context, model_input: list[str]) -> list[str]:
        return model_input


def _assert_same_checkpoint(loaded: dict[str, Any], original: dict[str, Any]) -> None:
    assert loaded["format"] == original["format"]
    assert loaded["metadata"] == original["metadata"]
    assert loaded["state_dict"].keys() == original["state_dict"].keys()
    for key, tensor in original["state_dict"].items():
        assert torch.equal(loaded["state_dict"][key], tensor), key


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory):
    """A sqlite store where a study's model is registered as ``classifier`` (champion: its
    version 1) and a foreign pyfunc as ``plain``; yields the checkpoint and its run."""
    root = tmp_path_factory.mktemp("mlflow")
    uri = f"sqlite:///{root / 'mlflow.db'}"
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MLFLOW_TRACKING_URI", uri)
        mlflow.set_tracking_uri(uri)
        client = mlflow.MlflowClient()
        experiment_id = client.create_experiment(
            "checkpoints", artifact_location=(root / "artifacts").as_uri()
        )
        checkpoint = tiny_checkpoint(seed=3, variant="frozen")
        # In a run of the experiment, as under kedro-mlflow's run: MLflow puts a logged
        # model in the active run's experiment, not in that of the run_id it is given.
        with mlflow.start_run(experiment_id=experiment_id) as run:
            run_id = run.info.run_id
            model_uri = log_trained_model(run_id, checkpoint, root)
        mlflow.register_model(model_uri, CLASSIFIER)
        client.set_registered_model_alias(CLASSIFIER, "champion", "1")
        with mlflow.start_run(experiment_id=experiment_id):
            plain = mlflow.pyfunc.log_model(name="m", python_model=_Echo(), pip_requirements=[])
        mlflow.register_model(plain.model_uri, PLAIN)
        yield checkpoint, run_id
        while mlflow.active_run():
            mlflow.end_run()


# ---------------------------------------------------------------------------- files


def test_a_file_loads_like_a_torch_dataset(tmp_path: Path):
    path = save_tiny_checkpoint(tmp_path / "frozen" / "model.pt", seed=1)
    loaded = CheckpointDataset(filepath=str(path)).load()
    _assert_same_checkpoint(loaded, TorchDataset(filepath=str(path)).load())
    _assert_same_checkpoint(loaded, tiny_checkpoint(seed=1))


def test_a_file_exists_only_when_it_is_there(tmp_path: Path):
    path = tmp_path / "model.pt"
    assert not CheckpointDataset(filepath=str(path)).exists()
    save_tiny_checkpoint(path)
    assert CheckpointDataset(filepath=str(path)).exists()


@pytest.mark.parametrize("filepath", ["model.pt", "models:/x@champion"])
def test_save_is_refused(tmp_path: Path, filepath: str):
    path = str(tmp_path / filepath) if filepath == "model.pt" else filepath
    with pytest.raises(DatasetError, match="read-only"):
        CheckpointDataset(filepath=path).save(tiny_checkpoint())
    assert not (tmp_path / "model.pt").exists()


@pytest.mark.parametrize(
    ("filepath", "is_model"),
    [
        ("models:/x@champion", True),
        ("models:/x/3", True),
        ("runs:/abc/image_classifier", True),
        ("data/06_models/frozen/model.pt", False),
        ("s3://bucket/models/model.pt", False),
    ],
)
def test_mlflow_model_uris_are_told_from_files(filepath: str, is_model: bool):
    assert is_mlflow_model_uri(filepath) is is_model


# ---------------------------------------------------------------------------- MLflow models


def test_the_champion_loads_as_the_logged_checkpoint(store):
    checkpoint, _ = store
    loaded = CheckpointDataset(filepath=f"models:/{CLASSIFIER}@champion").load()
    _assert_same_checkpoint(loaded, checkpoint)


def test_a_version_and_a_run_uri_load_the_same_checkpoint(store):
    checkpoint, run_id = store
    for uri in (f"models:/{CLASSIFIER}/1", f"runs:/{run_id}/image_classifier"):
        _assert_same_checkpoint(CheckpointDataset(filepath=uri).load(), checkpoint)


def test_a_registered_model_exists(store):
    assert CheckpointDataset(filepath=f"models:/{CLASSIFIER}@champion").exists()


@pytest.mark.parametrize(
    "uri", ["models:/missing@champion", f"models:/{CLASSIFIER}@nonexistent", "models:/x/9"]
)
def test_a_missing_model_does_not_exist(store, uri: str):
    assert not CheckpointDataset(filepath=uri).exists()


def test_a_model_that_is_not_an_image_classifier_is_refused(store):
    with pytest.raises(DatasetError, match="image_classifier") as raised:
        CheckpointDataset(filepath=f"models:/{PLAIN}/1").load()
    assert f"models:/{PLAIN}/1" in str(raised.value)
