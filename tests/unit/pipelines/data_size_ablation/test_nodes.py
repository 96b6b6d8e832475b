"""Ablation subsets: nesting, stratification, determinism, impossible cells, records."""

from __future__ import annotations

import json
import logging

import numpy as np
import pandas as pd
import pytest

from tests.helpers.settings import study_training_settings
from tests.helpers.splits import make_split
from transfer_study.config import AblationGrid, AblationSettings, TrainingSettings
from transfer_study.photos.errors import SplitError
from transfer_study.photos.subsets import UNUSED_SPLIT, grid_cells, validate_grid
from transfer_study.pipelines.data_size_ablation.nodes import (
    cell_training_parameters,
    select_training_subset,
    summarise_cell,
)

IMBALANCED = {"apple": 18, "pear": 6, "plum": 2}


def trained(subset: pd.DataFrame) -> pd.DataFrame:
    return subset[subset["split"] == "train"]


def cell(n: int, k: int, seed: int = 0, **extra: object) -> dict:
    return {"n_samples": n, "n_angles": k, "seed": seed, **extra}


@pytest.mark.parametrize("classes", [{"apple": 8, "pear": 8}, IMBALANCED])
@pytest.mark.parametrize("seed", [0, 7])
def test_sample_subsets_are_nested_for_every_n(classes: dict[str, int], seed: int) -> None:
    split = make_split(classes, angles=2)
    total = sum(classes.values())
    previous: set[str] = set()
    for n in range(len(classes), total + 1):
        samples = set(trained(select_training_subset(split, cell(n, 1, seed)))["sample_id"])
        assert len(samples) == n
        assert previous < samples
        previous = samples
    assert previous == set(split.loc[split["split"] == "train", "sample_id"])


@pytest.mark.parametrize("seed", [0, 3])
def test_angle_subsets_are_nested_for_every_k(seed: int) -> None:
    split = make_split({"apple": 4, "pear": 3}, angles=6)
    previous: set[str] = set()
    for k in range(1, 7):
        photos = trained(select_training_subset(split, cell(7, k, seed)))
        assert photos.groupby("sample_id").size().eq(k).all()
        assert previous < set(photos["path"])
        previous = set(photos["path"])


def test_smaller_cells_are_subsets_of_larger_cells_in_both_directions() -> None:
    split = make_split(IMBALANCED, angles=5)
    photos = {
        (n, k): set(trained(select_training_subset(split, cell(n, k, seed=2)))["path"])
        for n in (3, 8, 20, 26)
        for k in (1, 3, 5)
    }
    for (n, k), chosen in photos.items():
        for (n2, k2), larger in photos.items():
            if n <= n2 and k <= k2:
                assert chosen <= larger


def test_cell_has_n_samples_samples_and_n_times_k_photos() -> None:
    split = make_split(IMBALANCED, angles=5)
    for n, k in [(3, 1), (12, 2), (25, 5), (26, 3)]:
        photos = trained(select_training_subset(split, cell(n, k)))
        assert photos["sample_id"].nunique() == n
        assert len(photos) == n * k


def test_validation_and_test_rows_are_unchanged_and_never_trained_on() -> None:
    split = make_split(IMBALANCED, angles=3)
    held_out = split[split["split"].isin(["val", "test"])]
    for n, seed in [(3, 0), (20, 1), (26, 2)]:
        subset = select_training_subset(split, cell(n, 2, seed))
        pd.testing.assert_frame_equal(subset[subset["split"].isin(["val", "test"])], held_out)
        assert set(trained(subset)["sample_id"]).isdisjoint(held_out["sample_id"])


def test_left_out_training_photos_are_kept_as_unused() -> None:
    split = make_split({"apple": 5, "pear": 5}, angles=3)
    subset = select_training_subset(split, cell(4, 2))
    assert subset["path"].tolist() == split["path"].tolist()
    assert (subset["split"] == UNUSED_SPLIT).sum() == 10 * 3 - 4 * 2
    unused = subset["split"] == UNUSED_SPLIT
    assert split.loc[unused, "split"].eq("train").all()


def test_classes_get_proportional_shares_and_at_least_one_sample() -> None:
    split = make_split(IMBALANCED, angles=1)
    sizes = pd.Series(IMBALANCED)
    for n in range(3, 27):
        counts = trained(select_training_subset(split, cell(n, 1, seed=5)))["label"].value_counts()
        counts = counts.reindex(sizes.index, fill_value=0)
        assert (counts >= 1).all()
        assert (counts - n * sizes / sizes.sum()).abs().max() < 2
    assert counts.to_dict() == IMBALANCED


def test_balanced_classes_alternate() -> None:
    split = make_split({"apple": 6, "pear": 6, "plum": 6}, angles=1)
    for n in (3, 6, 9, 12):
        labels = trained(select_training_subset(split, cell(n, 1)))["label"]
        assert labels.value_counts().eq(n // 3).all()


def test_same_seed_gives_same_subset_and_other_seeds_differ() -> None:
    split = make_split(IMBALANCED, angles=4)
    chosen = {
        seed: set(trained(select_training_subset(split, cell(10, 2, seed)))["path"])
        for seed in range(4)
    }
    again = set(trained(select_training_subset(split, cell(10, 2, 0)))["path"])
    assert again == chosen[0]
    assert len({frozenset(paths) for paths in chosen.values()}) == 4


def test_orders_depend_only_on_seed_and_ids() -> None:
    """More samples of another class change neither apple's order nor its angles."""
    small = make_split({"apple": 6, "pear": 2}, angles=4)
    large = make_split({"apple": 6, "pear": 9}, angles=4)

    def apples(split: pd.DataFrame, n: int) -> set[str]:
        photos = trained(select_training_subset(split, cell(n, 2, seed=11)))
        return set(photos.loc[photos["label"] == "apple", "path"])

    assert apples(small, 8) == apples(large, 15)  # all six apples, the same two angles each
    # Every prefix of apples in the small split is also a prefix in the large one.
    large_prefixes = [apples(large, n) for n in range(2, 16)]
    assert all(apples(small, n) in large_prefixes for n in range(2, 9))


def test_photos_without_an_angle_count_as_angles_in_file_order() -> None:
    split = make_split({"apple": 3, "pear": 3}, angles=4, angle_values=False)
    previous: set[str] = set()
    for k in range(1, 5):
        photos = trained(select_training_subset(split, cell(6, k, seed=1)))
        assert len(photos) == 6 * k
        assert previous < set(photos["path"])
        previous = set(photos["path"])


def test_too_many_samples_raises_with_what_exists_per_class() -> None:
    split = make_split(IMBALANCED, angles=lambda s: 2 + s % 3)
    with pytest.raises(SplitError) as error:
        select_training_subset(split, cell(50, 1))
    message = str(error.value)
    assert "n_samples=50 but the training split has 26 physical samples" in message
    assert "apple: 18 training samples" in message
    assert "pear: 6 training samples" in message
    assert "plum: 2 training samples, angles per sample min 2 / median 3 / max 4" in message
    assert "3 ≤ n_samples ≤ 26" in message
    assert "clamp: true" in message


def test_chosen_sample_with_too_few_angles_raises() -> None:
    split = make_split({"apple": 5, "pear": 5}, angles=lambda s: 2 if s == 0 else 4)
    with pytest.raises(ValueError, match=r"n_angles=3 but 1 of the 10 chosen samples") as error:
        select_training_subset(split, cell(10, 3))
    assert "n_angles ≤ 2" in str(error.value)
    assert len(trained(select_training_subset(split, cell(10, 2)))) == 20


def test_fewer_samples_than_classes_raises_even_with_clamp() -> None:
    split = make_split(IMBALANCED, angles=1)
    with pytest.raises(ValueError, match="below the 3 classes"):
        select_training_subset(split, cell(2, 1, clamp=True))


@pytest.mark.parametrize(
    "bad", [{"n_samples": 0, "n_angles": 1, "seed": 0}, {"n_angles": 1, "seed": 0}, cell(4, True)]
)
def test_malformed_cells_raise(bad: dict) -> None:
    with pytest.raises(ValueError, match="must be an integer"):
        select_training_subset(make_split({"apple": 3, "pear": 3}), bad)


def test_a_malformed_cell_is_shown_with_plain_numbers() -> None:
    bad = {"n_samples": np.int64(0), "n_angles": np.int64(1), "seed": 0}
    with pytest.raises(ValueError, match=r"\(n_samples=0, n_angles=1, seed=0\): 'n_samples'"):
        select_training_subset(make_split({"apple": 3, "pear": 3}), bad)


def test_clamp_uses_what_exists_and_warns(caplog: pytest.LogCaptureFixture) -> None:
    split = make_split({"apple": 5, "pear": 5}, angles=lambda s: 2 if s % 2 else 4)
    with caplog.at_level(logging.WARNING):
        subset = select_training_subset(split, cell(40, 3, clamp=True))
    photos = trained(subset)
    assert photos["sample_id"].nunique() == 10
    per_sample = photos.groupby("sample_id").size()
    assert sorted(per_sample.unique()) == [2, 3]
    assert len(photos) == 5 * 3 + 5 * 2
    assert "clamped" in caplog.text
    assert "n_samples=40 but the training split has 10" in caplog.text


def test_validate_grid_reports_every_impossible_cell_at_once() -> None:
    split = make_split({"apple": 5, "pear": 5}, angles=3)
    grid = AblationGrid(n_samples=[2, 10, 12], n_angles=[1, 4], seeds=[0, 1], clamp=False)
    with pytest.raises(SplitError) as error:
        validate_grid(split, grid)
    message = str(error.value)
    assert message.startswith("8 data-size ablation cell(s) cannot be built")
    assert "(n_samples=12, n_angles=1, seed=1): n_samples=12" in message
    assert "(n_samples=2, n_angles=4, seed=0): n_angles=4" in message
    assert "(n_samples=10, n_angles=1, seed=0)" not in message
    assert "apple: 5 training samples, angles per sample min 3 / median 3 / max 3" in message


def test_validate_grid_accepts_possible_and_clamped_grids() -> None:
    split = make_split({"apple": 5, "pear": 5}, angles=3)
    possible = AblationGrid(n_samples=[2, 10], n_angles=[1, 3], seeds=[0], clamp=False)
    assert validate_grid(split, possible) is None
    clamped = AblationGrid(n_samples=[12], n_angles=[4], seeds=0, clamp=True)
    assert validate_grid(split, clamped) is None
    with pytest.raises(ValueError, match="seeds"):  # a grid without cells is refused
        AblationGrid(n_samples=[2], n_angles=[1], seeds=[], clamp=False)


def test_grid_cells_expands_the_product() -> None:
    cells = grid_cells(AblationGrid(n_samples=[2, 4], n_angles=1, seeds=[0, 1, 2], clamp=False))
    assert len(cells) == 6
    assert cells[0] == {"n_samples": 2, "n_angles": 1, "seed": 0, "clamp": False}
    assert {(c["n_samples"], c["seed"]) for c in cells} == {
        (n, s) for n in (2, 4) for s in (0, 1, 2)
    }


def _predictions(subset: pd.DataFrame) -> pd.DataFrame:
    test = subset[subset["split"] == "test"].reset_index(drop=True)
    other = test["label"].map({"apple": "pear", "pear": "apple"})
    predicted = test["label"].where(test.index % 3 != 0, other)  # every third photo wrong
    return pd.DataFrame(
        {
            "path": test["path"],
            "sample_id": test["sample_id"],
            "label": test["label"],
            "predicted": predicted,
            "prob_apple": 0.5,
            "prob_pear": 0.5,
        }
    )


def test_summarise_cell_is_a_json_record_of_the_cell() -> None:
    subset = select_training_subset(make_split({"apple": 4, "pear": 4}, angles=3), cell(6, 2))
    predictions = _predictions(subset)
    metrics = {
        "accuracy": 0.75,
        "accuracy_ci_low": 0.5,
        "accuracy_ci_high": 0.9,
        "balanced_accuracy": 0.7,
        "macro_f1": 0.72,
        "roc_auc": 0.8,
    }
    record = summarise_cell(cell(6, 2, 1), SUMMARY, metrics, predictions, subset)
    assert json.loads(json.dumps(record)) == record
    assert record["variant"] == "frozen"
    assert (record["n_samples"], record["n_angles"], record["seed"]) == (6, 2, 1)
    assert (record["n_samples_used"], record["n_images"]) == (6, 12)
    assert record["accuracy"] == 0.75
    assert record["macro_f1"] == 0.72
    assert record["train_seconds"] == 12.5
    assert (record["steps"], record["best_step"], record["converged"]) == (40, 30, True)
    assert record["diverged"] is False
    diverged = {**SUMMARY, "converged": False, "diverged": True, "stop_reason": "diverged"}
    assert summarise_cell(cell(6, 2, 1), diverged, metrics, predictions, subset)["diverged"]
    # What the report chooses the variant on (validation) and scores it with (the classes).
    assert (record["metric"], record["val_metric"]) == ("balanced_accuracy", 0.8)
    assert record["label"] == predictions["label"].tolist()
    assert "roc_auc" not in record
    assert record["sample_id"] == predictions["sample_id"].tolist()
    assert record["correct"] == (predictions["label"] == predictions["predicted"]).tolist()
    assert record["correct"].count(False) == 4  # every third of the 12 test photos


# A training summary as the training node writes it (the keys a cell record keeps).
SUMMARY = {
    "variant": "frozen",
    "train_seconds": 12.5,
    "seed": 0,
    "steps": 40,
    "best_step": 30,
    "lr": 0.01,
    "converged": True,
    "metric": "balanced_accuracy",
    "best_val_metric": 0.8,
}


def test_summarise_cell_rejects_predictions_of_other_photos() -> None:
    subset = select_training_subset(make_split({"apple": 4, "pear": 4}), cell(4, 1))
    predictions = _predictions(subset).iloc[1:]
    metrics = dict.fromkeys(
        ["accuracy", "accuracy_ci_low", "accuracy_ci_high", "balanced_accuracy"], 0.5
    )
    with pytest.raises(ValueError, match="not of this cell's test photos"):
        summarise_cell(cell(4, 1), {**SUMMARY, "variant": "x"}, metrics, predictions, subset)


def _ablation(training_overrides: dict) -> AblationSettings:
    report = {
        "tolerance": 0.02,
        "confidence": 0.95,
        "bootstrap_resamples": 10,
        "bootstrap_seed": 0,
        "extrapolate_to": [2],
    }
    return AblationSettings.model_validate(
        {
            "n_samples": [4],
            "n_angles": [1],
            "seeds": [0, 3],
            "clamp": False,
            "variants": ["frozen", "finetune"],
            "training_overrides": training_overrides,
            "cluster": {
                "workers": 2,
                "scheduler": None,
                "cells_per_task": "auto",
                "retries": 2,
                "dashboard": False,
            },
            "report": report,
        }
    )


def test_cell_settings_are_the_variants_with_its_overrides_and_the_cells_seed() -> None:
    frozen = study_training_settings("frozen")
    ablation = _ablation({"frozen": {"patience": 6}})
    settings = cell_training_parameters(frozen, ablation, cell=cell(4, 1, seed=3))
    assert (settings.name, settings.patience, settings.seed) == ("frozen", 6, 3)
    assert settings.seeds == 1  # one training per cell: the grid's seeds are its repeats
    assert settings.model_dump(exclude={"patience", "seed", "seeds"}) == frozen.model_dump(
        exclude={"patience", "seed", "seeds"}
    )
    finetune = study_training_settings("finetune")
    untouched = cell_training_parameters(finetune, ablation, cell=cell(4, 1, seed=0))
    assert untouched == finetune.model_copy(update={"seeds": 1})  # and the same seed


def test_cell_settings_are_checked_again() -> None:
    frozen = study_training_settings("frozen")
    with pytest.raises(ValueError, match="seed"):
        cell_training_parameters(frozen, _ablation({}), cell=cell(4, 1, seed=-1))


def _settings(variant: str, **changes: object) -> TrainingSettings:
    """The study's settings of ``variant``, with ``changes``."""
    return study_training_settings(variant).model_copy(update=changes)


def _cell_settings(variant: str, **changes: object) -> TrainingSettings:
    """What a cell trains with: ``_settings`` and one training (``seeds: 1``)."""
    return _settings(variant, seeds=1, **changes)


def test_training_overrides_apply_only_to_their_variant() -> None:
    ablation = _ablation({"finetune": {"max_images": 100}})
    finetune = cell_training_parameters(_settings("finetune"), ablation, cell=cell(4, 1))
    frozen = cell_training_parameters(_settings("frozen"), ablation, cell=cell(4, 1))
    assert finetune == _cell_settings("finetune", max_images=100)
    assert frozen == _cell_settings("frozen")


def test_the_cells_seed_replaces_the_variants_and_any_overridden_seed() -> None:
    ablation = _ablation({"frozen": {"seed": 7, "lr": 0.1}})
    for seed in (0, 3):
        settings = cell_training_parameters(
            _settings("frozen"), ablation, cell=cell(4, 1, seed=seed)
        )
        assert settings == _cell_settings("frozen", lr=0.1, seed=seed)


@pytest.mark.parametrize("overrides", [{}, {"scratch": {"lr": 1.0}}])
def test_without_overrides_for_the_variant_only_the_seed_changes(overrides: dict) -> None:
    settings = cell_training_parameters(
        _settings("finetune"), _ablation(overrides), cell=cell(4, 1, seed=2)
    )
    assert settings == _cell_settings("finetune", seed=2)
