"""Project datasets for what kedro-datasets does not cover (raw bytes, torch objects)."""

from .binary_file_dataset import BinaryFileDataset
from .content_addressed_dataset import ContentAddressedDataset
from .optional_dataset import OptionalDataset
from .photo_folder_dataset import PhotoFolderDataset, PhotoFolderError
from .torch_dataset import TorchDataset

__all__ = [
    "BinaryFileDataset",
    "ContentAddressedDataset",
    "OptionalDataset",
    "PhotoFolderDataset",
    "PhotoFolderError",
    "TorchDataset",
]
