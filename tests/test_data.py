"""Reading and verifying the IDX files; the facts in shared/datasets/README.md are the oracle."""

from __future__ import annotations

import gzip

import numpy as np
import pytest
import torch

from actlab import data
from actlab.errors import ActlabError


def test_mnist_matches_published_facts(mnist):
    assert mnist.train.images.shape == (60000, 784) and mnist.train.images.dtype == torch.uint8
    assert mnist.test.images.shape == (10000, 784)
    assert mnist.train.labels.dtype == torch.int64
    assert mnist.train.labels.bincount().tolist() == [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
    assert mnist.train.labels[:10].tolist() == [5, 0, 4, 1, 9, 2, 1, 3, 1, 4]
    assert mnist.train.images.double().mean().item() / 255 == pytest.approx(0.1307, abs=5e-5)


def test_fashion_mnist_matches_published_facts(data_dir):
    ds = data.load_dataset("fashion", data_dir, download=False)  # alias
    assert ds.info.name == "fashion-mnist"
    assert ds.train.labels.bincount().tolist() == [6000] * 10
    assert ds.train.labels[:10].tolist() == [9, 0, 0, 3, 0, 2, 7, 2, 5, 5]
    assert ds.train.images.double().mean().item() / 255 == pytest.approx(0.2860, abs=5e-5)


def test_raw_uncompressed_files_are_read_too(mnist_copy, mnist):
    for gz in mnist_copy.glob("*.gz"):
        gz.with_suffix("").write_bytes(gzip.decompress(gz.read_bytes()))
        gz.unlink()
    ds = data.load_dataset("mnist", mnist_copy.parent, download=False)
    assert torch.equal(ds.test.images, mnist.test.images)


def test_truncated_gz_is_an_error_naming_the_file(mnist_copy):
    path = mnist_copy / "t10k-images-idx3-ubyte.gz"
    path.write_bytes(path.read_bytes()[:50000])
    with pytest.raises(ActlabError, match="t10k-images-idx3-ubyte.gz.*truncated or corrupt"):
        data.load_dataset("mnist", mnist_copy.parent, download=False)


def test_changed_byte_fails_the_sha256_pin(mnist_copy):
    path = mnist_copy / "t10k-labels-idx1-ubyte.gz"
    raw = bytearray(gzip.decompress(path.read_bytes()))
    raw[100] = (raw[100] + 1) % 10  # still a valid label file, wrong content
    path.write_bytes(gzip.compress(bytes(raw)))
    with pytest.raises(ActlabError, match="t10k-labels-idx1-ubyte.gz.*SHA-256"):
        data.load_dataset("mnist", mnist_copy.parent, download=False)


def test_wrong_magic_is_an_error(mnist_copy):
    path = mnist_copy / "train-labels-idx1-ubyte.gz"
    raw = bytearray(gzip.decompress(path.read_bytes()))
    raw[2] = 0x0D  # float32 type code instead of uint8
    path.write_bytes(gzip.compress(bytes(raw)))
    with pytest.raises(ActlabError, match="train-labels-idx1-ubyte.gz.*not an IDX uint8 file"):
        data.load_dataset("mnist", mnist_copy.parent, download=False)


def test_header_and_length_disagree(tmp_path):
    path = tmp_path / "x-idx1-ubyte"
    path.write_bytes(bytes([0, 0, 8, 1]) + (5).to_bytes(4, "big") + bytes(4))
    with pytest.raises(ActlabError, match="needs 13"):
        data.read_idx(path)
    path.write_bytes(bytes([0, 0, 8, 1]) + (5).to_bytes(4, "big") + bytes(5))
    assert data.read_idx(path).tolist() == [0, 0, 0, 0, 0]


def test_missing_data_folder_is_a_clear_error(tmp_path):
    with pytest.raises(ActlabError, match="does not exist"):
        data.load_dataset("mnist", tmp_path / "nowhere", download=False)
    (tmp_path / "mnist.zip").write_bytes(b"")
    with pytest.raises(ActlabError, match="mnist.zip is a file; pass an existing folder"):
        data.load_dataset("mnist", tmp_path / "mnist.zip", download=False)


def test_offline_error_names_every_place_looked_and_the_fix(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ActlabError) as info:
        data.load_dataset("fashion-mnist", empty, cache_dir=tmp_path / "cache",
                          mirrors=("http://127.0.0.1:9/",))
    message = str(info.value)
    assert str(empty / "fashion-mnist") in message and str(tmp_path / "cache" / "fashion-mnist") in message
    assert "/usr/share/datasets/fashion-mnist" in message
    assert "actlab data fetch fashion-mnist" in message and "127.0.0.1:9" in message
    assert "\n" not in message
    assert not list((tmp_path / "cache").rglob("*.part")), "a failed download leaves no partial file"


def test_cache_is_used_when_no_data_dir(tmp_path, data_dir):
    import shutil

    shutil.copytree(data_dir / "mnist", tmp_path / "cache" / "mnist")
    ds = data.load_dataset("mnist", None, cache_dir=tmp_path / "cache", download=False)
    assert ds.folder == tmp_path / "cache" / "mnist"


def test_verify_lists_every_file(data_dir):
    lines = data.verify("mnist", data_dir)
    assert len(lines) == 4 and all(line.startswith("ok") for line in lines)


def test_unknown_dataset():
    with pytest.raises(ActlabError, match="unknown data set 'cifar10'"):
        data.dataset_info("cifar10")


def test_validation_split_is_seeded_disjoint_and_complete():
    train, val = data.validation_split(60000, 10000, seed=3)
    again_train, again_val = data.validation_split(60000, 10000, seed=3)
    other_train, other_val = data.validation_split(60000, 10000, seed=4)
    assert len(train) == 50000 and len(val) == 10000
    assert torch.equal(val, again_val) and torch.equal(train, again_train)
    assert not torch.equal(val, other_val)
    both = torch.cat([train, val]).sort().values
    assert torch.equal(both, torch.arange(60000))


def test_seeded_subset():
    a = data.seeded_subset(60000, 500, seed=0)
    assert len(a) == 500 and len(set(a.tolist())) == 500 and torch.equal(a, a.sort().values)
    assert torch.equal(a, data.seeded_subset(60000, 500, seed=0))
    assert not torch.equal(a, data.seeded_subset(60000, 500, seed=1))
    assert np.all(a.numpy() < 60000)


@pytest.mark.parametrize("mirror", ["http://host:8000", "http://host:8000/", " http://host:8000// "])
def test_the_users_mirror_comes_first_with_or_without_a_trailing_slash(mirror):
    info = data.dataset_info("fashion-mnist")
    assert data.mirror_urls(info, mirror) == ["http://host:8000/fashion-mnist/", *info.mirrors]
    assert data.mirror_urls(info, "https://lab.example/data", mirrors=("http://127.0.0.1:9",)) == [
        "https://lab.example/data/fashion-mnist/", "http://127.0.0.1:9/"]


def test_no_mirror_means_the_built_in_ones_each_once():
    info = data.dataset_info("mnist")
    assert data.mirror_urls(info, None) == data.mirror_urls(info, "") == list(info.mirrors)
    assert data.mirror_urls(info, "https://ossci-datasets.s3.amazonaws.com/") == list(info.mirrors)


@pytest.mark.parametrize("mirror", ["ftp://host/data", "host:8000", "/srv/datasets", "file:///srv/datasets",
                                    "http://", "http://host/?token=1"])
def test_a_mirror_must_be_an_http_base_url(mirror):
    with pytest.raises(ActlabError, match=r"is not an http:// or https:// base URL; .*e\.g\. http://host:8000/"):
        data.mirror_urls(data.dataset_info("mnist"), mirror)


def test_a_malformed_mirror_is_an_error_even_with_the_data_at_hand(data_dir):
    with pytest.raises(ActlabError, match="data mirror '/srv/datasets'"):
        data.load_dataset("mnist", data_dir, mirror="/srv/datasets")


def test_download_timeout_must_be_positive(tmp_path):
    with pytest.raises(ActlabError, match="timeout must be a positive number of seconds, got 0"):
        data.fetch("mnist", tmp_path / "cache", mirrors=("http://127.0.0.1:9/",), timeout=0)
