"""The MLflow pyfunc model: saved with its kwargs, loaded here and in a fresh process."""

from __future__ import annotations

import importlib.metadata
import json
import re
import subprocess
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path

import mlflow.pyfunc
import pandas as pd
import pytest
import torch
from mlflow.types import DataType

from tests.helpers.imports import third_party_imports
from tests.helpers.photos import write_photo
from tests.helpers.tiny_models import CLASS_NAMES, save_tiny_checkpoint, tiny_checkpoint
from transfer_study.config import InferenceSettings
from transfer_study.inference.predictor import NotACheckpointError
from transfer_study.inference.pyfunc import (
    CHECKPOINT_ARTIFACT,
    IMAGE_COLUMN,
    image_classifier_model_kwargs,
    pinned_requirements,
)
from transfer_study.pipelines.inference.nodes import classify_photos

INFERENCE_PARAMS = {"photos": "photos", "model": "best", "top_k": None, "device": "cpu"}
BATCH_SIZE = 4
PREDICTION_COLUMNS = ["predicted", "probability", "top_k", "status", "error"]
# Seconds a fresh interpreter may take to import torch, timm and MLflow and predict.
FRESH_PROCESS_TIMEOUT = 300
PYFUNC_MODULE = "transfer_study.inference.pyfunc"
# MLflow writes its own pin (mlflow==<version>) into every model's requirements.
PINNED_BY_MLFLOW = {"mlflow"}


@pytest.fixture
def checkpoint_file(tmp_path: Path) -> Path:
    return save_tiny_checkpoint(tmp_path / "06_models" / "tiny" / "model.pt")


@pytest.fixture
def photos(tmp_path: Path) -> Path:
    folder = tmp_path / "photos"
    for seed in range(3):
        write_photo(folder / f"p{seed}.jpg", seed=seed)
    (folder / "broken.jpg").write_bytes(b"\xff\xd8\xff truncated")
    return folder


@pytest.fixture
def saved_model(tmp_path: Path, checkpoint_file: Path) -> Path:
    path = tmp_path / "pyfunc"
    kwargs = image_classifier_model_kwargs(checkpoint_file, batch_size=BATCH_SIZE, device="cpu")
    mlflow.pyfunc.save_model(path=path, **kwargs)
    return path


def _pipeline_predictions(photos: Path) -> pd.DataFrame:
    """The inference node's output on the same folder and checkpoint."""
    loaders: dict[str, Callable[[], bytes]] = {
        path.name: path.read_bytes for path in sorted(photos.iterdir())
    }
    return classify_photos(
        loaders,
        tiny_checkpoint(),
        InferenceSettings(**INFERENCE_PARAMS, batch_size=BATCH_SIZE),
    ).set_index("path")


def _assert_same_predictions(pyfunc: pd.DataFrame, pipeline: pd.DataFrame) -> None:
    pd.testing.assert_frame_equal(
        pyfunc[["predicted", "status", "error"]].reset_index(drop=True),
        pipeline[["predicted", "status", "error"]].reset_index(drop=True),
        check_dtype=False,
    )
    assert pyfunc["probability"].tolist() == pytest.approx(
        pipeline["probability"].tolist(), abs=1e-5, nan_ok=True
    )
    for ours, theirs in zip(pyfunc["top_k"], pipeline["top_k"], strict=True):
        if pd.isna(theirs):
            assert pd.isna(ours)
        else:
            assert list(json.loads(ours)) == list(json.loads(theirs))
            assert json.loads(ours) == pytest.approx(json.loads(theirs), abs=1e-5)


def test_kwargs_pin_requirements_ship_the_code_and_describe_the_io(checkpoint_file):
    kwargs = image_classifier_model_kwargs(checkpoint_file)

    assert kwargs["pip_requirements"] == pinned_requirements()
    (code_path,) = kwargs["code_paths"]
    assert Path(code_path).name == "transfer_study"
    assert (Path(code_path) / "inference" / "pyfunc.py").is_file()
    assert kwargs["artifacts"] == {CHECKPOINT_ARTIFACT: str(checkpoint_file)}
    signature = kwargs["signature"]
    assert signature.inputs.input_names() == [IMAGE_COLUMN]
    assert signature.inputs.input_types() == [DataType.binary]
    assert signature.outputs.input_names() == PREDICTION_COLUMNS + [
        f"prob_{name}" for name in CLASS_NAMES
    ]
    example = kwargs["input_example"]
    assert list(example.columns) == [IMAGE_COLUMN]
    assert example.loc[0, IMAGE_COLUMN].startswith(b"\x89PNG")
    assert kwargs["metadata"]["class_names"] == list(CLASS_NAMES)


def _distribution(name: str) -> str:
    """A distribution name as pip compares them (PEP 503)."""
    return re.sub(r"[-_.]+", "-", name).lower()


def test_requirements_pin_what_the_model_imports_at_the_installed_versions():
    pins = dict(requirement.split("==") for requirement in pinned_requirements())
    pins = {_distribution(name): version for name, version in pins.items()}
    # What the model's code imports, and what MLflow needs to unpickle a python_model.
    needed = {
        module: distributions
        for module, distributions in third_party_imports(PYFUNC_MODULE).items()
        if module not in PINNED_BY_MLFLOW
    }
    for requirement in mlflow.pyfunc.get_default_pip_requirements():
        name = requirement.split("==")[0]
        needed[name] = {name}
    assert {"PIL", "torch", "timm", "cloudpickle"} <= set(needed)  # the parsing finds them

    explained = set()
    for module, distributions in needed.items():
        pinned = {name for name in distributions if _distribution(name) in pins}
        assert pinned, f"'import {module}' needs one of {sorted(distributions)} pinned"
        for name in pinned:
            installed = importlib.metadata.version(name).split("+")[0]
            assert pins[_distribution(name)] == installed, name
        explained |= {_distribution(name) for name in pinned}
    assert set(pins) == explained, f"pinned but not needed: {sorted(set(pins) - explained)}"


def test_a_file_that_is_not_our_checkpoint_is_refused(tmp_path):
    path = tmp_path / "weights.pt"
    torch.save(tiny_checkpoint()["state_dict"], path)
    with pytest.raises(NotACheckpointError, match="not a transfer-study checkpoint"):
        image_classifier_model_kwargs(path)


def test_saved_model_predicts_paths_and_bytes_like_the_inference_pipeline(saved_model, photos):
    model = mlflow.pyfunc.load_model(str(saved_model))
    files = sorted(photos.iterdir())
    expected = _pipeline_predictions(photos)

    from_paths = model.predict(pd.DataFrame({IMAGE_COLUMN: [str(path) for path in files]}))
    from_bytes = model.predict(pd.DataFrame({IMAGE_COLUMN: [path.read_bytes() for path in files]}))

    assert list(from_paths.columns) == PREDICTION_COLUMNS + [f"prob_{name}" for name in CLASS_NAMES]
    _assert_same_predictions(from_paths, expected)
    _assert_same_predictions(from_bytes, expected)
    assert from_paths.set_index(expected.index).loc["broken.jpg", "status"] == "skipped"
    probabilities = from_bytes[[f"prob_{name}" for name in CLASS_NAMES]].dropna()
    assert probabilities.sum(axis=1).tolist() == pytest.approx([1.0] * 3, abs=1e-5)


def test_model_config_sets_top_k_at_load_time(saved_model, photos):
    model = mlflow.pyfunc.load_model(str(saved_model), model_config={"top_k": 1})
    predictions = model.predict(pd.DataFrame({IMAGE_COLUMN: [str(photos / "p0.jpg")]}))
    assert list(json.loads(predictions.loc[0, "top_k"])) == [predictions.loc[0, "predicted"]]


def test_a_missing_file_is_skipped_with_the_reason(saved_model, tmp_path):
    model = mlflow.pyfunc.load_model(str(saved_model))
    predictions = model.predict(pd.DataFrame({IMAGE_COLUMN: [str(tmp_path / "gone.jpg")]}))
    assert predictions.loc[0, "status"] == "skipped"
    assert "cannot read the file" in predictions.loc[0, "error"]


@pytest.mark.slow
def test_a_fresh_process_loads_the_saved_model_and_predicts_like_the_pipeline(
    saved_model, photos, tmp_path
):
    files = [str(path) for path in sorted(photos.iterdir())]
    script = textwrap.dedent(
        f"""
        import json, sys
        import mlflow.pyfunc, pandas as pd
        model = mlflow.pyfunc.load_model({str(saved_model)!r})
        import transfer_study
        predictions = model.predict(pd.DataFrame({{{IMAGE_COLUMN!r}: {files!r}}}))
        json.dump(
            {{"package": transfer_study.__file__, "predictions": predictions.to_dict("list")}},
            sys.stdout,
        )
        """
    )
    completed = subprocess.run(
        [sys.executable, "-c", script],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=FRESH_PROCESS_TIMEOUT,
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    output = json.loads(completed.stdout.strip().splitlines()[-1])

    # The package came from the model's code_paths, not from this checkout.
    assert Path(output["package"]).is_relative_to(saved_model / "code")
    _assert_same_predictions(pd.DataFrame(output["predictions"]), _pipeline_predictions(photos))
