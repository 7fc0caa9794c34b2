"""The data sets actlab knows: their files with SHA-256 pins, sizes, classes and public download
URLs (one entry each in `DATASETS`), and the tensors a loaded one is held in (`Split`, `Dataset`).
Finding, reading and downloading them is `actlab.data`'s work."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import torch

from actlab.errors import ActlabError

FILES = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}

DEFAULT_TIMEOUT = 30.0  # seconds a connect or any one read may take before a mirror counts as failed


@dataclass(frozen=True)
class DatasetInfo:
    """What actlab knows about one data set: its files' pins and where to download them."""

    name: str
    title: str
    sha256: dict[str, str]  # file name -> SHA-256 of the decompressed IDX bytes
    md5_gz: dict[str, str]  # file name -> MD5 of the publisher's .gz archive
    mirrors: tuple[str, ...]
    folders: tuple[str, ...]  # sub-folder names tried inside a data folder
    system_dirs: tuple[str, ...] = ()
    classes: tuple[str, ...] = tuple(str(d) for d in range(10))
    train_size: int = 60000  # examples in the training split
    test_size: int = 10000


DATASETS = {
    "mnist": DatasetInfo(
        name="mnist",
        title="MNIST",
        sha256={
            "train-images-idx3-ubyte": "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
            "train-labels-idx1-ubyte": "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
            "t10k-images-idx3-ubyte": "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
            "t10k-labels-idx1-ubyte": "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
        },
        md5_gz={
            "train-images-idx3-ubyte": "f68b3c2dcbeaaa9fbdd348bbdeb94873",
            "train-labels-idx1-ubyte": "d53e105ee54ea40749a09fcbcd1e9432",
            "t10k-images-idx3-ubyte": "9fb629c4189551a2d022fa330f9573f3",
            "t10k-labels-idx1-ubyte": "ec29112dd5afa0611ce80d1b7f02629c",
        },
        mirrors=(
            "https://ossci-datasets.s3.amazonaws.com/mnist/",
            "https://storage.googleapis.com/cvdf-datasets/mnist/",
        ),
        folders=("mnist", "MNIST/raw", "MNIST"),
    ),
    "fashion-mnist": DatasetInfo(
        name="fashion-mnist",
        title="Fashion-MNIST",
        sha256={
            "train-images-idx3-ubyte": "c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888",
            "train-labels-idx1-ubyte": "bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9",
            "t10k-images-idx3-ubyte": "5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b",
            "t10k-labels-idx1-ubyte": "0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34",
        },
        md5_gz={
            "train-images-idx3-ubyte": "8d4fb7e6c68d591d4c3dfef9ec88bf0d",
            "train-labels-idx1-ubyte": "25c81989df183df01b3e8a0aad5dffbe",
            "t10k-images-idx3-ubyte": "bef4ecab320f06d8554ea6380940ec79",
            "t10k-labels-idx1-ubyte": "bb300cfdad3c16e7a12a480ee83cd310",
        },
        mirrors=("http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",),
        folders=("fashion-mnist", "fashion_mnist", "FashionMNIST/raw", "FashionMNIST"),
        system_dirs=("/usr/share/datasets/fashion-mnist",),
        classes=("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                 "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"),
    ),
}

ALIASES = {"fashion": "fashion-mnist", "fashion_mnist": "fashion-mnist", "fmnist": "fashion-mnist"}


@dataclass(frozen=True)
class Split:
    """One split: images as an (N, 784) uint8 tensor, labels as an (N,) int64 tensor."""

    images: torch.Tensor
    labels: torch.Tensor

    def __len__(self) -> int:
        return len(self.labels)

    def take(self, index: torch.Tensor) -> Split:
        return Split(self.images[index], self.labels[index])


@dataclass(frozen=True)
class Dataset:
    """A whole data set as loaded from `folder`."""

    info: DatasetInfo
    train: Split
    test: Split
    folder: Path

    def __repr__(self) -> str:
        return (f"Dataset({self.info.title}: {len(self.train)} train / {len(self.test)} test "
                f"from {self.folder})")


def dataset_info(name: str) -> DatasetInfo:
    key = ALIASES.get(name.lower(), name.lower())
    if key not in DATASETS:
        raise ActlabError(f"unknown data set {name!r}; choose one of: {', '.join(DATASETS)}")
    return DATASETS[key]


def default_cache_dir() -> Path:
    """The user cache, `~/.cache/actlab` (or `$XDG_CACHE_HOME/actlab`)."""
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "actlab"


