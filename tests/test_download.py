"""Downloads end to end, against real local HTTP servers serving the real files of shared/datasets.

Each test starts its own `http.server` mirrors on 127.0.0.1 and passes the built-in mirror list
explicitly (a dead local port where one is needed), so no test ever reaches the internet.
"""

from __future__ import annotations

import dataclasses
import hashlib
import http.server
import os
import shutil
import socket
import threading
import time
import urllib.parse
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from actlab import data
from actlab.errors import ActlabError

GZ_NAMES = sorted(f"{name}.gz" for name in data.FILES.values())
MNIST_COUNTS = [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]


@dataclass
class Mirror:
    """One local server: `url` is its base; `modes` says how it answers, per file name or "*"."""

    url: str
    modes: dict[str, str]
    requests: list[str] = field(default_factory=list)
    release: threading.Event = field(default_factory=threading.Event)


def _handler(root: Path, mirror: Mirror):
    class Handler(http.server.BaseHTTPRequestHandler):
        """Answers GET with the file under `root`, or with the fault its mode names:
        404, 500, corrupt (bytes flipped, same length), truncate (full Content-Length, half the
        body, then close) or hang (accept and say nothing until the test ends)."""

        def do_GET(self):
            mirror.requests.append(self.path)
            path = urllib.parse.urlsplit(self.path).path  # a proxy request carries the whole URL
            mode = mirror.modes.get(Path(path).name, mirror.modes.get("*", "ok"))
            file = root / path.lstrip("/")
            if mode == "hang":
                mirror.release.wait(60)
                return
            if mode in ("404", "500") or not file.is_file():
                self.send_error(500 if mode == "500" else 404)
                return
            body = bytearray(file.read_bytes())
            if mode == "corrupt":
                middle = len(body) // 2
                body[middle:middle + 64] = bytes(b ^ 0xFF for b in body[middle:middle + 64])
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body[:len(body) // 2] if mode == "truncate" else body)
            self.close_connection = True

        def log_message(self, *args):
            pass

    return Handler


@pytest.fixture
def serve(data_dir):
    """`serve(modes, root)` starts a mirror of `root` (default: the shared data folder) answering per
    `modes`: "ok", "404", "500", "corrupt", "truncate", "hang", or a dict from file name to one of
    those ("*": every other file)."""
    running = []

    def start(modes: str | dict[str, str] = "ok", root: Path | None = None) -> Mirror:
        mirror = Mirror("", {"*": modes} if isinstance(modes, str) else modes)
        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _handler(root or data_dir, mirror))
        mirror.url = f"http://127.0.0.1:{server.server_address[1]}/"
        threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
        running.append((server, mirror))
        return mirror

    yield start
    for server, mirror in running:
        mirror.release.set()
        server.shutdown()
        server.server_close()


@pytest.fixture
def dead_url() -> str:
    """A local URL nothing listens on: connections are refused at once."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}/"


@pytest.fixture(autouse=True)
def _no_proxy(monkeypatch):
    """Requests to 127.0.0.1 go straight to the test servers, whatever proxy the machine sets."""
    for name in ("http_proxy", "https_proxy", "no_proxy", "all_proxy"):
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.upper(), raising=False)


def _files_in(folder: Path) -> list[str]:
    """Every file under `folder`, temp files included."""
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file()) if folder.exists() else []


def _one_line_error(excinfo) -> str:
    message = str(excinfo.value)
    assert "\n" not in message
    assert "--data-dir" in message and "--data-mirror" in message and "ACTLAB_DATA_MIRROR" in message
    assert "actlab data fetch" in message
    return message


def test_empty_cache_downloads_verifies_and_loads_both_sets_then_uses_the_cache(serve, dead_url, tmp_path,
                                                                                 data_dir):
    good = serve()
    cache, lines = tmp_path / "cache", []
    mnist = data.load_dataset("mnist", None, cache, mirrors=(dead_url,), mirror=good.url, log=lines.append)
    fashion = data.load_dataset("fashion-mnist", None, cache, mirrors=(dead_url,), mirror=good.url.rstrip("/"),
                                log=lines.append)

    assert mnist.train.images.shape == (60000, 784) and mnist.test.images.shape == (10000, 784)
    assert mnist.train.labels.bincount().tolist() == MNIST_COUNTS
    assert mnist.train.labels[:10].tolist() == [5, 0, 4, 1, 9, 2, 1, 3, 1, 4]
    assert fashion.train.labels.bincount().tolist() == [6000] * 10 and len(fashion.test) == 10000
    assert fashion.train.labels[:10].tolist() == [9, 0, 0, 3, 0, 2, 7, 2, 5, 5]
    assert mnist.folder == cache / "mnist" and fashion.folder == cache / "fashion-mnist"
    assert _files_in(cache) == sorted([f"mnist/{n}" for n in GZ_NAMES] + [f"fashion-mnist/{n}" for n in GZ_NAMES])
    for name in ("mnist", "fashion-mnist"):  # the shared files are re-compressed: accepted by content
        for gz in GZ_NAMES:
            assert (cache / name / gz).read_bytes() == (data_dir / name / gz).read_bytes()
    assert len(good.requests) == 8
    assert len(lines) == 2 and lines[0].startswith("downloaded MNIST: 4 files, 11.4 MB in ")
    assert lines[0].endswith(f" s from {good.url}mnist/ into {cache / 'mnist'}")
    assert lines[1].startswith("downloaded Fashion-MNIST: 4 files, 30.9 MB in ")

    again = data.load_dataset("mnist", None, cache, mirrors=(dead_url,), mirror=good.url, log=lines.append)
    assert again.folder == cache / "mnist" and len(good.requests) == 8 and len(lines) == 2


def test_default_cache_is_used_and_files_follow_the_umask(serve, dead_url, tmp_path):
    good = serve()
    old = os.umask(0o027)
    try:
        ds = data.load_dataset("mnist", mirrors=(dead_url,), mirror=good.url, log=lambda line: None)
    finally:
        os.umask(old)
    assert ds.folder == tmp_path / "cache" / "actlab" / "mnist"  # conftest points XDG_CACHE_HOME there
    assert {oct((ds.folder / gz).stat().st_mode & 0o777) for gz in GZ_NAMES} == {oct(0o640)}


@pytest.mark.parametrize("fault", ["404", "500"])
def test_a_failing_mirror_falls_through_to_the_next(serve, fault, tmp_path):
    bad, good = serve(fault), serve()
    lines = []
    ds = data.load_dataset("mnist", None, tmp_path / "cache", mirrors=(good.url + "mnist",), mirror=bad.url,
                           log=lines.append)
    assert ds.train.labels.bincount().tolist() == MNIST_COUNTS
    assert bad.requests == ["/mnist/train-images-idx3-ubyte.gz"], "the mirror that worked is tried first after"
    assert len(good.requests) == 4
    assert f"from {good.url}mnist/ into" in lines[0]


@pytest.mark.parametrize("fault, reason", [
    ("corrupt", r"archive does not match its pin \(MD5 [0-9a-f]{12}…, not a readable gzip file"),
    ("truncate", r"connection closed after 4859719 of 9719438 bytes"),
])
def test_a_bad_body_is_one_error_line_leaving_nothing_and_a_rerun_completes(serve, dead_url, fault, reason,
                                                                             tmp_path):
    bad, good = serve(fault), serve()
    cache = tmp_path / "cache"
    with pytest.raises(ActlabError, match=rf"{bad.url}mnist/train-images-idx3-ubyte.gz: {reason}") as excinfo:
        data.load_dataset("mnist", None, cache, mirrors=(dead_url,), mirror=bad.url)
    message = _one_line_error(excinfo)
    assert f"{dead_url}train-images-idx3-ubyte.gz: Connection refused" in message
    assert _files_in(cache) == []

    ds = data.load_dataset("mnist", None, cache, mirrors=(dead_url,), mirror=good.url, log=lambda line: None)
    assert ds.train.labels.bincount().tolist() == MNIST_COUNTS
    assert _files_in(cache) == [f"mnist/{n}" for n in GZ_NAMES]


def test_a_valid_archive_of_other_content_fails_its_pin(serve, dead_url, tmp_path, data_dir):
    shutil.copytree(data_dir / "fashion-mnist", tmp_path / "swapped" / "mnist")  # readable, but not MNIST
    wrong = serve(root=tmp_path / "swapped")
    with pytest.raises(ActlabError, match=r"train-images-idx3-ubyte.gz: archive content does not match its pin "
                                          r"\(MD5 [0-9a-f]{12}…, content SHA-256 c59f468a2f67…\)"):
        data.fetch("mnist", tmp_path / "cache", mirrors=(dead_url,), mirror=wrong.url)
    assert _files_in(tmp_path / "cache") == []


def test_the_publishers_md5_alone_accepts_an_archive(serve, dead_url, tmp_path, data_dir, monkeypatch):
    pinned = {name: hashlib.md5((data_dir / "mnist" / f"{name}.gz").read_bytes()).hexdigest()
              for name in data.FILES.values()}
    info = dataclasses.replace(data.DATASETS["mnist"], md5_gz=pinned,
                               sha256=dict.fromkeys(data.FILES.values(), "0" * 64))
    monkeypatch.setitem(data.DATASETS, "mnist", info)
    good = serve()
    data.fetch("mnist", tmp_path / "cache", mirrors=(dead_url,), mirror=good.url, log=lambda line: None)
    assert _files_in(tmp_path / "cache") == [f"mnist/{n}" for n in GZ_NAMES]


def test_verified_files_stay_and_a_rerun_downloads_only_what_is_missing(serve, dead_url, tmp_path):
    bad, good = serve({"t10k-labels-idx1-ubyte.gz": "truncate"}), serve()
    cache = tmp_path / "cache"
    with pytest.raises(ActlabError, match="t10k-labels-idx1-ubyte.gz: connection closed after 2258 of 4517 bytes"):
        data.fetch("mnist", cache, mirrors=(dead_url,), mirror=bad.url)
    assert _files_in(cache) == [f"mnist/{n}" for n in GZ_NAMES if not n.startswith("t10k-labels")]

    lines = []
    data.fetch("mnist", cache, mirrors=(dead_url,), mirror=good.url, log=lines.append)
    assert good.requests == ["/mnist/t10k-labels-idx1-ubyte.gz"]
    assert lines[0].startswith("downloaded MNIST: 1 file, 0.0 MB in ")
    assert _files_in(cache) == [f"mnist/{n}" for n in GZ_NAMES]


def test_a_mirror_that_never_answers_times_out_in_bounded_time(serve, dead_url, tmp_path):
    silent = serve("hang")
    start = time.monotonic()
    with pytest.raises(ActlabError, match=rf"{silent.url}mnist/train-images-idx3-ubyte.gz: timed out after 1 s"
                       ) as excinfo:
        data.load_dataset("mnist", None, tmp_path / "cache", mirrors=(dead_url,), mirror=silent.url, timeout=1)
    assert time.monotonic() - start < 10
    _one_line_error(excinfo)
    assert _files_in(tmp_path / "cache") == []


def test_ctrl_c_mid_download_leaves_no_temp_file(serve, dead_url, tmp_path, monkeypatch):
    good = serve()

    def interrupted(*args):
        raise KeyboardInterrupt

    monkeypatch.setattr(data, "_archive_problem", interrupted)
    with pytest.raises(KeyboardInterrupt):
        data.fetch("mnist", tmp_path / "cache", mirrors=(dead_url,), mirror=good.url)
    assert _files_in(tmp_path / "cache") == []


def test_progress_bars_only_when_asked_and_the_final_line_always(serve, dead_url, tmp_path, capsys):
    good = serve()
    data.fetch("mnist", tmp_path / "quiet", mirrors=(dead_url,), mirror=good.url, show_progress=False)
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("downloaded MNIST: 4 files, ")  # default log: stderr

    lines = []
    data.fetch("mnist", tmp_path / "bars", mirrors=(dead_url,), mirror=good.url, show_progress=True,
               log=lines.append)
    err = capsys.readouterr().err
    assert all(f"{name}:" in err for name in GZ_NAMES) and "B/s" in err
    assert len(lines) == 1 and "MB in" in lines[0]


def test_proxy_variables_are_honoured(serve, dead_url, tmp_path, monkeypatch):
    proxy = serve()
    monkeypatch.setenv("http_proxy", proxy.url)
    data.fetch("mnist", tmp_path / "via-proxy", mirrors=(dead_url,), mirror="http://mirror.invalid/",
               log=lambda line: None)
    assert proxy.requests[0] == "http://mirror.invalid/mnist/train-images-idx3-ubyte.gz"

    direct = serve()
    monkeypatch.setenv("http_proxy", dead_url)
    monkeypatch.setenv("no_proxy", "127.0.0.1")
    data.fetch("mnist", tmp_path / "direct", mirrors=(dead_url,), mirror=direct.url, log=lambda line: None)
    assert len(direct.requests) == 4


# --- the first run on a new machine, through the command line ------------------------------------

def _first_run(monkeypatch, tmp_path, capsys, mirror_url: str, out: Path) -> tuple[int, str]:
    """`actlab run --preset mnist-classic-four --epochs 1 --train-subset 2000` with no data folder,
    an empty cache and ACTLAB_DATA_MIRROR set; returns the exit code and stderr."""
    from actlab.cli import main

    monkeypatch.delenv("ACTLAB_DATA_DIR", raising=False)
    monkeypatch.setenv("ACTLAB_DATA_MIRROR", mirror_url)
    code = main(["run", "--preset", "mnist-classic-four", "--epochs", "1", "--train-subset", "2000",
                 "--out", str(out), "--quiet"])
    return code, capsys.readouterr().err


@pytest.fixture
def offline_builtin_mirrors(monkeypatch, dead_url):
    """The publishers' mirrors replaced by a dead local port: a test never reaches the internet."""
    for name, info in data.DATASETS.items():
        monkeypatch.setitem(data.DATASETS, name, dataclasses.replace(info, mirrors=(dead_url,)))


def test_a_first_run_downloads_verifies_and_trains_then_the_cache_holds_the_four_files(
        serve, monkeypatch, tmp_path, capsys, offline_builtin_mirrors):
    good = serve()
    code, err = _first_run(monkeypatch, tmp_path, capsys, good.url, tmp_path / "run")
    assert code == 0, err
    cache = tmp_path / "cache" / "actlab"  # conftest points XDG_CACHE_HOME at tmp_path/cache
    assert _files_in(cache) == [f"mnist/{n}" for n in GZ_NAMES]
    assert (tmp_path / "run" / "report.html").is_file()
    assert "downloaded MNIST: 4 files" in err and good.url in err
    assert len(good.requests) == 4


def test_a_corrupted_mirror_stops_the_run_with_one_line_and_leaves_nothing_then_a_good_one_works(
        serve, monkeypatch, tmp_path, capsys, offline_builtin_mirrors):
    bad = serve("corrupt")
    code, err = _first_run(monkeypatch, tmp_path, capsys, bad.url, tmp_path / "run1")
    lines = [line for line in err.splitlines() if line.strip()]
    assert code == 1 and len(lines) == 1 and lines[0].startswith("actlab: error: MNIST files not found")
    assert f"{bad.url}mnist/" in lines[0] and "does not match its pin" in lines[0] and "Traceback" not in err
    assert _files_in(tmp_path / "cache") == []
    good = serve()
    code, err = _first_run(monkeypatch, tmp_path, capsys, good.url, tmp_path / "run2")
    assert code == 0, err
    assert _files_in(tmp_path / "cache" / "actlab") == [f"mnist/{n}" for n in GZ_NAMES]


def test_data_info_lists_the_mirrors_in_order(monkeypatch, capsys, tmp_path):
    from actlab.cli import main

    monkeypatch.delenv("ACTLAB_DATA_DIR", raising=False)
    monkeypatch.setenv("ACTLAB_DATA_MIRROR", "http://mirror.example:8000/datasets")
    assert main(["data", "info", "fashion-mnist"]) == 0
    out = capsys.readouterr().out
    assert ("downloads from, in order: http://mirror.example:8000/datasets/fashion-mnist/, "
            "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/") in out
    assert "not on this machine" in out and "actlab data fetch fashion-mnist" in out
    assert main(["data", "info", "mnist", "--data-mirror", "ftp://nope"]) == 1
    assert "is not an http:// or https:// base URL" in capsys.readouterr().err
