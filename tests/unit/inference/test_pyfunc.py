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
import numpy as np
import pandas as pd
import pytest
import torch
from mlflow.types import DataType

from tests.helpers.imports import third_party_imports
from tests.helpers.photos import write_photo
from tests.helpers.tiny_models import CLASS_NAMES, save_tiny_checkpoint, tiny_checkpoint
from transfer_study.config import InferenceSettings
from transfer_study.inference.predictor import ImagePredictor, NotACheckpointError
from transfer_study.inference.pyfunc import (
    CHECKPOINT_ARTIFACT,
    IMAGE_COLUMN,
    PATH_COLUMN,
    ImageClassifierModel,
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
HTTP_BAD_REQUEST = 400


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
    assert signature.inputs.input_names() == [IMAGE_COLUMN, PATH_COLUMN]
    assert signature.inputs.input_types() == [DataType.binary, DataType.string]
    # Either column may be sent (over REST, MLflow base64-decodes every `image` value).
    assert signature.inputs.required_input_names() == []
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


def test_the_path_column_and_rows_mixing_both_columns_predict_like_the_image_column(
    saved_model, photos
):
    model = mlflow.pyfunc.load_model(str(saved_model))
    files = sorted(photos.iterdir())
    expected = _pipeline_predictions(photos)

    from_paths = model.predict(pd.DataFrame({PATH_COLUMN: [str(path) for path in files]}))
    # One value per row; `""` in `image` is what a REST request mixing both columns sends.
    mixed = pd.DataFrame(
        {
            IMAGE_COLUMN: [path.read_bytes() if n % 2 else b"" for n, path in enumerate(files)],
            PATH_COLUMN: [None if n % 2 else str(path) for n, path in enumerate(files)],
        }
    )
    from_both = model.predict(mixed)

    _assert_same_predictions(from_paths, expected)
    _assert_same_predictions(from_both, expected)


@pytest.mark.parametrize(
    ("row", "message"),
    [
        ({IMAGE_COLUMN: [None], PATH_COLUMN: [None]}, "Row 0: no image given"),
        ({IMAGE_COLUMN: [b""], PATH_COLUMN: [""]}, "Row 0: no image given"),
        ({IMAGE_COLUMN: [b"\xff\xd8"], PATH_COLUMN: ["p0.jpg"]}, "Row 0: both 'image' and 'path'"),
        ({PATH_COLUMN: [b"\xff\xd8"]}, "Row 0: expected a file path in 'path', got bytes"),
    ],
)
def test_a_row_without_exactly_one_image_is_refused_clearly(saved_model, row, message):
    model = mlflow.pyfunc.load_model(str(saved_model))
    with pytest.raises(ValueError, match=re.escape(message)) as raised:
        model.predict(pd.DataFrame(row))
    # An MlflowException too, so that a served model answers 400 with this message.
    assert raised.value.get_http_status_code() == HTTP_BAD_REQUEST


def test_the_python_model_also_takes_one_unnamed_column_a_series_or_a_list(saved_model, photos):
    # Unwrapped, without MLflow's schema enforcement (which keeps only named columns).
    python_model = mlflow.pyfunc.load_model(str(saved_model)).unwrap_python_model()
    assert isinstance(python_model, ImageClassifierModel)
    files = [str(path) for path in sorted(photos.iterdir())]
    expected = _pipeline_predictions(photos)

    for model_input in (pd.DataFrame({"photo": files}), pd.Series(files), files):
        _assert_same_predictions(python_model.predict(None, model_input), expected)
    with pytest.raises(ValueError, match="Expected a DataFrame with an 'image' column"):
        python_model.predict(None, pd.DataFrame({"a": files, "b": files}))


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


def test_model_config_sets_test_time_augmentation_like_the_pipeline(saved_model, photos):
    files = [str(path) for path in sorted(photos.iterdir())]
    plain = mlflow.pyfunc.load_model(str(saved_model))
    flipped = mlflow.pyfunc.load_model(str(saved_model), model_config={"tta": "flip"})
    with_flip = flipped.predict(pd.DataFrame({IMAGE_COLUMN: files}))
    predictor = ImagePredictor.from_checkpoint(tiny_checkpoint(), device="cpu")
    expected = predictor.predict([Path(f).read_bytes for f in files], batch_size=32, tta="flip")
    probabilities = [c for c in with_flip.columns if c.startswith("prob_")]
    assert np.allclose(with_flip[probabilities], expected[probabilities], atol=1e-6, equal_nan=True)
    without = plain.predict(pd.DataFrame({IMAGE_COLUMN: files}))
    assert not np.allclose(without[probabilities], with_flip[probabilities], equal_nan=True)
