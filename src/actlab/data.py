"""MNIST and Fashion-MNIST: find the IDX files, verify them, and hold each split as a uint8 tensor.

Where actlab looks, in order: the data folder the user names (`--data-dir` / `ACTLAB_DATA_DIR`),
the user cache (`~/.cache/actlab`), Debian's `/usr/share/datasets/fashion-mnist`, and finally the
network: the user's mirror, then the publishers' URLs, downloaded into the cache (docs/data.md).
A download lands in the cache only whole and verified. Every file is checked against the SHA-256
of its decompressed bytes, so a truncated, corrupt or wrong file is an error naming that file,
never a silently bad tensor. Whole splits are held in memory (MNIST is 47 MB as uint8): training
slices batches out of them by index, with no DataLoader. The data sets themselves (files, pins,
URLs) are entries of `actlab.datasets`, whose names this module also offers to its callers.
"""


from __future__ import annotations

import gzip
import hashlib
import http.client
import os
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
import zlib
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from actlab.datasets import (DATASETS, DEFAULT_TIMEOUT, FILES, Dataset, DatasetInfo, Split, dataset_info,
                             default_cache_dir)
from actlab.errors import ActlabError
from actlab.files import file_mode
from actlab.progress import bar_class

__all__ = ["DATASETS", "FILES", "Dataset", "DatasetInfo", "Split", "candidate_folders", "check_mirror",
           "dataset_info", "default_cache_dir", "fetch", "find_folder", "load_dataset", "mirror_urls", "read_idx",
           "seeded_subset", "validation_split", "verify"]

def _file_in(folder: Path, name: str) -> Path | None:
    for candidate in (folder / f"{name}.gz", folder / name):
        try:
            if candidate.is_file():
                return candidate
        except PermissionError:
            raise ActlabError(f"data folder {folder} cannot be read (permission denied); make it readable "
                              f"(chmod a+rx {folder}) or pass another folder with --data-dir") from None
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
    """The first folder holding all four files. An unreadable folder is passed over; if none holds
    them and one the user named (under `data_dir`) was unreadable, that is the error."""
    unreadable = None
    for folder in candidate_folders(info, data_dir, cache_dir):
        try:
            if _complete_folder(folder):
                return folder
        except ActlabError as exc:
            if data_dir is not None and unreadable is None and folder.is_relative_to(data_dir):
                unreadable = exc
    if unreadable is not None:
        raise unreadable
    return None


def read_bytes(path: Path) -> bytes:
    """The decompressed bytes of an IDX file, `.gz` or raw."""
    try:
        if path.suffix == ".gz":
            with gzip.open(path, "rb") as f:
                return f.read()
        return path.read_bytes()
    except PermissionError:
        raise ActlabError(f"{path}: cannot be read (permission denied); make it readable "
                          f"(chmod a+r {path})") from None
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
    folders = candidate_folders(info, data_dir, cache_dir)
    looked = ", ".join(str(f) for f in folders)
    partial = ""  # a folder with some of the files: name the ones it lacks
    for folder in folders:
        try:
            missing = [f"{name}.gz" for name in FILES.values() if not _file_in(folder, name)]
        except ActlabError:  # an unreadable folder holds nothing to name here
            continue
        if len(missing) < len(FILES):
            partial = f"; {folder} lacks {', '.join(missing)}"
            break
    return (f"{info.title} files not found (looked in: {looked}{partial}) and {why}; fix: pass a folder holding "
            f"the four .gz files with --data-dir or ACTLAB_DATA_DIR, point --data-mirror or "
            f"ACTLAB_DATA_MIRROR at a mirror that serves them (docs/data.md), or run "
            f"`actlab data fetch {info.name}` where {info.mirrors[0]} is reachable")


def load_dataset(name: str, data_dir: str | Path | None = None, cache_dir: str | Path | None = None,
                 download: bool = True, mirrors: tuple[str, ...] | None = None, *,
                 mirror: str | None = None, timeout: float = DEFAULT_TIMEOUT,
                 show_progress: bool | None = None, log: Callable[[str], None] | None = None) -> Dataset:
    """Find (or download), verify and load a data set.

    `mirror`, `mirrors`, `timeout`, `show_progress` and `log` are passed on to `fetch` when no local
    copy is found; a malformed `mirror` is an error even when none is needed, so a typo shows at once.
    """
    info = dataset_info(name)
    check_mirror(mirror)
    data_dir = Path(data_dir) if data_dir is not None else None
    cache_dir = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    if data_dir is not None and not data_dir.is_dir():
        raise ActlabError(f"data folder {data_dir} {'is a file' if data_dir.exists() else 'does not exist'}; pass "
                          f"an existing folder with --data-dir (or ACTLAB_DATA_DIR), or leave it out to use "
                          f"{cache_dir}")
    folder = find_folder(info, data_dir, cache_dir)
    if folder is None:
        if not download:
            raise ActlabError(not_found_message(info, data_dir, cache_dir, "downloading is off"))
        folder = fetch(info.name, cache_dir, mirrors, show_progress, looked_in=data_dir, mirror=mirror,
                       timeout=timeout, log=log)
    train = _load_split(info, folder, FILES["train_images"], FILES["train_labels"])
    test = _load_split(info, folder, FILES["test_images"], FILES["test_labels"])
    return Dataset(info, train, test, folder)


def check_mirror(mirror: str | None) -> str | None:
    """The user's mirror as a base URL ending in `/`, or None when unset (None or empty).

    Only http(s) is accepted: the URL is extended with `<data set>/<file>.gz`, which a query,
    fragment or local path could not take.
    """
    if not mirror or not mirror.strip():
        return None
    parts = urllib.parse.urlsplit(mirror.strip())
    if parts.scheme not in ("http", "https") or not parts.netloc or parts.query or parts.fragment:
        raise ActlabError(f"data mirror {mirror!r} is not an http:// or https:// base URL; give one under "
                          f"which mnist/ and fashion-mnist/ hold the .gz files, e.g. http://host:8000/ "
                          f"(--data-mirror, ACTLAB_DATA_MIRROR or data_mirror; see docs/data.md)")
    return mirror.strip().rstrip("/") + "/"


def mirror_urls(info: DatasetInfo, mirror: str | None, mirrors: tuple[str, ...] | None = None) -> list[str]:
    """The base URLs tried for `info`, in order: `<mirror>/<name>/` first, then the built-in ones.

    `mirrors` replaces the built-in list (tests use it to stay off the internet).
    """
    base = check_mirror(mirror)
    urls = [f"{base}{info.name}/"] if base else []
    for url in info.mirrors if mirrors is None else mirrors:
        url = url.rstrip("/") + "/"
        if url not in urls:
            urls.append(url)
    return urls


def _copy_body(response, out, on_chunk: Callable[[int], object]) -> tuple[str, int]:
    """Copy a response body to `out`; returns its MD5 and size. A body cut short is an error."""
    expected = int(response.headers.get("Content-Length") or -1)
    digest, size = hashlib.md5(), 0
    try:
        while chunk := response.read(1 << 16):
            out.write(chunk)
            digest.update(chunk)
            size += len(chunk)
            on_chunk(len(chunk))
    except http.client.IncompleteRead as exc:  # newer Pythons raise it where older ones return b""
        promised = expected if expected >= 0 else "an unknown number of"
        raise ActlabError(f"connection closed after {size + len(exc.partial)} of {promised} bytes") from None
    if 0 <= expected != size:
        raise ActlabError(f"connection closed after {size} of {expected} bytes")
    return digest.hexdigest(), size


def _archive_problem(path: Path, got_md5: str, md5: str, sha256: str) -> str | None:
    """None when `path` is the publisher's archive (its MD5) or a re-compression of the same content
    (the SHA-256 of its decompressed bytes, as mirrors that re-pack the files serve); else why not."""
    if got_md5 == md5:
        return None
    digest = hashlib.sha256()
    try:
        with gzip.open(path, "rb") as f:
            while chunk := f.read(1 << 20):
                digest.update(chunk)
    except (EOFError, gzip.BadGzipFile, zlib.error, OSError) as exc:
        return f"archive does not match its pin (MD5 {got_md5[:12]}…, not a readable gzip file: {exc})"
    if digest.hexdigest() != sha256:
        return (f"archive content does not match its pin (MD5 {got_md5[:12]}…, "
                f"content SHA-256 {digest.hexdigest()[:12]}…)")
    return None


def _download(opener: urllib.request.OpenerDirector, url: str, target: Path, md5: str, sha256: str,
              show_progress: bool, timeout: float) -> int:
    """Download `url` to `target` and verify it; returns its size in bytes.

    The body goes to a temp file beside `target`, renamed only once verified, so the cache never
    holds a partial or wrong file; the temp file goes on any failure, Ctrl-C included.
    """
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".part")
    try:
        with os.fdopen(fd, "wb") as out, opener.open(url, timeout=timeout) as response:
            total = int(response.headers.get("Content-Length") or 0) or None
            with bar_class()(total=total, unit="B", unit_scale=True, desc=target.name,
                      disable=not show_progress, leave=False) as bar:
                got_md5, size = _copy_body(response, out, bar.update)
        problem = _archive_problem(Path(tmp), got_md5, md5, sha256)
        if problem:
            raise ActlabError(problem)
        os.chmod(tmp, file_mode())  # mkstemp creates 0600; a cache file follows the umask
        os.replace(tmp, target)
        return size
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def _failure_reason(exc: BaseException, timeout: float) -> str:
    """A few words on why one download failed, for the one-line error (an HTTP error's response is closed)."""
    if isinstance(exc, urllib.error.HTTPError):
        exc.close()
        return f"HTTP {exc.code} {exc.reason}".strip()
    reason = exc.reason if isinstance(exc, urllib.error.URLError) else exc
    if isinstance(reason, TimeoutError):  # socket.timeout is TimeoutError since Python 3.10
        return f"timed out after {timeout:g} s"
    if isinstance(reason, http.client.RemoteDisconnected):
        return "connection closed without a response"
    if isinstance(reason, OSError) and reason.strerror:
        return reason.strerror
    return str(reason) or type(reason).__name__


def fetch(name: str, cache_dir: Path | None = None, mirrors: tuple[str, ...] | None = None,
          show_progress: bool | None = None, looked_in: Path | None = None, *, mirror: str | None = None,
          timeout: float = DEFAULT_TIMEOUT, log: Callable[[str], None] | None = None) -> Path:
    """Download a data set's missing files into the cache; files already there stay.

    Each file is tried at every URL of `mirror_urls(mirror, mirrors)` in turn; the one that served
    the last file is tried first for the next. `timeout` bounds the connect and each read, in
    seconds. `show_progress` (default: stderr is a terminal) draws one bar per file; one line with
    the count, size, time and source goes to `log` (default: stderr). `looked_in` is the user's data
    folder, named in the error as a place already searched.
    """
    info = dataset_info(name)
    urls = mirror_urls(info, mirror, mirrors)
    if not timeout > 0:
        raise ActlabError(f"download timeout must be a positive number of seconds, got {timeout!r}")
    cache_dir = Path(cache_dir) if cache_dir else default_cache_dir()
    folder = cache_dir / info.name
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ActlabError(f"cannot create the cache folder {folder} ({exc.strerror}); set XDG_CACHE_HOME "
                          f"to a writable folder, or pass a folder holding the files with --data-dir") from None
    if not os.access(folder, os.W_OK):
        raise ActlabError(f"cache folder {folder} is not writable; fix its permissions, set XDG_CACHE_HOME "
                          f"to a writable folder, or pass a folder holding the files with --data-dir")
    show_progress = sys.stderr.isatty() if show_progress is None else show_progress
    log = log or (lambda line: print(line, file=sys.stderr))
    opener = urllib.request.build_opener()  # the default handlers: honours *_proxy / no_proxy as set now
    start, sizes, used = time.perf_counter(), [], []
    for file in FILES.values():
        if _file_in(folder, file):
            continue
        failures = []
        for base in list(urls):
            url = f"{base}{file}.gz"
            try:
                sizes.append(_download(opener, url, folder / f"{file}.gz", info.md5_gz[file],
                                       info.sha256[file], show_progress, timeout))
            except (OSError, http.client.HTTPException, ActlabError) as exc:
                failures.append(f"{url}: {_failure_reason(exc, timeout)}")
                continue
            urls.insert(0, urls.pop(urls.index(base)))
            if base not in used:
                used.append(base)
            break
        else:
            raise ActlabError(not_found_message(info, looked_in, cache_dir,
                                                f"the download failed ({'; '.join(failures) or 'no mirror to try'})"))
    if not sizes:
        log(f"{info.title}: all {len(FILES)} files already in {folder}")
    else:
        files = f"{len(sizes)} files" if len(sizes) > 1 else "1 file"
        log(f"downloaded {info.title}: {files}, {sum(sizes) / 1e6:.1f} MB in {time.perf_counter() - start:.1f} s "
            f"from {', '.join(used)} into {folder}")
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


def validation_size(val_split: int | float, n: int) -> int:
    """Examples a `val_split` holds out of a training split of `n`: a count, or a fraction of `n`."""
    return val_split if isinstance(val_split, int) else round(val_split * n)


def validation_split(n: int, size: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Indices (train, validation) of a seeded random split of `n` training examples."""
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    return perm[size:].sort().values, perm[:size].sort().values


def seeded_subset(n: int, size: int, seed: int) -> torch.Tensor:
    """Indices of a seeded random subset of `size` out of `n` examples, in their original order."""
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed + 7919))
    return perm[:size].sort().values
