"""ONNX export: the graph matches PyTorch, carries its input contract, and fails readably."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import onnxruntime
import pytest
import torch
from PIL import Image

from tests.helpers.tiny_models import CLASS_NAMES, TINY_INPUT_SIZE, tiny_checkpoint
from transfer_study.inference import onnx_export
from transfer_study.inference.onnx_export import (
    INPUT_NAME,
    OnnxExportError,
    check_parity,
    export_checkpoint,
)
from transfer_study.inference.predictor import ImagePredictor

REPO_ROOT = Path(__file__).resolve().parents[3]


@pytest.fixture(scope="module")
def exported() -> tuple[dict, bytes]:
    checkpoint = tiny_checkpoint()
    return checkpoint, export_checkpoint(checkpoint, variant="frozen")


def _photos(count: int, seed: int = 0) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return torch.randn(count, 3, TINY_INPUT_SIZE, TINY_INPUT_SIZE, generator=generator)


def test_the_export_matches_pytorch_on_every_photo(exported):
    checkpoint, model = exported
    parity = check_parity(model, checkpoint, [_photos(7), _photos(5, seed=1)])
    assert parity["photos"] == 12
    assert parity["max_abs_difference"] <= onnx_export.PARITY_TOLERANCE
    assert parity["top1_agreement"] == 1.0 and parity["passed"]


def test_the_batch_axis_is_dynamic_and_the_output_sums_to_one(exported):
    _, model = exported
    session = onnxruntime.InferenceSession(model, providers=["CPUExecutionProvider"])
    for count in (1, 3, 16):
        (probabilities,) = session.run(None, {INPUT_NAME: _photos(count).numpy()})
        assert probabilities.shape == (count, len(CLASS_NAMES))
        assert probabilities.sum(axis=1) == pytest.approx(1.0, abs=1e-5)


def test_the_model_carries_the_input_contract_and_class_names(exported):
    checkpoint, model = exported
    props = {p.key: p.value for p in onnx.load_from_string(model).metadata_props}
    assert json.loads(props["class_names"]) == list(CLASS_NAMES)
    assert json.loads(props["preprocessing"]) == checkpoint["metadata"]["preprocessing"]
    assert props["variant"] == "frozen" and props["backbone"] == "test_efficientnet"
    assert f"[batch, 3, {TINY_INPUT_SIZE}, {TINY_INPUT_SIZE}]" in props["input"]


def test_a_model_that_differs_from_its_checkpoint_fails_the_check(exported):
    _, model = exported
    other = tiny_checkpoint(seed=1)  # other weights: other probabilities
    parity = check_parity(model, other, [_photos(8)])
    assert parity["max_abs_difference"] > onnx_export.PARITY_TOLERANCE
    assert not parity["passed"]


def test_an_exporter_failure_names_the_operator_and_spares_the_checkpoint(monkeypatch):
    def fail(*args, **kwargs):
        raise RuntimeError(
            "Failed to convert the exported program: No decomposition for aten::grid_sampler_3d"
        )

    monkeypatch.setattr(torch.onnx, "export", fail)
    with pytest.raises(OnnxExportError) as raised:
        export_checkpoint(tiny_checkpoint())
    message = str(raised.value)
    assert "operator aten::grid_sampler_3d" in message
    assert "backbone 'test_efficientnet'" in message and "model.pt" in message


def _docs_snippet() -> str:
    text = (REPO_ROOT / "docs" / "checkpoints.md").read_text()
    section = text[text.index("## ONNX") :]
    return section.split("```python\n", 1)[1].split("```", 1)[0]


def test_the_documented_onnxruntime_recipe_gives_the_predictors_answer(
    exported, tmp_path, monkeypatch, capsys
):
    # docs/checkpoints.md's snippet, run as written: onnxruntime, Pillow and NumPy only.
    checkpoint, model = exported
    (tmp_path / "data/06_models/frozen").mkdir(parents=True)
    (tmp_path / "data/06_models/frozen/model.onnx").write_bytes(model)
    generator = np.random.default_rng(0)
    pixels = generator.integers(0, 256, (50, 70, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(tmp_path / "photo.jpg")
    monkeypatch.chdir(tmp_path)
    exec(_docs_snippet(), {})
    printed_class, printed_probability = capsys.readouterr().out.split()
    data = (tmp_path / "photo.jpg").read_bytes()
    expected = ImagePredictor.from_checkpoint(checkpoint, device="cpu").predict(
        [lambda: data], batch_size=1
    )
    assert printed_class == expected["predicted"].iloc[0]
    assert float(printed_probability) == pytest.approx(expected["probability"].iloc[0], abs=0.02)
