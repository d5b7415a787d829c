"""Fetch XMem weights once into a cache outside the repository, check them, link them into resources/.

    python -m tools.download_weights [--name XMem.pth|XMem-s012.pth] [--dest DIR] [--cache DIR]
    python -m tools.download_weights --url URL [--sha256 HEX] [--size BYTES] [--name NAME] ...
    python -m tools.download_weights --identify FILE

The file is downloaded into the cache (--cache, else $TRACKRAD_XMEM_CACHE, else
${XDG_CACHE_HOME:-~/.cache}/trackrad-xmem), checked against the size and sha256 recorded for it
(RELEASES, or --size/--sha256), and then hard-linked (copied where a link is impossible) into
--dest (default resources/, where the weight resolution looks). A cached file that still matches
is reused without a download. The transfer shows progress, goes to `<name>.part` in the cache
and resumes with an HTTP Range request when interrupted. A file whose size or sha256 differs is
deleted, never kept. Only XMem.pth has a recorded digest: none is published for XMem-s012.pth,
so that file (like any --url without --sha256) is checked by loading it as a checkpoint instead,
and its digest is printed for you to compare with a trusted source.
"""

from __future__ import annotations

import argparse
import hashlib
import http.client
import os
import shutil
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Mapping
from pathlib import Path
from typing import TextIO

from model.releases import CHUNK, RELEASE_URL, RELEASES, Expected, file_digest, release_of

CACHE_ENV_VAR = "TRACKRAD_XMEM_CACHE"


class DownloadError(Exception):
    """A failed download or check; str() is a single line meant for the user."""


class _Interrupted(Exception):
    """The connection failed or broke mid-transfer: worth another (resumed) attempt."""


def default_cache_dir(environ: Mapping[str, str] | None = None) -> Path:
    """$TRACKRAD_XMEM_CACHE, else ${XDG_CACHE_HOME:-~/.cache}/trackrad-xmem."""
    environ = os.environ if environ is None else environ
    if environ.get(CACHE_ENV_VAR):
        return Path(environ[CACHE_ENV_VAR]).expanduser()
    base = Path(environ["XDG_CACHE_HOME"]) if environ.get("XDG_CACHE_HOME") else Path.home() / ".cache"
    return base / "trackrad-xmem"


def cached_download(
    url: str,
    name: str,
    expected: Expected,
    cache_dir: Path,
    retries: int = 3,
    progress: TextIO | None = sys.stderr,
) -> tuple[Path, bool]:
    """The cached, checked file for `url` (downloaded unless a matching copy is cached) and
    whether it came from the cache. A cached copy that no longer matches is replaced."""
    # Official releases keep their plain names; any other URL gets its own folder, so two URLs
    # that end in the same file name never share a cache entry.
    folder = cache_dir if url == RELEASE_URL + name else cache_dir / hashlib.sha256(url.encode()).hexdigest()[:16]
    cached = folder / name
    if cached.is_file():
        if mismatch(cached, expected) is None:
            return cached, True
        cached.unlink()
    download(url, cached, expected, retries, progress)
    return cached, False


def download(
    url: str,
    dest: Path,
    expected: Expected = Expected(),
    retries: int = 3,
    progress: TextIO | None = sys.stderr,
    timeout: float = 60.0,
) -> tuple[int, str]:
    """Download `url` to `dest`; returns (size, sha256) of the checked file."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    for attempt in range(retries + 1):
        try:
            _fetch(url, part, progress, timeout)
            break
        except _Interrupted as error:
            if attempt < retries:
                continue
            if part.exists() and part.stat().st_size:
                raise DownloadError(
                    f"download of {url} interrupted ({error}); {part.stat().st_size} bytes kept "
                    f"in {part}: run the same command again to resume"
                ) from None
            raise DownloadError(f"cannot download {url} ({error})") from None
    problem = mismatch(part, expected)
    if problem:
        part.unlink()
        raise DownloadError(f"downloaded file rejected ({problem}); it was deleted")
    os.replace(part, dest)
    return file_digest(dest)


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


def mismatch(path: Path, expected: Expected) -> str | None:
    """Why `path` is not the expected file, or None when it is.

    With a known sha256 the digest decides. Without one the file must at least load as a
    checkpoint; torch is imported only then, so fetching and checking the official file (what
    build.sh does) needs nothing beyond Python's standard library."""
    size, sha256 = file_digest(path)
    if expected.size is not None and size != expected.size:
        return f"size {size} bytes, expected {expected.size}"
    if expected.sha256 is not None:
        if sha256 != expected.sha256.lower():
            return f"sha256 {sha256}, expected {expected.sha256.lower()}"
        return None
    from model.xmem.network.checkpoint import CheckpointError, load_state_dict_file

    try:
        load_state_dict_file(path)
    except CheckpointError as error:
        return "not a loadable checkpoint: " + " ".join(str(error).split())
    return None


def install(cached: Path, target: Path) -> None:
    """Put the cached file at `target`: a hard link (no second copy on disk), else a copy."""
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.link(cached, target)
    except OSError:  # another file system, or one without hard links
        partial = target.with_name(target.name + ".part")
        shutil.copyfile(cached, partial)
        os.replace(partial, target)


def describe(path: Path, expected: Expected) -> str:
    """`path: N bytes, sha256 HEX, <what it is>`: the line printed for a file in place."""
    size, sha256 = file_digest(path)
    release = release_of(sha256)
    if release:
        what = f"the official {release} (size and sha256 checked)"
    elif expected.sha256:
        what = "size and sha256 as given"
    else:
        what = "no reference sha256 known: compare it with a trusted source"
    return f"{path}: {size} bytes, sha256 {sha256}, {what}"


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


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m tools.download_weights",
        description=__doc__.split("\n")[0],
        epilog="Progress and results go to stdout, errors (one line) to stderr.",
    )
    parser.add_argument(
        "--name",
        help="file name: one of the official releases, XMem.pth (default; size and sha256 recorded) "
        "or XMem-s012.pth (no digest is published: checked by loading it); with --url, the "
        "name to save it under (default: the URL's last part)",
    )
    parser.add_argument("--url", help="download this URL instead of the official release")
    parser.add_argument("--sha256", help="expected sha256 (hex) of the complete file")
    parser.add_argument("--size", type=int, help="expected size of the complete file in bytes")
    parser.add_argument("--dest", type=Path, help="folder the checked file is linked into (default resources/)")
    parser.add_argument(
        "--cache",
        type=Path,
        help=f"download cache (default ${CACHE_ENV_VAR}, else ${{XDG_CACHE_HOME:-~/.cache}}/trackrad-xmem)",
    )
    parser.add_argument("--retries", type=int, default=3, help="resumed attempts after a broken transfer")
    parser.add_argument(
        "--identify",
        type=Path,
        metavar="FILE",
        help="print FILE's sha256, its size and the official release it is ('-' if "
        "none), separated by spaces, and exit (for scripts)",
    )
    args = parser.parse_args(argv)
    if args.name is None:
        args.name = Path(urllib.parse.urlparse(args.url).path).name if args.url else "XMem.pth"
    if not args.url and args.name not in RELEASES:
        parser.error(f"--name {args.name}: not an official release ({', '.join(RELEASES)}); give --url")
    if not args.name or Path(args.name).name != args.name:
        parser.error(f"--name {args.name!r}: give a plain file name")
    return args


def main(argv: list[str] | None = None) -> int:
    args = _parse_args(argv)
    try:
        if args.identify is not None:
            size, sha256 = file_digest(args.identify)
            print(sha256, size, release_of(sha256) or "-")
            return 0
        return _fetch_and_install(args)
    except DownloadError as error:
        print(f"error: {error}", file=sys.stderr)
    except OSError as error:
        print(f"error: {error.filename or ''}: {error.strerror or error}", file=sys.stderr)
    return 1


def _fetch_and_install(args: argparse.Namespace) -> int:
    known = RELEASES.get(args.name, Expected())
    expected = Expected(args.size if args.size is not None else known.size, args.sha256 or known.sha256)
    if args.dest is None:  # imported here: model.weights needs torch, a cached official file does not
        from model.weights import RESOURCES_DIR

        args.dest = RESOURCES_DIR
    target = args.dest / args.name
    if target.exists():
        if expected.sha256 is None:
            print(f"{target} already exists; delete it to download again")
        elif problem := mismatch(target, expected):
            raise DownloadError(f"{target} exists but is not the expected file ({problem}); move it away and run again")
        print(describe(target, expected))
        return 0
    url = args.url or RELEASE_URL + args.name
    # stdout carries the progress, stderr only the error line, so a calling script (build.sh)
    # can show the progress and still report a failure in its own words.
    cached, reused = cached_download(
        url, args.name, expected, args.cache or default_cache_dir(), args.retries, progress=sys.stdout
    )
    if reused:
        print(f"using the cached {cached}")
    install(cached, target)
    print(describe(target, expected))
    return 0


if __name__ == "__main__":
    sys.exit(main())
