"""``OptionalDataset``: None for what does not exist, the data (or a loader) otherwise."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from kedro.io.core import DatasetError

from transfer_study.datasets.optional_dataset import OptionalDataset

TORCH_FILE = "transfer_study.datasets.TorchDataset"


def _models(path: Path, **kwargs: object) -> OptionalDataset:
    """The catalog's trained_models: one model.pt per variant folder."""
    return OptionalDataset(
        dataset={
            "type": "partitions.PartitionedDataset",
            "path": str(path),
            "dataset": TORCH_FILE,
            "filename_suffix": "/model.pt",
        },
        **kwargs,
    )


def test_a_missing_file_loads_as_none(tmp_path: Path):
    dataset = OptionalDataset(dataset={"type": TORCH_FILE, "filepath": str(tmp_path / "x.pt")})
    assert dataset.load() is None
    assert dataset.exists()  # something (None) can always be loaded


def test_an_existing_file_loads_as_its_data(tmp_path: Path):
    torch.save({"answer": torch.tensor(42)}, tmp_path / "x.pt")
    dataset = OptionalDataset(dataset={"type": TORCH_FILE, "filepath": str(tmp_path / "x.pt")})
    assert dataset.load()["answer"].item() == 42


def test_lazy_loads_a_function_that_reads_the_file_only_when_called(tmp_path: Path):
    path = tmp_path / "x.pt"
    path.write_bytes(b"not a torch file")
    loader = OptionalDataset(dataset={"type": TORCH_FILE, "filepath": str(path)}, lazy=True).load()
    assert callable(loader)
    with pytest.raises(DatasetError):
        loader()


@pytest.mark.parametrize("folder", ["missing", "empty"])
def test_a_partitioned_folder_without_partitions_loads_as_none(tmp_path: Path, folder: str):
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "notes.txt").write_text("no model here")
    assert _models(tmp_path / folder).load() is None


def test_models_are_keyed_by_their_folder(tmp_path: Path):
    for variant in ("frozen", "ablation/n10"):
        (tmp_path / variant).mkdir(parents=True)
        torch.save({"variant": variant}, tmp_path / variant / "model.pt")
    models = _models(tmp_path).load()
    assert sorted(models) == ["ablation/n10", "frozen"]
    assert models["frozen"]() == {"variant": "frozen"}


def test_it_is_read_only(tmp_path: Path):
    with pytest.raises(DatasetError, match="read-only"):
        OptionalDataset(dataset={"type": TORCH_FILE, "filepath": str(tmp_path / "x.pt")}).save(1)
