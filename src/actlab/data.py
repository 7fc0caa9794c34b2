"""MNIST and Fashion-MNIST: find the IDX files, verify them, and hold each split as a uint8 tensor.

Where actlab looks, in order: the data folder the user names (`--data-dir` / `ACTLAB_DATA_DIR`),
the user cache (`~/.cache/actlab`), Debian's `/usr/share/datasets/fashion-mnist`, and finally the
publishers' URLs (downloaded into the cache). Every file is checked against the SHA-256 of its
decompressed bytes, so a truncated, corrupt or wrong file is an error naming that file, never a
silently bad tensor. Whole splits are held in memory (MNIST is 47 MB as uint8): training slices
batches out of them by index, with no DataLoader.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import tempfile
import urllib.error
import urllib.request
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from actlab.errors import ActlabError

FILES = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}


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


def _file_in(folder: Path, name: str) -> Path | None:
    for candidate in (folder / f"{name}.gz", folder / name):
        if candidate.is_file():
            return candidate
    return None


def _complete_folder(folder: Path) -> bool:
    return all(_file_in(folder, name) for name in FILES.values())


def candidate_folders(info: DatasetInfo, data_dir: Path | None, cache_dir: Path) -> list[Path]:
    """Every folder actlab looks in for `info`'s four files, in order of preference."""
    folders = []
    if data_dir is not None:
        folders += [data_dir / sub for sub in info.folders] + [data_dir]
    folders += [cache_dir / info.name]
    folders += [Path(d) for d in info.system_dirs]
    return folders


def find_folder(info: DatasetInfo, data_dir: Path | None, cache_dir: Path) -> Path | None:
    for folder in candidate_folders(info, data_dir, cache_dir):
        if _complete_folder(folder):
            return folder
    return None


def read_bytes(path: Path) -> bytes:
    """The decompressed bytes of an IDX file, `.gz` or raw."""
    try:
        if path.suffix == ".gz":
            with gzip.open(path, "rb") as f:
                return f.read()
        return path.read_bytes()
    except (EOFError, gzip.BadGzipFile, zlib.error, OSError) as exc:
        raise ActlabError(f"{path}: cannot be read ({exc}); the file is truncated or corrupt: "
                          f"delete it and run `actlab data fetch` or copy it again") from None


def parse_idx(raw: bytes, path: Path) -> np.ndarray:
    """An IDX file's array (uint8 only, as MNIST-family files are), checked against its header."""
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] != 0x08:
        raise ActlabError(f"{path}: not an IDX uint8 file (magic bytes {raw[:4].hex() or 'missing'}, "
                          f"expected 0000080X); is this the right file?")
    ndim = raw[3]
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise ActlabError(f"{path}: truncated IDX header; delete it and run `actlab data fetch`")
    shape = tuple(int.from_bytes(raw[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim))
    expected = header + int(np.prod(shape))
    if len(raw) != expected:
        raise ActlabError(f"{path}: holds {len(raw)} bytes but its header {shape} needs {expected}; "
                          f"the file is truncated or corrupt: delete it and run `actlab data fetch`")
    return np.frombuffer(raw, dtype=np.uint8, offset=header).reshape(shape)


def read_idx(path: Path, sha256: str | None = None) -> np.ndarray:
    """Read one IDX file, verifying the SHA-256 of its decompressed bytes when a pin is given."""
    raw = read_bytes(path)
    array = parse_idx(raw, path)
    if sha256 is not None:
        digest = hashlib.sha256(raw).hexdigest()
        if digest != sha256:
            raise ActlabError(f"{path}: content does not match its SHA-256 pin ({digest[:12]}… ≠ "
                              f"{sha256[:12]}…); the file is corrupt or from another data set: "
                              f"delete it and run `actlab data fetch`")
    return array


def _load_split(info: DatasetInfo, folder: Path, images: str, labels: str) -> Split:
    image_path, label_path = _file_in(folder, images), _file_in(folder, labels)
    x = read_idx(image_path, info.sha256[images])
    y = read_idx(label_path, info.sha256[labels])
    if x.ndim != 3 or y.ndim != 1 or len(x) != len(y):
        raise ActlabError(f"{folder}: images {x.shape} and labels {y.shape} do not pair up")
    return Split(torch.from_numpy(x.reshape(len(x), -1).copy()), torch.from_numpy(y.astype(np.int64)))


def not_found_message(info: DatasetInfo, data_dir: Path | None, cache_dir: Path, why: str) -> str:
    looked = ", ".join(str(f) for f in candidate_folders(info, data_dir, cache_dir))
    return (f"{info.title} files not found (looked in: {looked}) and {why}; run "
            f"`actlab data fetch {info.name}` with internet access, or download the four files "
            f"from {info.mirrors[0]} into a folder and pass it with --data-dir or ACTLAB_DATA_DIR")


def load_dataset(name: str, data_dir: str | Path | None = None, cache_dir: str | Path | None = None,
                 download: bool = True, mirrors: tuple[str, ...] | None = None) -> Dataset:
    """Find (or download), verify and load a data set."""
    info = dataset_info(name)
    data_dir = Path(data_dir) if data_dir is not None else None
    cache_dir = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    if data_dir is not None and not data_dir.is_dir():
        raise ActlabError(f"data folder {data_dir} does not exist; pass an existing folder with "
                          f"--data-dir (or ACTLAB_DATA_DIR), or leave it out to use {cache_dir}")
    folder = find_folder(info, data_dir, cache_dir)
    if folder is None:
        if not download:
            raise ActlabError(not_found_message(info, data_dir, cache_dir, "downloading is off"))
        folder = fetch(info.name, cache_dir, mirrors, looked_in=data_dir)
    train = _load_split(info, folder, FILES["train_images"], FILES["train_labels"])
    test = _load_split(info, folder, FILES["test_images"], FILES["test_labels"])
    return Dataset(info, train, test, folder)


def _download(url: str, target: Path, md5: str, show_progress: bool) -> None:
    """Download `url` to `target` atomically, checking the publisher's MD5 of the archive."""
    from tqdm import tqdm

    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".part")
    try:
        digest = hashlib.md5()
        with os.fdopen(fd, "wb") as out, urllib.request.urlopen(url, timeout=30) as response:
            total = int(response.headers.get("Content-Length") or 0) or None
            with tqdm(total=total, unit="B", unit_scale=True, desc=target.name,
                      disable=not show_progress, leave=False) as bar:
                while chunk := response.read(1 << 16):
                    out.write(chunk)
                    digest.update(chunk)
                    bar.update(len(chunk))
        if digest.hexdigest() != md5:
            raise ActlabError(f"{url}: downloaded archive has MD5 {digest.hexdigest()}, expected {md5}")
        os.replace(tmp, target)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def fetch(name: str, cache_dir: Path | None = None, mirrors: tuple[str, ...] | None = None,
          show_progress: bool = True, looked_in: Path | None = None) -> Path:
    """Download a data set's four files into the cache (skipping those already there).

    `looked_in` is the user's data folder, named in the error as a place already searched.
    """
    info = dataset_info(name)
    cache_dir = cache_dir or default_cache_dir()
    folder = cache_dir / info.name
    for file in FILES.values():
        if _file_in(folder, file):
            continue
        errors = []
        for mirror in mirrors or info.mirrors:
            try:
                _download(f"{mirror}{file}.gz", folder / f"{file}.gz", info.md5_gz[file], show_progress)
                break
            except (urllib.error.URLError, OSError, ActlabError) as exc:
                errors.append(f"{mirror}: {getattr(exc, 'reason', exc)}")
        else:
            raise ActlabError(not_found_message(info, looked_in, cache_dir,
                                                "the download failed (" + "; ".join(errors) + ")"))
    return folder


def verify(name: str, data_dir: Path | None = None, cache_dir: Path | None = None) -> list[str]:
    """Check every file of a data set; returns one line per file, raises on the first bad one."""
    info = dataset_info(name)
    cache_dir = cache_dir or default_cache_dir()
    folder = find_folder(info, data_dir, cache_dir)
    if folder is None:
        raise ActlabError(not_found_message(info, data_dir, cache_dir, "nothing was verified"))
    lines = []
    for file in FILES.values():
        path = _file_in(folder, file)
        array = read_idx(path, info.sha256[file])
        lines.append(f"ok  {path}  {tuple(array.shape)}  sha256 {info.sha256[file][:16]}…")
    return lines


def validation_split(n: int, size: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Indices (train, validation) of a seeded random split of `n` training examples."""
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    return perm[size:].sort().values, perm[:size].sort().values


def seeded_subset(n: int, size: int, seed: int) -> torch.Tensor:
    """Indices of a seeded random subset of `size` out of `n` examples, in their original order."""
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed + 7919))
    return perm[:size].sort().values
