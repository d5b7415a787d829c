"""The downloader against a loopback http.server (127.0.0.1 only)."""

import hashlib
import io
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import torch

from tools import download_weights
from tools.download_weights import DownloadError, Expected, default_cache_dir, download, main

# shutdown() waits for serve_forever's next poll: at its default of 0.5 s, half a second per test.
POLL = {"poll_interval": 0.01}


@pytest.fixture(scope="module")
def payload(tmp_path_factory) -> bytes:
    path = tmp_path_factory.mktemp("src") / "w.pth"
    torch.save({"weight": torch.arange(20000, dtype=torch.float32)}, path)
    return path.read_bytes()


@pytest.fixture()
def server(payload):
    """Serves `payload` with Range support; the first `cut` responses stop halfway and close."""
    log: list[str | None] = []
    state = {"cut": 0}

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 (http.server naming)
            files = {"/w.pth": payload, "/page.pth": b"<html>sign in</html>"}
            if self.path not in files:
                self.send_error(404)
                return
            data = files[self.path]
            rng = self.headers.get("Range")
            log.append(rng)
            start = int(rng.removeprefix("bytes=").rstrip("-")) if rng else 0
            body = data[start:]
            self.send_response(206 if rng else 200)
            if rng:
                self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if state["cut"] > 0:
                state["cut"] -= 1
                self.wfile.write(body[: len(body) // 2])
                self.wfile.flush()
                self.close_connection = True
                return
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, kwargs=POLL, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}", log, state
    httpd.shutdown()
    httpd.server_close()


def test_good_file_is_verified_and_renamed(server, payload, tmp_path):
    base, _, _ = server
    dest = tmp_path / "w.pth"
    sha = hashlib.sha256(payload).hexdigest()
    bar = io.StringIO()
    assert download(f"{base}/w.pth", dest, Expected(len(payload), sha), progress=bar) == (len(payload), sha)
    assert dest.read_bytes() == payload
    assert not (tmp_path / "w.pth.part").exists()
    assert "100%" in bar.getvalue() and "MB/s" in bar.getvalue()


def test_wrong_checksum_rejects_and_deletes(server, payload, tmp_path):
    base, _, _ = server
    with pytest.raises(DownloadError, match="sha256 .* expected 00"):
        download(f"{base}/w.pth", tmp_path / "w.pth", Expected(sha256="00" * 32), progress=None)
    assert list(tmp_path.iterdir()) == []


def test_wrong_size_rejects(server, payload, tmp_path):
    base, _, _ = server
    with pytest.raises(DownloadError, match=f"size {len(payload)} bytes, expected 5"):
        download(f"{base}/w.pth", tmp_path / "w.pth", Expected(size=5), progress=None)


def test_interrupted_transfer_keeps_part_and_next_run_resumes_with_range(server, payload, tmp_path):
    base, log, state = server
    dest = tmp_path / "w.pth"
    state["cut"] = 1
    with pytest.raises(DownloadError, match="run the same command again to resume"):
        download(f"{base}/w.pth", dest, retries=0, progress=None)
    part = tmp_path / "w.pth.part"
    half = len(payload) // 2
    assert part.read_bytes() == payload[:half]

    download(f"{base}/w.pth", dest, Expected(len(payload), hashlib.sha256(payload).hexdigest()), progress=None)
    assert log == [None, f"bytes={half}-"]
    assert dest.read_bytes() == payload


def test_retries_resume_within_one_call(server, payload, tmp_path):
    base, log, state = server
    state["cut"] = 2
    download(f"{base}/w.pth", tmp_path / "w.pth", retries=2, progress=None)
    assert (tmp_path / "w.pth").read_bytes() == payload
    assert len(log) == 3 and log[0] is None and all(r.startswith("bytes=") for r in log[1:])


def test_cli_prints_digest_when_none_is_known_and_rejects_non_checkpoints(server, payload, tmp_path, capsys):
    base, _, _ = server
    cache = ["--cache", str(tmp_path / "cache")]
    assert main(["--url", f"{base}/w.pth", "--dest", str(tmp_path), *cache]) == 0
    out = capsys.readouterr().out
    assert f"{len(payload)} bytes, sha256 {hashlib.sha256(payload).hexdigest()}" in out
    assert "no reference sha256" in out

    assert main(["--url", f"{base}/missing.pth", "--dest", str(tmp_path), *cache]) == 1
    assert "HTTP 404" in capsys.readouterr().err


def test_non_checkpoint_download_is_rejected(server, tmp_path):
    base, _, _ = server
    with pytest.raises(DownloadError, match="not a loadable checkpoint"):
        download(f"{base}/page.pth", tmp_path / "page.pth", progress=None)
    assert list(tmp_path.iterdir()) == []


OFFICIAL_SHA256 = "27776291d2f0639b4e6b372a67651579b51180aa4d8f8f89bbff2dcc09ebf6f9"


def test_the_official_checkpoint_is_recorded_and_the_variant_has_no_digest(capsys):
    assert (
        download_weights.RELEASE_URL + "XMem.pth"
        == "https://github.com/hkchengrex/XMem/releases/download/v1.0/XMem.pth"
    )
    assert download_weights.RELEASES["XMem.pth"] == Expected(249_026_057, OFFICIAL_SHA256)
    assert download_weights.RELEASES["XMem-s012.pth"] == Expected()
    assert download_weights.release_of(OFFICIAL_SHA256) == "XMem.pth"
    with pytest.raises(SystemExit):
        main(["--help"])
    assert "XMem-s012.pth (no digest is published" in " ".join(capsys.readouterr().out.split())


@pytest.fixture()
def server_with_release(payload):
    """Serves `payload` as /XMem.pth; the log lists the paths asked for."""
    log: list[str] = []

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 (http.server naming)
            log.append(self.path)
            if self.path != "/XMem.pth":
                self.send_error(404)
                return
            self.send_response(200)
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, *args):
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=httpd.serve_forever, kwargs=POLL, daemon=True).start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}", log
    httpd.shutdown()
    httpd.server_close()


@pytest.fixture()
def recorded(server_with_release, payload, monkeypatch):
    """The served file recorded as the official 'XMem.pth': the real table and checks, a small file."""
    base, log = server_with_release
    monkeypatch.setattr(download_weights, "RELEASE_URL", base + "/")
    monkeypatch.setitem(
        download_weights.RELEASES, "XMem.pth", Expected(len(payload), hashlib.sha256(payload).hexdigest())
    )
    return log


def test_official_file_goes_to_the_cache_once_and_is_linked_into_dest(recorded, payload, tmp_path, capsys):
    dest, cache = tmp_path / "resources", tmp_path / "cache"
    options = ["--dest", str(dest), "--cache", str(cache)]
    assert main(options) == 0
    out = capsys.readouterr().out
    assert "100%" in out  # progress on stdout
    assert f"{dest / 'XMem.pth'}: {len(payload)} bytes" in out and "the official XMem.pth" in out
    assert (cache / "XMem.pth").read_bytes() == payload
    assert (dest / "XMem.pth").samefile(cache / "XMem.pth")  # a hard link, not a second copy
    assert recorded == ["/XMem.pth"]

    (dest / "XMem.pth").unlink()
    assert main(options) == 0
    assert "using the cached" in capsys.readouterr().out
    assert recorded == ["/XMem.pth"] and (dest / "XMem.pth").read_bytes() == payload

    assert main(options) == 0  # already in place: checked, nothing fetched
    assert recorded == ["/XMem.pth"] and "the official XMem.pth" in capsys.readouterr().out


@pytest.mark.parametrize("wrong", ["size", "sha256"])
def test_a_file_that_differs_from_the_record_is_rejected_and_not_kept(
    recorded, payload, tmp_path, capsys, monkeypatch, wrong
):
    right = download_weights.RELEASES["XMem.pth"]
    bad = Expected(right.size + 1, right.sha256) if wrong == "size" else Expected(right.size, "ab" * 32)
    monkeypatch.setitem(download_weights.RELEASES, "XMem.pth", bad)
    assert main(["--dest", str(tmp_path / "resources"), "--cache", str(tmp_path / "cache")]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"rejected ({wrong} " in err and "it was deleted" in err
    assert [p for p in tmp_path.rglob("*") if p.is_file()] == []


def test_a_cached_file_that_no_longer_matches_is_fetched_again(recorded, payload, tmp_path, capsys):
    cache = tmp_path / "cache"
    cache.mkdir()
    (cache / "XMem.pth").write_bytes(b"truncated")
    assert main(["--dest", str(tmp_path / "resources"), "--cache", str(cache)]) == 0
    assert recorded == ["/XMem.pth"] and (cache / "XMem.pth").read_bytes() == payload


def test_a_different_file_in_dest_is_never_replaced(recorded, tmp_path, capsys):
    dest = tmp_path / "resources"
    dest.mkdir()
    (dest / "XMem.pth").write_bytes(b"someone's fine-tune")
    assert main(["--dest", str(dest), "--cache", str(tmp_path / "cache")]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "exists but is not the expected file" in err
    assert (dest / "XMem.pth").read_bytes() == b"someone's fine-tune" and recorded == []


def test_identify_names_the_official_release_by_digest(recorded, payload, tmp_path, capsys):
    ours = tmp_path / "XMem.pth"
    ours.write_bytes(payload)
    other = tmp_path / "other.pth"
    other.write_bytes(b"x")
    assert main(["--identify", str(ours)]) == 0 and main(["--identify", str(other)]) == 0
    assert capsys.readouterr().out.splitlines() == [
        f"{hashlib.sha256(payload).hexdigest()} {len(payload)} XMem.pth",
        f"{hashlib.sha256(b'x').hexdigest()} 1 -",
    ]
    assert main(["--identify", str(tmp_path / "none.pth")]) == 1
    assert capsys.readouterr().err.count("\n") == 1


def test_no_connection_is_one_line_and_leaves_nothing(tmp_path, capsys):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    url = f"http://127.0.0.1:{port}/XMem.pth"
    assert main(["--url", url, "--dest", str(tmp_path / "resources"), "--cache", str(tmp_path / "cache")]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith(f"error: cannot download {url} (cannot connect")
    assert [p for p in tmp_path.rglob("*") if p.is_file()] == []


def test_cache_folder_is_the_variable_else_under_xdg_cache_home():
    assert default_cache_dir({"TRACKRAD_XMEM_CACHE": "/c", "XDG_CACHE_HOME": "/x"}) == Path("/c")
    assert default_cache_dir({"XDG_CACHE_HOME": "/x"}).as_posix() == "/x/trackrad-xmem"
    assert default_cache_dir({}).as_posix().endswith("/.cache/trackrad-xmem")
