"""The export pipeline on ``SequentialRunner``: the comparison, checkpoints and test photos
in, the chosen model as ONNX and its parity record out."""

from __future__ import annotations

import onnx
import pandas as pd
import pytest
import torch

from tests.helpers.in_memory_runs import run_in_memory
from tests.helpers.parameters import project_parameters
from tests.helpers.tiny_models import CLASS_NAMES, tiny_checkpoint
from transfer_study.config import ParameterError
from transfer_study.models.preprocessing import Preprocessing
from transfer_study.pipelines.export import create_pipeline
from transfer_study.pipelines.variant_template import VARIANTS
from transfer_study.training.image_cache import image_cache_key

CHECKPOINTS = {v: tiny_checkpoint(seed=i, variant=v) for i, v in enumerate(VARIANTS)}
N_TEST = 9


def _split_and_images() -> tuple[pd.DataFrame, dict]:
    preprocessing = Preprocessing.from_dict(CHECKPOINTS["frozen"]["metadata"]["preprocessing"])
    rows = [
        {
            "path": f"{CLASS_NAMES[i % 3]}/s{i:03d}_a00.jpg",
            "label": CLASS_NAMES[i % 3],
            "sample_id": f"s{i:03d}",
            "angle": 0,
            "split": "test" if i < N_TEST else "train",
            "sha256": f"{i:064d}",
        }
        for i in range(N_TEST + 3)
    ]
    split = pd.DataFrame(rows)
    size = preprocessing.resize_size
    generator = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (len(split), 3, size, size), generator=generator)
    cache = {"images": images.to(torch.uint8), "paths": split["path"].tolist()}
    return split, {image_cache_key(split, preprocessing): lambda: cache}


def _run(
    model: str, selected: str | None = "finetune", variants: tuple[str, ...] = tuple(VARIANTS)
) -> dict:
    pipeline = create_pipeline(variants=variants)
    split, decoded = _split_and_images()
    comparison = pd.DataFrame(
        {"variant": list(VARIANTS), "selected": [v == selected for v in VARIANTS]}
    )
    inputs = {
        "variant_comparison": comparison,
        "decoded_images": decoded,
        "split": split,
        **{f"{variant}.model": CHECKPOINTS[variant] for variant in variants},
        **project_parameters({"export.model": model}, pipeline),
    }
    return run_in_memory(pipeline, inputs)


def test_the_variant_chosen_on_validation_is_exported_and_matches_pytorch():
    outputs = _run("best")
    assert set(outputs["onnx_models"]) == {"finetune"}
    record = outputs["onnx_export"]
    assert record["exported"] and record["variant"] == "finetune"
    assert record["file"] == "data/06_models/finetune/model.onnx"
    assert record["photos"] == N_TEST and record["passed"]
    props = {
        p.key: p.value
        for p in onnx.load_from_string(outputs["onnx_models"]["finetune"]).metadata_props
    }
    assert props["variant"] == "finetune"


def test_a_named_variant_is_exported_whatever_was_chosen():
    outputs = _run("scratch")
    assert set(outputs["onnx_models"]) == {"scratch"} and outputs["onnx_export"]["passed"]


def test_a_variant_the_study_did_not_train_is_refused_with_what_to_do():
    with pytest.raises(ParameterError, match=r"add 'scratch' to study.variants"):
        _run("scratch", variants=("frozen", "finetune"))


def test_the_export_reads_the_checkpoints_of_the_study_variants_only():
    (node,) = create_pipeline(variants=("frozen", "finetune")).nodes
    assert {name for name in node.inputs if name.endswith(".model")} == {
        "frozen.model",
        "finetune.model",
    }


@pytest.mark.parametrize(
    ("model", "selected", "reason"),
    [("none", "frozen", "export.model is none"), ("best", None, "chose no variant")],
)
def test_nothing_is_exported_when_none_is_asked_or_none_was_chosen(model, selected, reason):
    outputs = _run(model, selected)
    assert outputs["onnx_models"] == {}
    assert not outputs["onnx_export"]["exported"] and reason in outputs["onnx_export"]["reason"]
