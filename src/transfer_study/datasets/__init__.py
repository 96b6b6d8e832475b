"""Project datasets for what kedro-datasets does not cover (raw bytes, torch objects)."""

from .binary_file_dataset import BinaryFileDataset
from .checkpoint_dataset import CheckpointDataset
from .content_addressed_dataset import ContentAddressedDataset
from .optional_dataset import OptionalDataset
from .photo_folder_dataset import PhotoFolderDataset, PhotoFolderError
from .replacing_partitioned_dataset import ReplacingPartitionedDataset
from .torch_dataset import TorchDataset

__all__ = [
    "BinaryFileDataset",
    "CheckpointDataset",
    "ContentAddressedDataset",
    "OptionalDataset",
    "PhotoFolderDataset",
    "PhotoFolderError",
    "ReplacingPartitionedDataset",
    "TorchDataset",
]
