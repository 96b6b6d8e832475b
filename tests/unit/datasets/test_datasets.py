"""The project's custom datasets: bytes, photo folders, torch files, content-addressed cache."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from kedro.io.core import DatasetError

from transfer_study.datasets import (
    BinaryFileDataset,
    ContentAddressedDataset,
    PhotoFolderDataset,
    PhotoFolderError,
    TorchDataset,
)


def test_binary_file_dataset_round_trips_bytes(tmp_path: Path):
    dataset = BinaryFileDataset(filepath=str(tmp_path / "sub" / "blob.bin"))
    assert not dataset.exists()
    dataset.save(b"\x00\xffabc")
    assert dataset.exists()
    assert dataset.load() == b"\x00\xffabc"


def test_photo_folder_dataset_loads_every_file_with_its_extension(tmp_path: Path):
    (tmp_path / "cat").mkdir()
    (tmp_path / "cat" / "tom.jpg").write_bytes(b"jpg")
    (tmp_path / "cat" / "tom.png").write_bytes(b"png")
    (tmp_path / "manifest.csv").write_text("path,label\n")
    partitions = PhotoFolderDataset(path=str(tmp_path)).load()
    assert sorted(partitions) == ["cat/tom.jpg", "cat/tom.png", "manifest.csv"]
    assert partitions["cat/tom.png"]() == b"png"


def test_photo_folder_dataset_explains_a_missing_folder_as_a_user_error(tmp_path: Path):
    # A DatasetError, which Kedro passes on, and a user error, shown without a traceback.
    with pytest.raises(PhotoFolderError, match=r"does not exist.*raw_images.path=.*demo_data"):
        PhotoFolderDataset(path=str(tmp_path / "nowhere")).load()


def test_photo_folder_dataset_explains_an_empty_folder_as_a_user_error(tmp_path: Path):
    with pytest.raises(PhotoFolderError, match=r"contains no files.*raw_images.path="):
        PhotoFolderDataset(path=str(tmp_path)).load()


def test_torch_dataset_round_trips_tensors_and_lists(tmp_path: Path):
    dataset = TorchDataset(filepath=str(tmp_path / "cache.pt"))
    bundle = {
        "images": torch.arange(12, dtype=torch.uint8).reshape(1, 3, 2, 2),
        "paths": ["a/b.jpg"],
    }
    dataset.save(bundle)
    loaded = dataset.load()
    assert torch.equal(loaded["images"], bundle["images"])
    assert loaded["paths"] == ["a/b.jpg"]
    assert not (tmp_path / "cache.pt.partial").exists()


def test_torch_dataset_refuses_arbitrary_pickled_objects(tmp_path: Path):
    path = tmp_path / "evil.pt"
    torch.save({"object": Path("x")}, path)
    with pytest.raises(DatasetError, match=r"[Ww]eights only"):
        TorchDataset(filepath=str(path)).load()


def test_content_addressed_dataset_never_rebuilds_an_existing_entry(tmp_path: Path):
    dataset = ContentAddressedDataset(
        path=str(tmp_path / "cache"), dataset=TorchDataset, filename_suffix=".pt"
    )
    calls = []

    def build(value: int):
        def make():
            calls.append(value)
            return {"value": torch.tensor(value)}

        return make

    dataset.save({"key-a": build(1)})
    dataset.save({"key-a": build(2), "key-b": build(3)})
    assert calls == [1, 3]
    partitions = dataset.load()
    assert sorted(partitions) == ["key-a", "key-b"]
    assert partitions["key-a"]()["value"].item() == 1


def test_content_addressed_dataset_ignores_an_interrupted_write(tmp_path: Path):
    cache = tmp_path / "cache"
    cache.mkdir()
    (cache / "key-a.pt.partial").write_bytes(b"half a file")
    dataset = ContentAddressedDataset(path=str(cache), dataset=TorchDataset, filename_suffix=".pt")
    dataset.save({"key-a": lambda: {"value": torch.tensor(7)}})
    assert dataset.load()["key-a"]()["value"].item() == 7
