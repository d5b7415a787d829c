"""The downloader against a loopback http.server (127.0.0.1 only)."""
import hashlib
import io
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import torch

from tools.download_weights import DownloadError, Expected, download, main


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
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
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
    assert main(["--url", f"{base}/w.pth", "--dest", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert f"{len(payload)} bytes, sha256 {hashlib.sha256(payload).hexdigest()}" in out
    assert "no reference sha256" in out

    assert main(["--url", f"{base}/missing.pth", "--dest", str(tmp_path)]) == 1
    assert "HTTP 404" in capsys.readouterr().err


def test_non_checkpoint_download_is_rejected(server, tmp_path):
    base, _, _ = server
    with pytest.raises(DownloadError, match="not a loadable checkpoint"):
        download(f"{base}/page.pth", tmp_path / "page.pth", progress=None)
    assert list(tmp_path.iterdir()) == []
