"""The bad-input corpus: every kind of bad or unusual input (generated here, never committed),
through the entry point with its default tracker (inference.DEFAULT_TRACKER).

For each kind: the exit code (0, 1 bad input or output, 2 usage); a failure is exactly one
`error:` line naming the file and the problem, with no file written; a success is a valid
output.mha (every frame non-empty, uint8 0/1, the input's size and geometry), every stderr line
one `warning:` line, and the expected warnings among them. Nothing is left behind beside the
output and the input is never modified. docs/bad-input.md is the same table in words.

Kept fast: frames are 32 x 32 with 4 frames, XMem runs at a 32-pixel crop in eager mode (the
frozen graphs would be traced anew for every kind) on a network built once for the module, and
the kinds that reach the tracker share a few inputs; the kinds that fail while reading cost
nothing.
"""

from __future__ import annotations

import functools
import json
import re
import shutil
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk
from conftest import OUTPUT_RELATIVE, make_read_only, mount_full_tmpfs, run_inference, snapshot_tree

import inference
from model.io import read_case
from model.weights import PROJECT_WEIGHTS_WARNING

TRACKER = inference.DEFAULT_TRACKER
FAST_SETTINGS = {"xmem": ["--crop-size", "32", "--no-frozen-graphs"]}.get(TRACKER, [])
SHAPE, N_FRAMES = (32, 32), 4
SERIES = Path("images/mri-linacs/case_frames.mha")
TARGET = Path("images/mri-linac-target/case_first_label.mha")


def _good_sequence() -> tuple[np.ndarray, np.ndarray]:
    """A bright disc moving one pixel per frame over noise, and its first mask."""
    rng = np.random.default_rng(0)
    rows, cols = np.mgrid[: SHAPE[0], : SHAPE[1]]
    frames = rng.normal(50.0, 5.0, (*SHAPE, N_FRAMES)).astype(np.float32)
    for t in range(N_FRAMES):
        frames[:, :, t] += 150.0 * (((rows - 14 - t) ** 2 + (cols - 15) ** 2) <= 25)
    mask = (((rows - 14) ** 2 + (cols - 15) ** 2) <= 25).astype(np.uint8)[:, :, None]
    return frames, mask


def _write(
    path: Path, array: np.ndarray, spacing=(1.0, 1.0, 1.0), origin=(0.0, 0.0, 0.0), direction=None, vector: bool = False
) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    image = sitk.GetImageFromArray(array, isVector=vector)
    if image.GetDimension() == 3:
        image.SetSpacing(spacing)
        image.SetOrigin(origin)
        if direction is not None:
            image.SetDirection(direction)
    sitk.WriteImage(image, str(path), useCompression=True)


def _build(root: Path, frames: np.ndarray | None = None, mask: np.ndarray | None = None, **geometry: object) -> None:
    good_frames, good_mask = _good_sequence()
    _write(root / SERIES, good_frames if frames is None else frames, **geometry)
    _write(root / TARGET, good_mask if mask is None else mask, **geometry)
    for name, value in {"frame-rate.json": 4.0, "b-field-strength.json": 1.5, "scanned-region.json": "abdomen"}.items():
        (root / name).write_text(json.dumps(value))


def _frames(change: Callable[[np.ndarray], np.ndarray]) -> Callable[[Path], None]:
    """A kind whose sequence is `change` of the good one."""
    return lambda root: _build(root, frames=change(_good_sequence()[0]))


def _mask(array: np.ndarray) -> Callable[[Path], None]:
    return lambda root: _build(root, mask=array)


def _json(name: str, text: str | bytes) -> Callable[[Path], None]:
    def build(root: Path) -> None:
        _build(root)
        (root / name).write_bytes(text if isinstance(text, bytes) else text.encode())

    return build


def _then(*steps: Callable[[Path], None]) -> Callable[[Path], None]:
    """The good input, then each step on it."""

    def build(root: Path) -> None:
        _build(root)
        for step in steps:
            step(root)

    return build


def _header(old: bytes, new: bytes, image: Path = SERIES) -> Callable[[Path], None]:
    def step(root: Path) -> None:
        data = (root / image).read_bytes()
        assert old in data
        (root / image).write_bytes(data.replace(old, new, 1))

    return step


def _short_stream(root: Path) -> None:
    """The sequence's zlib stream complete, but holding only half the pixels."""
    frames, _ = _good_sequence()
    data = (root / SERIES).read_bytes()
    split = data.index(b"ElementDataFile = LOCAL\n") + len(b"ElementDataFile = LOCAL\n")
    stream = zlib.compress(frames.tobytes()[: frames.nbytes // 2])
    header = re.sub(rb"CompressedDataSize = \d+", b"CompressedDataSize = %d" % len(stream), data[:split])
    (root / SERIES).write_bytes(header + stream)


def _rename_series(name: str) -> Callable[[Path], None]:
    return lambda root: (root / SERIES).rename((root / SERIES).with_name(name))


@dataclass(frozen=True)
class Kind:
    build: Callable[[Path], None]  # writes the input folder (grand-challenge layout) at root
    exit: int = 0
    says: tuple[str, ...] = ()  # in the error line, or each in one warning line
    options: tuple[str, ...] = ()  # more entry-point options; {tmp} is the test's folder


def _negate_spacing(root: Path) -> None:
    _header(b"ElementSpacing = 1 1 1", b"ElementSpacing = 1 -1 1")(root)


def _write_mask(array: np.ndarray) -> Callable[[Path], None]:
    return lambda root: _write(root / TARGET, array)


def _pixel_faults(frames: np.ndarray) -> np.ndarray:
    """Values near the float32 maximum, NaN and Inf on frame 3, frames 1 and 2 blank."""
    frames = (frames / frames.max() * 3.3e38).astype(np.float32)
    frames[0:3, 0, 3], frames[5, 5, 3] = np.nan, np.inf
    frames[:, :, 1:3] = 7.0
    return frames


def _tiny_frames(side: int) -> np.ndarray:
    """int16 frames of `side` x `side` pixels cut from the good sequence around its disc: textured,
    so that the optical flow has something to follow (DIS needs 12 px a side unless padded)."""
    return np.round(_good_sequence()[0][9 : 9 + side, 10 : 10 + side]).astype(np.int16)


# Kinds that reach the tracker share one input per group (the tracker is the slow part);
# the kinds that fail while reading are one case each.
CORPUS: dict[str, Kind] = {
    # --- files and folders ---------------------------------------------------------------------
    "image folder missing": Kind(
        _then(lambda r: shutil.rmtree(r / SERIES.parent)), 1, ("mri-linacs: image folder missing",)
    ),
    "image folder empty": Kind(_then(lambda r: (r / SERIES).unlink()), 1, ("mri-linacs: no image found",)),
    "two candidate images": Kind(
        _then(lambda r: shutil.copy(r / SERIES, r / SERIES.with_name("b.mha"))), 1, ("2 candidate images",)
    ),
    "mask folder missing": Kind(
        _then(lambda r: shutil.rmtree(r / TARGET.parent)), 1, ("mri-linac-target: image folder missing",)
    ),
    "TIFF-suffixed MetaImage": Kind(_then(_rename_series("case.tif")), 1, ("case.tif: unreadable",)),
    "empty image file": Kind(
        _then(lambda r: (r / SERIES).write_bytes(b"")), 1, ("case_frames.mha: unreadable or truncated image file",)
    ),
    "garbage image file": Kind(
        _then(lambda r: (r / SERIES).write_text("not an image\n")),
        1,
        ("case_frames.mha: unreadable or truncated image file",),
    ),
    "truncated image file": Kind(
        _then(lambda r: (r / SERIES).write_bytes((r / SERIES).read_bytes()[:-40])),
        1,
        ("case_frames.mha: unreadable or truncated image file",),
    ),
    "complete but short zlib stream": Kind(_then(_short_stream), 1, ("case_frames.mha: truncated image data",)),
    # --- dimensions, pixel types, geometry, the first mask -------------------------------------
    "2-D sequence": Kind(lambda r: _build(r, frames=np.zeros(SHAPE, np.float32)), 1, ("must be 3-D",)),
    "4-D sequence": Kind(lambda r: _build(r, frames=np.zeros((2, *SHAPE, N_FRAMES), np.float32)), 1, ("must be 3-D",)),
    "vector pixels": Kind(
        _then(lambda r: _write(r / SERIES, np.zeros((*SHAPE, N_FRAMES, 3), np.float32), vector=True)),
        1,
        ("expected a scalar image, got vector pixels",),
    ),
    "zero pixel spacing": Kind(
        _then(_header(b"ElementSpacing = 1 1 1", b"ElementSpacing = 1 0 1")),
        1,
        ("case_frames.mha: zero pixel spacing (ElementSpacing = 1 0 1)",),
    ),
    "empty mask": Kind(_mask(np.zeros((*SHAPE, 1), np.uint8)), 1, ("case_first_label.mha: mask is empty",)),
    "mask with NaN": Kind(
        _mask(np.where(_good_sequence()[1] > 0, np.nan, 0).astype(np.float32)),
        1,
        ("case_first_label.mha: mask contains NaN/Inf",),
    ),
    "mask of another size": Kind(
        _mask(np.ones((20, 32, 1), np.uint8)), 1, ("mask frame size (20, 32) differs from the sequence's (32, 32)",)
    ),
    "mask with two frames": Kind(_mask(np.ones((*SHAPE, 2), np.uint8)), 1, ("exactly one frame, got 2",)),
    "2-D mask": Kind(_mask(np.ones(SHAPE, np.uint8)), 1, ("mask must be 3-D with one frame, got 2-D",)),
    "garbage mask file": Kind(_then(lambda r: (r / TARGET).write_text("x")), 1, ("case_first_label.mha: unreadable",)),
    # --- the JSON files ------------------------------------------------------------------------
    "JSON not valid": Kind(_json("frame-rate.json", "{8"), 1, ("frame-rate.json: not valid JSON",)),
    "JSON file empty": Kind(_json("frame-rate.json", ""), 1, ("frame-rate.json: not valid JSON",)),
    "JSON not UTF-8": Kind(_json("scanned-region.json", b'"\xff\xfe"'), 1, ("scanned-region.json: not valid JSON",)),
    "JSON of the wrong type": Kind(
        _json("b-field-strength.json", "true"), 1, ("b-field-strength.json: expected a JSON number, got bool",)
    ),
    "frame rate as a string": Kind(
        _json("frame-rate.json", '"8"'), 1, ("frame-rate.json: expected a JSON number, got str",)
    ),
    "scanned region as a number": Kind(
        _json("scanned-region.json", "3"), 1, ("scanned-region.json: expected a non-empty JSON string",)
    ),
    "negative frame rate": Kind(_json("frame-rate.json", "-2"), 1, ("expected a positive number, got -2",)),
    "NaN frame rate": Kind(_json("frame-rate.json", "NaN"), 1, ("expected a positive number, got nan",)),
    "frame rate beyond a float": Kind(_json("frame-rate.json", "9" * 400), 1, ("number out of range",)),
    # --- options and places to write -----------------------------------------------------------
    "output folder under a file": Kind(_build, 1, ("output folder not writable",), ("--output", "{tmp}/file/out")),
    "report folder under a file": Kind(
        _build, 1, ("run.json: cannot create the report folder",), ("--report", "{tmp}/file/run.json")
    ),
    "overlay folder under a file": Kind(
        _build, 1, ("run.gif: cannot create the overlay folder",), ("--overlay", "{tmp}/file/run.gif")
    ),
    "overlay of another format": Kind(_build, 2, ("must end in .gif or .mp4",), ("--overlay", "{tmp}/o.avi")),
    "weights given": Kind(
        _build,
        *(
            (1, ("missing.pth (from --weights) does not exist",))
            if TRACKER == "xmem"
            else (2, ("--weights is a setting of the xmem tracker",))
        ),
        ("--weights", "{tmp}/missing.pth"),
    ),
    # --- accepted, with a warning where something was changed or guessed ----------------------
    "upper-case suffix, extra files, negative spacing, mask 0/255, JSON with a BOM, "
    "frame rate 1e6, field strength 30 T": Kind(
        _then(
            _negate_spacing,
            _rename_series("IMAGE.MHA"),
            _write_mask(_good_sequence()[1] * 255),
            _header(b"ElementSpacing = 1 1 1", b"ElementSpacing = 1 -1 1", TARGET),  # the same geometry
            lambda r: (r / SERIES.parent / "notes.txt").write_text("x"),
            lambda r: (r / "extra.json").write_text("{}"),
            lambda r: (r / "scanned-region.json").write_bytes(b'\xef\xbb\xbf"thorax"'),
            lambda r: (r / "frame-rate.json").write_text("1e6"),
            lambda r: (r / "b-field-strength.json").write_text("30"),
        ),
        0,
        (
            "IMAGE.MHA: negative pixel spacing (ElementSpacing = 1 -1 1) read as 1 1 1",
            "case_first_label.mha: negative pixel spacing (ElementSpacing = 1 -1 1) read as 1 1 1",
            "binarised as value > 0",
            "1e+06 frames/s is outside the plausible 0.1-100 frames/s; using 100",
            "30 T is outside the plausible 0.1-10 T; using 10",
        ),
    ),
    "first mask with another origin, twice the spacing and flipped axes": Kind(
        _then(
            lambda r: _write(
                r / TARGET,
                _good_sequence()[1],
                spacing=(1.0, 2.0, 2.0),
                origin=(0.0, 25.0, 0.0),
                direction=(1, 0, 0, 0, -1, 0, 0, 0, -1),
            )
        ),
        0,
        (
            "the mask's geometry differs from the sequence's (spacing 2 x 2 mm against 1 x 1 mm; "
            "direction 1 0 0 0 -1 0 0 0 -1; origin shifted by 25, 0 mm in the frame plane); "
            "the mask is taken pixel for pixel on the sequence's grid",
        ),
    ),
    "values near the float32 maximum, NaN and Inf pixels, blank frames": Kind(
        _frames(_pixel_faults), 0, ("4 NaN/Inf pixels replaced by finite values", "2 of 4 frames have no signal")
    ),
    "0.001 mm pixels, rotated axes, far origin, non-square frames, uint16 pixels": Kind(
        lambda r: _build(
            r,
            frames=(_good_sequence()[0][:, :20] * 10).astype(np.uint16),
            mask=_good_sequence()[1][:, :20],
            spacing=(0.2, 0.001, 0.001),
            origin=(1e4, -3e3, 55.5),
            direction=(0, 1, 0, 1, 0, 0, 0, 0, -1),
        )
    ),
    "tiny frames (3 x 3) of negative int16 pixels": Kind(
        lambda r: _build(
            r, frames=_tiny_frames(3) - 1000, mask=np.pad(np.ones((1, 1, 1), np.uint8), ((1, 1), (1, 1), (0, 0)))
        )
    ),
    "tiny frames (11 x 11)": Kind(lambda r: _build(r, frames=_tiny_frames(11), mask=_good_sequence()[1][9:20, 10:21])),
    "large frames (1024 x 768)": Kind(
        lambda r: _build(
            r,
            frames=np.pad(_good_sequence()[0], ((0, 992), (0, 736), (0, 0)), mode="edge"),
            mask=np.pad(_good_sequence()[1], ((0, 992), (0, 736), (0, 0))),
        )
    ),
    "one frame, JSON files missing": Kind(
        _then(
            lambda r: _write(r / SERIES, _good_sequence()[0][:, :, :1]),
            *(
                lambda r, n=n: (r / n).unlink()
                for n in ("frame-rate.json", "b-field-strength.json", "scanned-region.json")
            ),
        ),
        0,
        (
            "frame-rate.json: missing, using default 4.0",
            "b-field-strength.json: missing, using default 1.5",
            "scanned-region.json: missing, using default 'abdomen'",
        ),
    ),
    "all pixels NaN, unknown scanned region": Kind(
        _then(
            lambda r: _write(r / SERIES, np.full((*SHAPE, N_FRAMES), np.nan, np.float32)),
            lambda r: (r / "scanned-region.json").write_text('"knee"'),
        ),
        0,
        (f"{SHAPE[0] * SHAPE[1] * N_FRAMES} NaN/Inf pixels", "4 of 4 frames have no signal"),
    ),
}


@pytest.fixture(scope="module", autouse=True)
def _network_built_once() -> Iterator[None]:
    """XMem's weights are read and its network built once for the corpus instead of once per
    case (seconds each): every case still builds its own tracker around that network and runs
    it. A weights path that does not load still fails every time (errors are not cached).
    One torch thread: on 32 x 32 crops there is nothing to share, and on a busy machine the
    threads' barriers cost seconds per frame."""
    if TRACKER != "xmem":
        yield
        return
    import torch

    import model.trackers.xmem as xmem

    networks: dict[tuple, object] = {}
    real_load_network = xmem.load_network

    def load_network_once(state_dict: dict, **options: object) -> object:
        key = (id(state_dict), repr(sorted(options.items())))
        if key not in networks:
            networks[key] = real_load_network(state_dict, **options)
        return networks[key]

    threads = torch.get_num_threads()
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(xmem, "load_weights", functools.cache(xmem.load_weights))
        patch.setattr(xmem, "load_network", load_network_once)
        patch.setenv("OMP_NUM_THREADS", "1")  # InferenceCore leaves torch's thread count alone
        torch.set_num_threads(1)
        try:
            yield
        finally:
            torch.set_num_threads(threads)


@pytest.mark.parametrize("name", CORPUS)
def test_corpus(name: str, tmp_path: Path, run_main: Callable) -> None:
    kind = CORPUS[name]
    root, out = tmp_path / "input", tmp_path / "out"
    (tmp_path / "file").write_text("a file where a folder is expected")
    kind.build(root)
    snapshot = make_read_only(root)
    options = [option.format(tmp=tmp_path) for option in kind.options]
    done = run_main("--input", root, "--output", out, *options, *FAST_SETTINGS)
    code, lines = done.returncode, done.stderr.strip().splitlines()

    assert code == kind.exit, lines
    if code == 0:
        _assert_valid_output(out, root)
        assert all(line.startswith("warning: ") for line in lines), lines
        expected = (*kind.says, PROJECT_WEIGHTS_WARNING)
        assert all(any(fragment in line for fragment in expected) for line in lines), lines
        for fragment in kind.says:
            assert sum(fragment in line for line in lines) == 1, (fragment, lines)
        assert [p.name for p in out.rglob("*") if p.is_file()] == ["output.mha"]
    elif code == 1:
        assert len(lines) == 1 and lines[0].startswith("error: "), lines
        assert all(fragment in lines[0] for fragment in kind.says), lines
        assert not out.exists(), "a failed run leaves no folder behind"
    else:
        assert kind.says[0] in lines[-1] and not out.exists(), lines
    assert snapshot_tree(root) == snapshot
    assert sorted(p.name for p in tmp_path.iterdir()) <= ["file", "input", "out"]


def _assert_valid_output(out: Path, root: Path) -> None:
    case = read_case(root)
    image = sitk.ReadImage(str(out / OUTPUT_RELATIVE))
    masks = sitk.GetArrayFromImage(image)
    assert masks.dtype == np.uint8 and masks.shape == case.frames.shape
    assert set(np.unique(masks)) <= {0, 1}
    assert masks.reshape(-1, masks.shape[2]).any(axis=0).all(), "an empty output frame"
    assert image.GetSpacing() == pytest.approx(case.spacing) and image.GetOrigin() == pytest.approx(case.origin)
    assert image.GetDirection() == pytest.approx(case.direction)
    assert (out / OUTPUT_RELATIVE).stat().st_mode & 0o777 == 0o644


def test_corpus_full_disk(tmp_path: Path, run_main: Callable) -> None:
    """A full disk under the output folder: a real one where a tmpfs can be mounted (in this
    process), else one file-size limit for the whole run (a separate process)."""
    root = tmp_path / "input"
    _build(root)
    full = tmp_path / "full"
    with mount_full_tmpfs(full) as mounted:
        out = full / "out"
        if mounted:
            done = run_main("--input", root, "--output", out, *FAST_SETTINGS)
        else:
            done = run_inference("--input", root, "--output", out, *FAST_SETTINGS, max_file_bytes=0)
        code, lines = done.returncode, done.stderr.strip().splitlines()
        # The tracker ran before the write failed: its warnings (e.g. which weights) may come
        # first; the failure itself is exactly one error line.
        errors = [line for line in lines if not line.startswith("warning: ")]
        assert code == 1 and len(errors) == 1, lines
        assert errors[0].startswith(f"error: {out / OUTPUT_RELATIVE}: cannot write"), lines
        assert [p for p in out.rglob("*") if p.is_file()] == []
