"""Shared helpers: tiny synthetic cases on disk, read-only inputs, the entry point as a process
or in this one."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import resource
import stat
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

REPO = Path(__file__).resolve().parent.parent
EXAMPLE_CASE = REPO / "resources" / "example" / "Z_001"
OUTPUT_RELATIVE = Path("images/mri-linac-series-targets/output.mha")


def write_mha(path: Path, array: np.ndarray, spacing=(1.0, 1.0, 1.0), origin=(0.0, 0.0, 0.0)) -> Path:
    """Write a numpy array (W, H, T) as SimpleITK would hand it back."""
    path.parent.mkdir(parents=True, exist_ok=True)
    image = sitk.GetImageFromArray(array)
    if image.GetDimension() == 3:
        image.SetSpacing(spacing)
        image.SetOrigin(origin)
    sitk.WriteImage(image, str(path), useCompression=True)
    return path


def square_sequence(shape=(24, 32), n_frames=5, size=6, step=(1, 0)) -> tuple[np.ndarray, np.ndarray]:
    """Frames (W, H, T) float32 with a bright moving square, and its true masks (uint8)."""
    frames = np.zeros((*shape, n_frames), dtype=np.float32)
    masks = np.zeros((*shape, n_frames), dtype=np.uint8)
    for t in range(n_frames):
        r, c = 4 + step[0] * t, 5 + step[1] * t
        masks[r : r + size, c : c + size, t] = 1
    frames += masks * 100.0
    return frames, masks


@pytest.fixture
def make_input(tmp_path: Path) -> Callable[..., Path]:
    """Build a grand-challenge /input folder; keyword arguments override its parts."""

    def build(
        frames: np.ndarray | None = None,
        mask: np.ndarray | None = None,
        spacing=(1.0, 1.0, 1.0),
        origin=(0.0, 0.0, 0.0),
        json_values: dict[str, object] | None = None,
    ) -> Path:
        root = tmp_path / "input"
        if frames is None:
            frames, masks = square_sequence()
            mask = masks[:, :, :1] if mask is None else mask
        write_mha(root / "images/mri-linacs/case_frames.mha", frames, spacing, origin)
        write_mha(root / "images/mri-linac-target/case_first_label.mha", mask, spacing, origin)
        values = {"frame-rate.json": 8.0, "b-field-strength.json": 1.5, "scanned-region.json": "abdomen"}
        values.update(json_values or {})
        for name, value in values.items():
            (root / name).write_text(json.dumps(value))
        return root

    return build


def make_read_only(root: Path) -> dict[str, str]:
    """chmod a-w the whole tree (as grand-challenge mounts inputs); return a content snapshot."""
    snapshot = snapshot_tree(root)
    for path in [root, *root.rglob("*")]:
        path.chmod(path.stat().st_mode & ~(stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH))
    return snapshot


def snapshot_tree(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def run_inference(
    *args: str | Path, timeout: float = 300, max_file_bytes: int | None = None, umask: int | None = None
) -> subprocess.CompletedProcess:
    """The entry point as a separate process, from the repository root.

    `max_file_bytes` caps the size of every file the process writes (RLIMIT_FSIZE: writes
    beyond it fail with EFBIG, as on a full disk, and Python ignores the SIGXFSZ signal);
    `umask` is the process's umask."""

    def limit() -> None:
        if max_file_bytes is not None:
            resource.setrlimit(resource.RLIMIT_FSIZE, (max_file_bytes, max_file_bytes))
        if umask is not None:
            os.umask(umask)

    return subprocess.run(
        [sys.executable, str(REPO / "inference.py"), *map(str, args)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=timeout,
        preexec_fn=limit,
    )


# The entry point in a process of its own under an audit hook that lists every file it imports
# or opens; the list goes to the file named by the first argument, while the exit status, stdout
# and stderr stay the entry point's own.
_TRACER = """
import json, runpy, sys
opened = set()
sys.addaudithook(lambda event, args: opened.add(str(args[0])) if event == "open" else None)
listing, sys.argv = sys.argv[1], ["inference.py", *json.loads(sys.argv[2])]
code = 0
try:
    runpy.run_path("inference.py", run_name="__main__")
except SystemExit as done:
    code = done.code
files = opened | {getattr(m, "__file__", None) or "" for m in list(sys.modules.values())}
with open(listing, "w") as handle:
    handle.write("\\n".join(sorted(files)))
sys.exit(code)
"""


@dataclass
class TracedRun:
    done: subprocess.CompletedProcess
    files: list[str]  # every file the run imported or opened, as the process named it


def run_traced(*args: str | Path, listing: Path, timeout: float = 600) -> TracedRun:
    """run_inference's process, traced (_TRACER); `listing` receives the list of files."""
    done = subprocess.run(
        [sys.executable, "-c", _TRACER, str(listing), json.dumps([str(arg) for arg in args])],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    files = listing.read_text().splitlines() if listing.exists() else []
    return TracedRun(done, files)


# The README's first command, less its --output: the example case with every default (XMem, the
# project's weights where the official ones are absent, the default grid and graphs).
README_COMMAND = ("--case", "resources/example/Z_001")


@pytest.fixture(scope="session")
def readme_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[TracedRun, Path, Path]:
    """The README's first command with a --report, run once for the session (a whole XMem run on
    the example case, seconds) and traced: (the run, its --output folder, its report).
    test_inference.py checks what it did; test_dockerfile.py what it used, as the image's smoke
    test is the same command."""
    folder = tmp_path_factory.mktemp("readme-run")
    out, report = folder / "out", folder / "report.json"
    traced = run_traced(*README_COMMAND, "--output", out, "--report", report, listing=folder / "files.txt")
    return traced, out, report


@pytest.fixture
def run_main(capfd: pytest.CaptureFixture) -> Callable[..., subprocess.CompletedProcess]:
    """The entry point's main() in this process, reported as run_inference reports a process:
    the exit status (argparse's usage exits included) and what was printed. It saves each run
    the interpreter's start and its imports (about 2 s); what only a separate process shows
    (the interpreter's own exit, a file-size limit, the umask) stays with run_inference."""
    import inference

    def run(*args: str | Path) -> subprocess.CompletedProcess:
        argv = [str(arg) for arg in args]
        capfd.readouterr()  # drop what the test printed before
        try:
            code = inference.main(argv)
        except SystemExit as stopped:
            code = stopped.code
        printed = capfd.readouterr()
        return subprocess.CompletedProcess(argv, code, printed.out, printed.err)

    return run


def read_output(output_dir: Path) -> sitk.Image:
    return sitk.ReadImage(str(output_dir / OUTPUT_RELATIVE))


@contextlib.contextmanager
def mount_full_tmpfs(mount_point: Path) -> Iterator[bool]:
    """Mount a 64 KiB tmpfs at `mount_point` and fill it to the last byte; yields whether that
    was possible (root on a machine that allows mounts), and unmounts afterwards."""
    mount_point.mkdir(parents=True, exist_ok=True)
    try:
        mounted = (
            subprocess.run(
                ["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(mount_point)], capture_output=True
            ).returncode
            == 0
        )
    except OSError:  # no mount command
        mounted = False
    if not mounted:
        yield False
        return
    try:
        with open(mount_point / "filler", "wb", buffering=0) as filler:
            with contextlib.suppress(OSError):
                while True:
                    filler.write(b"\0" * 4096)
        yield True
    finally:
        subprocess.run(["umount", str(mount_point)], capture_output=True)


@pytest.fixture
def full_disk(tmp_path: Path) -> Iterator[Path]:
    """A folder on a full filesystem; skipped where a tmpfs cannot be mounted (the
    RLIMIT_FSIZE tests, see run_inference, cover those machines)."""
    with mount_full_tmpfs(tmp_path / "full") as mounted:
        if not mounted:
            pytest.skip("cannot mount a tmpfs here")
        yield tmp_path / "full"
