"""``ReplacingPartitionedDataset``: a save replaces its own partitions and nothing else."""

from __future__ import annotations

from pathlib import Path

from transfer_study.datasets import ReplacingPartitionedDataset


def _exports(path: Path) -> ReplacingPartitionedDataset:
    """The catalog's onnx_models: one model.onnx beside each variant's model.pt."""
    return ReplacingPartitionedDataset(
        path=str(path),
        dataset="transfer_study.datasets.BinaryFileDataset",
        filename_suffix="/model.onnx",
    )


def _write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)


def _models_folder(root: Path) -> Path:
    """Two variants' checkpoints, their earlier exports, and unrelated files."""
    _write(root / "a" / "model.pt", b"checkpoint a")
    _write(root / "a" / "model.onnx", b"old export a")
    _write(root / "b" / "model.pt", b"checkpoint b")
    _write(root / "b" / "model.onnx", b"old export b")
    _write(root / "b" / "notes.txt", b"notes")
    _write(root / "README.md", b"readme")
    return root


def test_a_save_writes_its_partitions_and_deletes_only_its_stale_ones(tmp_path: Path):
    root = _models_folder(tmp_path / "06_models")

    _exports(root).save({"a": b"new export a"})

    assert (root / "a" / "model.onnx").read_bytes() == b"new export a"
    assert not (root / "b" / "model.onnx").exists()
    # Files that are not its partitions stay, whatever folder they are in.
    assert (root / "a" / "model.pt").read_bytes() == b"checkpoint a"
    assert (root / "b" / "model.pt").read_bytes() == b"checkpoint b"
    assert (root / "b" / "notes.txt").read_bytes() == b"notes"
    assert (root / "README.md").read_bytes() == b"readme"


def test_a_load_after_a_save_lists_only_the_saved_partitions(tmp_path: Path):
    root = _models_folder(tmp_path / "06_models")
    dataset = _exports(root)
    assert sorted(dataset.load()) == ["a", "b"]  # lists (and caches) the earlier exports

    dataset.save({"a": b"new export a"})

    partitions = dataset.load()
    assert sorted(partitions) == ["a"]
    assert partitions["a"]() == b"new export a"
    assert sorted(_exports(root).load()) == ["a"]  # a fresh dataset sees the same


def test_a_save_that_adds_a_partition_keeps_the_others_it_saves(tmp_path: Path):
    root = _models_folder(tmp_path / "06_models")

    _exports(root).save({"b": b"new export b", "c": b"export c"})

    assert not (root / "a" / "model.onnx").exists()
    assert (root / "b" / "model.onnx").read_bytes() == b"new export b"
    assert (root / "c" / "model.onnx").read_bytes() == b"export c"
    assert (root / "a" / "model.pt").exists()


def test_a_save_to_a_missing_folder_creates_it(tmp_path: Path):
    root = tmp_path / "not" / "yet"

    _exports(root).save({"a": b"export a", "b": b"export b"})

    assert (root / "a" / "model.onnx").read_bytes() == b"export a"
    assert (root / "b" / "model.onnx").read_bytes() == b"export b"
    assert sorted(_exports(root).load()) == ["a", "b"]


def test_a_save_to_an_empty_folder_works(tmp_path: Path):
    root = tmp_path / "empty"
    root.mkdir()

    _exports(root).save({"a": b"export a"})

    assert [p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file()] == [
        "a/model.onnx"
    ]
