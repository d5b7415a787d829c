"""Fetch XMem weights into resources/: resumable, with a progress bar and an integrity check.

    python -m tools.download_weights [--name XMem.pth|XMem-s012.pth] [--url URL --sha256 HEX --size N]
                             [--dest resources/]

The transfer goes to `<name>.part` next to the destination; a broken transfer leaves it there
and the next run continues it with an HTTP Range request. Once complete the file is checked
against the size/sha256 known for it (RELEASES, or --size/--sha256), must load as a checkpoint,
and only then is renamed into place.
"""
from __future__ import annotations

import argparse
import hashlib
import http.client
import os
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

from model.errors import run_command
from model.weights import RESOURCES_DIR
from model.xmem.network.checkpoint import CheckpointError, load_state_dict_file

RELEASE_URL = "https://github.com/hkchengrex/XMem/releases/download/v1.0/"
CHUNK = 1 << 20


@dataclass(frozen=True)
class Expected:
    """What a complete file must look like; None = not known, report instead of check."""

    size: int | None = None
    sha256: str | None = None


# The official release files. Their exact sizes and sha256 were not available to this project
# (written without internet access), so both are unknown: the download prints the values of
# what it fetched. Fill them in here once confirmed.
RELEASES: dict[str, Expected] = {"XMem.pth": Expected(), "XMem-s012.pth": Expected()}


class DownloadError(Exception):
    """A failed download; str() is a single line meant for the user."""


class _Interrupted(Exception):
    """The connection broke mid-transfer: worth another (resumed) attempt."""


def download(
    url: str,
    dest: Path,
    expected: Expected = Expected(),
    retries: int = 3,
    progress: TextIO | None = sys.stderr,
    timeout: float = 60.0,
) -> tuple[int, str]:
    """Download `url` to `dest`; returns (size, sha256) of the verified file."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    for attempt in range(retries + 1):
        try:
            _fetch(url, part, progress, timeout)
            break
        except _Interrupted as error:
            if attempt == retries:
                raise DownloadError(
                    f"download of {url} interrupted ({error}); {part.stat().st_size} bytes kept "
                    f"in {part}: run the same command again to resume"
                ) from None
    size, sha256 = _verify(part, expected)
    os.replace(part, dest)
    return size, sha256


def _fetch(url: str, part: Path, progress: TextIO | None, timeout: float) -> None:
    """One attempt: continue `part` from its current size up to the end of the resource."""
    offset = part.stat().st_size if part.exists() else 0
    request = urllib.request.Request(url, headers={"Range": f"bytes={offset}-"} if offset else {})
    try:
        response = urllib.request.urlopen(request, timeout=timeout)
    except urllib.error.HTTPError as error:
        if error.code == 416 and offset:  # the partial file does not fit the resource: restart
            part.unlink()
            return _fetch(url, part, progress, timeout)
        raise DownloadError(f"cannot download {url}: HTTP {error.code} {error.reason}") from None
    except (urllib.error.URLError, OSError) as error:
        raise _Interrupted(f"cannot connect: {getattr(error, 'reason', error)}") from None
    with response:
        if response.status != 206:  # the server ignored the range: start from zero
            offset = 0
        length = response.headers.get("Content-Length")
        total = offset + int(length) if length is not None else None
        bar = _ProgressBar(part.name.removesuffix(".part"), total, offset, progress)
        with open(part, "ab" if offset else "wb") as out:
            try:
                while chunk := response.read(CHUNK):
                    out.write(chunk)
                    bar.advance(len(chunk))
            except (http.client.HTTPException, OSError) as error:
                raise _Interrupted(type(error).__name__) from None
            finally:
                bar.close()
        if total is not None and part.stat().st_size < total:
            raise _Interrupted(f"got {part.stat().st_size} of {total} bytes")


def _verify(part: Path, expected: Expected) -> tuple[int, str]:
    """Size and sha256 of the finished file; a mismatch or a non-checkpoint removes it."""
    size, sha256 = file_digest(part)
    problem = None
    if expected.size is not None and size != expected.size:
        problem = f"size {size} bytes, expected {expected.size}"
    elif expected.sha256 is not None and sha256 != expected.sha256.lower():
        problem = f"sha256 {sha256}, expected {expected.sha256.lower()}"
    else:
        try:
            load_state_dict_file(part)
        except CheckpointError as error:
            problem = "not a loadable checkpoint: " + " ".join(str(error).split())
    if problem:
        part.unlink()
        raise DownloadError(f"downloaded file rejected ({problem}); it was deleted")
    return size, sha256


def file_digest(path: Path) -> tuple[int, str]:
    """(size in bytes, sha256 hex) of a file, read in chunks."""
    digest = hashlib.sha256()
    size = 0
    with open(path, "rb") as handle:
        while chunk := handle.read(CHUNK):
            digest.update(chunk)
            size += len(chunk)
    return size, digest.hexdigest()


class _ProgressBar:
    """`name  42% |#####      | 104.6/249.0 MB  12.3 MB/s  ETA 12s`, redrawn at most 5×/s."""

    def __init__(self, name: str, total: int | None, done: int, stream: TextIO | None) -> None:
        self.name, self.total, self.done, self.stream = name, total, done, stream
        self.start_done, self.start = done, time.monotonic()
        self.last_draw = 0.0

    def advance(self, n: int) -> None:
        self.done += n
        if time.monotonic() - self.last_draw > 0.2:
            self._draw()

    def close(self) -> None:
        self._draw()
        if self.stream is not None:
            self.stream.write("\n")

    def _draw(self) -> None:
        if self.stream is None:
            return
        self.last_draw = time.monotonic()
        rate = (self.done - self.start_done) / max(self.last_draw - self.start, 1e-6)
        mb = f"{self.done / 1e6:.1f}"
        if self.total:
            fraction = min(self.done / self.total, 1.0)
            bar = "#" * int(30 * fraction)
            eta = (self.total - self.done) / rate if rate > 0 else float("inf")
            line = (
                f"{self.name} {100 * fraction:3.0f}% |{bar:<30}| {mb}/{self.total / 1e6:.1f} MB "
                f"{rate / 1e6:.1f} MB/s ETA {eta:.0f}s"
            )
        else:
            line = f"{self.name} {mb} MB {rate / 1e6:.1f} MB/s"
        self.stream.write("\r" + line)
        self.stream.flush()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.download_weights", description=__doc__.split("\n")[0])
    parser.add_argument("--name", choices=sorted(RELEASES), help="official release file (default XMem.pth)")
    parser.add_argument("--url", help="download this URL instead of an official release")
    parser.add_argument("--sha256", help="expected sha256 (hex) of the complete file")
    parser.add_argument("--size", type=int, help="expected size of the complete file in bytes")
    parser.add_argument("--dest", type=Path, default=RESOURCES_DIR, help="folder to save into (default resources/)")
    parser.add_argument("--retries", type=int, default=3, help="resumed attempts after a broken transfer")
    args = parser.parse_args(argv)

    name = args.name or (Path(urllib.parse.urlparse(args.url).path).name if args.url else "XMem.pth")
    url = args.url or RELEASE_URL + name
    known = RELEASES.get(name, Expected())
    expected = Expected(args.size if args.size is not None else known.size, args.sha256 or known.sha256)
    dest = args.dest / name
    if dest.exists():
        print(f"{dest} already exists; delete it to download again")
        return 0

    def body() -> None:
        size, sha256 = download(url, dest, expected, retries=args.retries)
        print(f"saved {dest}: {size} bytes, sha256 {sha256}")
        if expected.sha256 is None:
            print("no reference sha256 is known for this file: compare the value above with a trusted source")

    # A failed download, or a destination that cannot be written: one line, exit 1.
    return run_command(body, also_user_errors=(DownloadError,))


if __name__ == "__main__":
    sys.exit(main())
