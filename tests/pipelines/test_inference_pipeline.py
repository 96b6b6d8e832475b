"""The inference pipeline on ``SequentialRunner``: tiny checkpoints of three variants and a
folder of new photos (as the catalog's lazy loaders) in, one prediction row per file out."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from tests.helpers.image_files import noise_jpeg_bytes
from tests.helpers.in_memory_runs import run_in_memory
from tests.helpers.parameters import project_parameters
from tests.helpers.tiny_models import CLASS_NAMES, save_tiny_checkpoint, tiny_checkpoint
from transfer_study.config import ParameterError
from transfer_study.datasets import OptionalDataset
from transfer_study.pipelines.inference import create_pipeline

COLUMNS = ["path", "predicted", "probability", "top_k", "status", "error"]
TOP_K = 2
ACCURACY = {"scratch": 0.6, "frozen": 0.8, "finetune": 0.9}
CHOSEN = "frozen"  # on validation: not the most accurate on test
GOOD = ["beach1.jpg", "day2/beach2.jpg", "day2/deeper/beach3.jpg"]
NOT_AN_IMAGE = "day2/notes.txt"
HIDDEN = ".DS_Store"
OVERRIDES = {"inference.top_k": TOP_K, "inference.batch_size": 2, "inference.device": "cpu"}


def _loader(value: Any) -> Callable[[], Any]:
    return lambda: value


def _photos() -> dict[str, Callable[[], bytes]]:
    """What the catalog's inference_photos gives: lazy loaders of bytes by relative path."""
    photos = {path: _loader(noise_jpeg_bytes((40, 40), seed=i)) for i, path in enumerate(GOOD)}
    photos[NOT_AN_IMAGE] = _loader(b"tide was low\n")
    photos[HIDDEN] = _loader(b"\x00\x00\x00\x01Bud1")
    return photos


def _inputs(
    photos: dict[str, Callable[[], bytes]] | None = None, **overrides: Any
) -> dict[str, Any]:
    parameters = project_parameters({**OVERRIDES, **overrides}, create_pipeline())
    trained = {
        variant: _loader(tiny_checkpoint(seed=seed, variant=variant))
        for seed, variant in enumerate(ACCURACY)
    }
    comparison = pd.DataFrame(
        {
            "variant": list(ACCURACY),
            "accuracy": list(ACCURACY.values()),
            "selected": [variant == CHOSEN for variant in ACCURACY],
        }
    )
    # As catalog_inference.yml declares it: the file inference.model names, if it exists.
    checkpoint_file = OptionalDataset(
        dataset={
            "type": "transfer_study.datasets.TorchDataset",
            "filepath": str(parameters["params:inference.model"]),
        },
        lazy=True,
    )
    return {
        **parameters,
        "trained_models": trained,
        "latest_variant_comparison": comparison,
        "inference_checkpoint_file": checkpoint_file,
        "inference_photos": _photos() if photos is None else photos,
    }


@pytest.fixture(scope="module")
def best() -> dict[str, Any]:
    """A run with the default ``inference.model``: ``best``."""
    return run_in_memory(create_pipeline(), _inputs())


def test_pipeline_picks_a_model_then_classifies_the_photos():
    pipeline = create_pipeline()
    assert pipeline.inputs() == {
        "trained_models",
        "latest_variant_comparison",
        "inference_checkpoint_file",
        "inference_photos",
        "params:inference",
    }
    assert pipeline.outputs() == {"inference_predictions"}
    assert pipeline.all_outputs() == {"inference_model", "inference_predictions"}


def test_the_default_model_is_the_variant_the_comparison_chose(best):
    assert project_parameters()["params:inference.model"] == "best"
    assert best["inference_model"]["metadata"]["variant"] == CHOSEN


def test_every_file_but_hidden_ones_gets_a_row_sorted_by_path(best):
    predictions = best["inference_predictions"]
    assert list(predictions.columns) == COLUMNS
    assert predictions["path"].tolist() == sorted([*GOOD, NOT_AN_IMAGE])
    rows = predictions.set_index("path")
    assert rows.loc[NOT_AN_IMAGE, "status"] == "skipped"
    assert rows.loc[NOT_AN_IMAGE, "error"].startswith("not an image")
    assert (rows.loc[GOOD, "status"] == "ok").all()


def test_good_photos_get_a_class_and_the_top_k_of_the_parameters(best):
    good = best["inference_predictions"].set_index("path").loc[GOOD]
    assert set(good["predicted"]) <= set(CLASS_NAMES)
    for row in good.itertuples():
        top = json.loads(row.top_k)
        assert len(top) == TOP_K
        assert next(iter(top)) == row.predicted
        assert top[row.predicted] == pytest.approx(row.probability, abs=1e-6)
        assert list(top.values()) == sorted(top.values(), reverse=True)


def test_a_variant_named_in_the_parameters_is_used_instead_of_the_best(best):
    by_name = run_in_memory(create_pipeline(), _inputs(**{"inference.model": "frozen"}))
    pd.testing.assert_frame_equal(by_name["inference_predictions"], best["inference_predictions"])
    scratch = run_in_memory(create_pipeline(), _inputs(**{"inference.model": "scratch"}))
    assert scratch["inference_model"]["metadata"]["variant"] == "scratch"
    ok = best["inference_predictions"]["status"] == "ok"
    assert (
        not scratch["inference_predictions"]
        .loc[ok, "probability"]
        .equals(best["inference_predictions"].loc[ok, "probability"])
    )


def test_a_checkpoint_file_named_in_the_parameters_is_used(tmp_path: Path):
    path = save_tiny_checkpoint(tmp_path / "model.pt", seed=7, variant="copied")
    outputs = run_in_memory(create_pipeline(), _inputs(**{"inference.model": str(path)}))
    assert outputs["inference_model"]["metadata"]["variant"] == "copied"
    assert len(outputs["inference_predictions"]) == len(GOOD) + 1


def test_a_model_that_is_neither_a_variant_nor_a_file_is_refused():
    with pytest.raises(ParameterError, match="neither 'best', a trained variant"):
        run_in_memory(create_pipeline(), _inputs(**{"inference.model": "bestest"}))


def test_a_folder_with_only_hidden_files_is_refused():
    with pytest.raises(ParameterError, match="No photos to classify"):
        run_in_memory(create_pipeline(), _inputs(photos={HIDDEN: _loader(b"\x00")}))
