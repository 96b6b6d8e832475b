"""The inference nodes: picking the model, classifying good and bad files."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import torch
from kedro.io.core import DatasetError

from tests.helpers.image_files import write_awkward_files
from tests.helpers.photos import write_photo
from tests.helpers.tiny_models import CLASS_NAMES, save_tiny_checkpoint, tiny_checkpoint
from transfer_study.config import InferenceSettings
from transfer_study.datasets.optional_dataset import OptionalDataset
from transfer_study.inference.predictor import ImagePredictor, NotACheckpointError
from transfer_study.models.checkpoint import rebuild_classifier
from transfer_study.models.preprocessing import Preprocessing
from transfer_study.models.transforms import build_eval_transform, decode_resized
from transfer_study.pipelines.inference.nodes import classify_photos, select_model

PARAMS = InferenceSettings(photos="/photos", model="best", top_k=2, batch_size=4, device="cpu")
# As the reporting node writes it: `selected` is the variant chosen on validation.
COMPARISON = pd.DataFrame(
    {
        "variant": ["scratch", "frozen", "finetune"],
        "accuracy": [0.6, 0.9, 0.95],
        "selected": [False, True, False],
    }
)


def _loaders(folder: Path) -> dict[str, Callable[[], bytes]]:
    """What the catalog's inference_photos gives: lazy loaders by relative path."""
    return {
        path.relative_to(folder).as_posix(): path.read_bytes
        for path in sorted(folder.rglob("*"))
        if path.is_file()
    }


def _models(**checkpoints: dict[str, Any]) -> dict[str, Callable[[], dict[str, Any]]]:
    return {variant: (lambda c=checkpoint: c) for variant, checkpoint in checkpoints.items()}


def _three_variants() -> dict[str, Callable[[], dict[str, Any]]]:
    return _models(
        **{
            name: tiny_checkpoint(seed=seed, variant=name)
            for seed, name in enumerate(["scratch", "frozen", "finetune"])
        }
    )


def _checkpoint_file(path: Path) -> Callable[[], Any] | None:
    """What the catalog's inference_checkpoint_file gives for ``inference.model=path``."""
    return OptionalDataset(
        dataset={"type": "transfer_study.datasets.TorchDataset", "filepath": str(path)},
        lazy=True,
    ).load()


def _expected_probabilities(
    checkpoint: dict[str, Any], data: bytes, *, mirrored_too: bool = False
) -> np.ndarray:
    """Softmax of the model's logits, computed the long way from the checkpoint; with
    ``mirrored_too``, the mean of that and the softmax of the mirrored photo."""
    model, metadata = rebuild_classifier(checkpoint)
    spec = Preprocessing.from_dict(metadata["preprocessing"])
    image = build_eval_transform(preprocessing=spec)(decode_resized(data, preprocessing=spec))
    views = torch.stack([image, torch.flip(image, dims=[-1])] if mirrored_too else [image])
    with torch.inference_mode():
        return torch.softmax(model(views), dim=1).mean(dim=0).numpy()


# --- classify_photos ------------------------------------------------------------------


def test_good_files_are_classified_and_bad_ones_skipped_with_the_reason(tmp_path):
    expectations = write_awkward_files(tmp_path / "photos" / "nested")
    (tmp_path / "photos" / ".DS_Store").write_bytes(b"\x00\x01")
    (tmp_path / "photos" / "Thumbs.db").write_bytes(b"\x00\x01")

    predictions = classify_photos(_loaders(tmp_path / "photos"), tiny_checkpoint(), PARAMS)

    assert list(predictions.columns) == [
        "path",
        "predicted",
        "probability",
        "top_k",
        "status",
        "error",
    ]
    assert predictions["path"].tolist() == sorted(f"nested/{name}" for name in expectations)
    by_name = predictions.set_index(predictions["path"].str.removeprefix("nested/"))
    for name, expected_reason in expectations.items():
        row = by_name.loc[name]
        if expected_reason is None:
            assert row["status"] == "ok", name
            assert row["error"] == ""
            assert row["predicted"] in CLASS_NAMES
            assert 0 < row["probability"] <= 1
        else:
            assert row["status"] == "skipped", name
            assert expected_reason in row["error"], name
            assert pd.isna(row["predicted"]) and pd.isna(row["probability"])


def test_top_k_lists_the_most_probable_classes_with_their_softmax_probabilities(tmp_path):
    checkpoint = tiny_checkpoint()
    paths = [write_photo(tmp_path / "photos" / f"p{seed}.jpg", seed=seed) for seed in range(5)]

    predictions = classify_photos(_loaders(tmp_path / "photos"), checkpoint, PARAMS)

    for path, row in zip(paths, predictions.itertuples(), strict=True):
        expected = _expected_probabilities(checkpoint, path.read_bytes())
        top = json.loads(row.top_k)
        assert len(top) == PARAMS.top_k
        assert sum(top.values()) <= 1.0 + 1e-6
        assert list(top.values()) == sorted(top.values(), reverse=True)
        assert next(iter(top)) == row.predicted == CLASS_NAMES[int(expected.argmax())]
        assert row.probability == pytest.approx(expected.max(), abs=1e-5)
        for name, probability in top.items():
            assert probability == pytest.approx(expected[CLASS_NAMES.index(name)], abs=1e-5)


def test_top_k_null_lists_every_class_summing_to_one(tmp_path):
    write_photo(tmp_path / "photos" / "a.jpg", seed=1)

    predictions = classify_photos(
        _loaders(tmp_path / "photos"), tiny_checkpoint(), PARAMS.model_copy(update={"top_k": None})
    )

    top = json.loads(predictions.loc[0, "top_k"])
    assert set(top) == set(CLASS_NAMES)
    assert sum(top.values()) == pytest.approx(1.0, abs=1e-5)


def test_tta_flip_averages_the_softmax_of_each_photo_and_its_mirror(tmp_path):
    checkpoint = tiny_checkpoint()
    paths = [write_photo(tmp_path / "photos" / f"p{seed}.jpg", seed=seed) for seed in range(3)]
    (tmp_path / "photos" / "broken.jpg").write_bytes(b"not a jpeg")
    every_class = PARAMS.model_copy(update={"top_k": None})

    plain = classify_photos(_loaders(tmp_path / "photos"), checkpoint, every_class)
    flipped = classify_photos(
        _loaders(tmp_path / "photos"), checkpoint, every_class.model_copy(update={"tta": "flip"})
    )

    plain, flipped = plain.set_index("path"), flipped.set_index("path")
    assert flipped.loc["broken.jpg", "status"] == "skipped"
    assert pd.isna(flipped.loc["broken.jpg", "predicted"])
    for path in paths:
        expected = _expected_probabilities(checkpoint, path.read_bytes(), mirrored_too=True)
        row = flipped.loc[path.name]
        probabilities = json.loads(row["top_k"])
        assert row["predicted"] == CLASS_NAMES[int(expected.argmax())]
        assert row["probability"] == pytest.approx(expected.max(), abs=1e-5)
        for name, probability in probabilities.items():
            assert probability == pytest.approx(expected[CLASS_NAMES.index(name)], abs=1e-5)
    # The mirror counts: the averaged probabilities are not the photo's alone.
    changed = [
        json.loads(plain.loc[path.name, "top_k"])
        != pytest.approx(json.loads(flipped.loc[path.name, "top_k"]), abs=1e-4)
        for path in paths
    ]
    assert any(changed)


def test_an_unknown_tta_is_refused_by_the_predictor():
    predictor = ImagePredictor.from_checkpoint(tiny_checkpoint(), device="cpu")
    with pytest.raises(ValueError, match="Unknown tta 'mirror'"):
        predictor.predict([bytes], batch_size=1, tta="mirror")


def test_batching_does_not_change_predictions(tmp_path):
    for seed in range(5):
        write_photo(tmp_path / "photos" / f"p{seed}.jpg", seed=seed)
    (tmp_path / "photos" / "broken.jpg").write_bytes(b"not a jpeg")
    photos, checkpoint = _loaders(tmp_path / "photos"), tiny_checkpoint()

    one_by_one = classify_photos(photos, checkpoint, PARAMS.model_copy(update={"batch_size": 1}))
    all_at_once = classify_photos(photos, checkpoint, PARAMS.model_copy(update={"batch_size": 64}))

    # Batches of different sizes may round the last float digit differently.
    pd.testing.assert_frame_equal(
        one_by_one.drop(columns="top_k"), all_at_once.drop(columns="top_k"), atol=1e-5
    )
    for small, large in zip(one_by_one["top_k"], all_at_once["top_k"], strict=True):
        if pd.isna(small):
            assert pd.isna(large)
        else:
            assert json.loads(small) == pytest.approx(json.loads(large), abs=1e-5)


def test_skipped_files_are_logged_with_the_reason(tmp_path, caplog):
    write_photo(tmp_path / "photos" / "good.jpg", seed=1)
    (tmp_path / "photos" / "notes.txt").write_text("shopping list")

    with caplog.at_level(logging.WARNING):
        classify_photos(_loaders(tmp_path / "photos"), tiny_checkpoint(), PARAMS)

    assert "Skipped 1 file(s)" in caplog.text
    assert "notes.txt: not an image" in caplog.text


def test_unreadable_file_is_skipped_not_fatal(tmp_path):
    write_photo(tmp_path / "photos" / "good.jpg", seed=1)
    photos = _loaders(tmp_path / "photos")

    def unreadable() -> bytes:
        raise DatasetError("Failed while loading data") from PermissionError("Permission denied")

    photos["locked.jpg"] = unreadable

    predictions = classify_photos(photos, tiny_checkpoint(), PARAMS).set_index("path")

    assert predictions.loc["good.jpg", "status"] == "ok"
    assert predictions.loc["locked.jpg", "status"] == "skipped"
    assert "Permission denied" in predictions.loc["locked.jpg", "error"]


@pytest.mark.parametrize("photos", [None, {".DS_Store": bytes, "__MACOSX/x.jpg": bytes}])
def test_a_folder_without_photos_is_an_error_saying_how_to_pass_one(photos):
    with pytest.raises(ValueError, match="No photos to classify in '/photos'") as raised:
        classify_photos(photos, tiny_checkpoint(), PARAMS)
    assert "--params=inference.photos=" in str(raised.value)


def test_top_k_below_one_is_refused():
    with pytest.raises(ValueError, match=r"top_k\s+Input should be greater than or equal to 1"):
        InferenceSettings.model_validate({**PARAMS.model_dump(), "top_k": 0})


# --- select_model ---------------------------------------------------------------------


def test_best_is_the_variant_the_last_comparison_chose_on_validation():
    checkpoint = select_model(_three_variants(), COMPARISON, None, PARAMS)
    assert checkpoint["metadata"]["variant"] == "frozen"
    # Not the most accurate on test: that one was not chosen.
    chosen_elsewhere = COMPARISON.assign(selected=[False, False, True])
    checkpoint = select_model(_three_variants(), chosen_elsewhere, None, PARAMS)
    assert checkpoint["metadata"]["variant"] == "finetune"


def test_best_when_no_variant_was_chosen_says_why_and_what_to_do():
    none_chosen = COMPARISON.assign(selected=False)
    with pytest.raises(ValueError, match="chose no variant: none converged") as raised:
        select_model(_three_variants(), none_chosen, None, PARAMS)
    assert "--params=inference.model=" in str(raised.value)


def test_a_named_variant_is_used_even_if_another_is_best():
    checkpoint = select_model(
        _three_variants(), COMPARISON, None, PARAMS.model_copy(update={"model": "scratch"})
    )
    assert checkpoint["metadata"]["variant"] == "scratch"


def test_a_diverged_variant_is_never_best_and_named_it_comes_with_a_warning(caplog):
    diverged = COMPARISON.assign(
        accuracy=[0.6, 0.9, float("nan")],  # withheld by the comparison
        diverged=[False, False, True],
    )
    checkpoint = select_model(_three_variants(), diverged, None, PARAMS)
    assert checkpoint["metadata"]["variant"] == "frozen"
    named = PARAMS.model_copy(update={"model": "finetune"})
    with caplog.at_level("WARNING"):
        checkpoint = select_model(_three_variants(), diverged, None, named)
    assert checkpoint["metadata"]["variant"] == "finetune"
    assert "Variant 'finetune' diverged: its model is an early checkpoint." in caplog.text
    assert "test accuracy nan" not in caplog.text


def test_a_named_variant_needs_no_comparison():
    checkpoint = select_model(
        _three_variants(), None, None, PARAMS.model_copy(update={"model": "finetune"})
    )
    assert checkpoint["metadata"]["variant"] == "finetune"


def test_a_checkpoint_path_is_loaded_when_no_variant_has_that_name(tmp_path):
    path = save_tiny_checkpoint(tmp_path / "elsewhere" / "model.pt", variant="copied")

    checkpoint = select_model(
        None, None, _checkpoint_file(path), PARAMS.model_copy(update={"model": str(path)})
    )

    assert checkpoint["metadata"]["variant"] == "copied"
    assert set(checkpoint["state_dict"]) == set(tiny_checkpoint()["state_dict"])


def test_best_without_any_trained_model_says_to_run_the_study():
    with pytest.raises(ValueError, match="No trained model") as raised:
        select_model(None, None, None, PARAMS)
    assert "kedro run" in str(raised.value)


def test_best_without_a_comparison_says_how_to_name_a_model():
    with pytest.raises(ValueError, match="No variant comparison") as raised:
        select_model(_three_variants(), None, None, PARAMS)
    assert "--params=inference.model=" in str(raised.value)
    assert "finetune, frozen, scratch" in str(raised.value)


def test_best_variant_without_its_model_is_an_error():
    models = _models(scratch=tiny_checkpoint())
    with pytest.raises(ValueError, match="best variant 'frozen' has no trained model"):
        select_model(models, COMPARISON, None, PARAMS)


def test_an_unknown_variant_lists_the_trained_ones():
    with pytest.raises(ValueError, match="'nope' is neither") as raised:
        select_model(
            _three_variants(), COMPARISON, None, PARAMS.model_copy(update={"model": "nope"})
        )
    assert "(finetune, frozen, scratch)" in str(raised.value)


def test_a_missing_checkpoint_file_is_an_unknown_model(tmp_path):
    missing = tmp_path / "missing.pt"
    with pytest.raises(ValueError, match="nor an existing checkpoint file"):
        select_model(
            None, None, _checkpoint_file(missing), PARAMS.model_copy(update={"model": str(missing)})
        )


def test_a_bare_state_dict_is_refused_as_not_our_checkpoint(tmp_path):
    path = tmp_path / "weights.pt"
    torch.save(tiny_checkpoint()["state_dict"], path)

    with pytest.raises(NotACheckpointError, match="is not a transfer-study checkpoint") as raised:
        select_model(
            None, None, _checkpoint_file(path), PARAMS.model_copy(update={"model": str(path)})
        )
    assert "kedro run" in str(raised.value)


def test_a_file_torch_cannot_load_is_refused_as_not_a_checkpoint(tmp_path):
    path = write_photo(tmp_path / "photo.jpg", seed=1)

    with pytest.raises(NotACheckpointError, match="cannot be loaded as a checkpoint"):
        select_model(
            None, None, _checkpoint_file(path), PARAMS.model_copy(update={"model": str(path)})
        )


def test_a_checkpoint_whose_weights_do_not_fit_its_architecture_is_refused(tmp_path):
    checkpoint = tiny_checkpoint()
    checkpoint["metadata"]["class_names"] = ["only", "two"]  # the head has three outputs
    write_photo(tmp_path / "photos" / "a.jpg", seed=1)

    with pytest.raises(NotACheckpointError, match="cannot be rebuilt"):
        classify_photos(_loaders(tmp_path / "photos"), checkpoint, PARAMS)
