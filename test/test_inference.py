"""The entry point as grand-challenge runs it: real processes, read-only inputs, bad inputs."""

import json
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk
import torch
from conftest import (
    EXAMPLE_CASE,
    OUTPUT_RELATIVE,
    README_COMMAND,
    REPO,
    make_read_only,
    read_output,
    run_inference,
    snapshot_tree,
    square_sequence,
)

import inference
from evaluation.metrics import score_sequence
from model.io import read_labels
from model.releases import file_digest
from model.trackers import SequenceInfo, Tracker
from model.trackers.registry import TRACKER_CLASSES
from model.weights import resolve_weights


def test_example_case_with_the_copy_baseline(tmp_path, run_main):
    out = tmp_path / "out"
    done = run_main("--case", EXAMPLE_CASE, "--output", out, "--tracker", "copy", "--report", tmp_path / "report.json")
    assert done.returncode == 0, done.stderr
    assert "loading:" in done.stdout and "per frame" in done.stdout and "writing:" in done.stdout
    source = sitk.ReadImage(str(EXAMPLE_CASE / "images" / "Z_001_frames.mha"))
    output = read_output(out)
    masks = sitk.GetArrayFromImage(output)
    assert masks.dtype == np.uint8 and masks.shape == (125, 125, 10)
    assert (output.GetSpacing(), output.GetOrigin(), output.GetDirection()) == (
        source.GetSpacing(),
        source.GetOrigin(),
        source.GetDirection(),
    )
    assert masks.reshape(-1, 10).sum(axis=0).min() > 0  # no empty frame
    # The copy baseline's DSC, by hand: the first label against every later label.
    truth = read_labels(EXAMPLE_CASE)
    first = truth[:, :, 0] > 0
    by_hand = np.mean(
        [2 * np.sum(first & (truth[:, :, t] > 0)) / (first.sum() + truth[:, :, t].sum()) for t in range(1, 10)]
    )
    assert score_sequence(masks, truth, "abdomen")["dsc"] == pytest.approx(by_hand)
    report = json.loads((tmp_path / "report.json").read_text())
    assert report["tracker"] == "copy" and report["n_frames"] == 10
    assert report["frame_seconds"]["count"] == 9
    assert {"loading_seconds", "writing_seconds", "settings", "events"} <= report.keys()


@pytest.mark.slow  # the README's own command: a process, the shipped weights, the default grid and graphs
def test_the_readme_command_tracks_the_example_with_xmem_and_names_the_weights(readme_run):
    # The README's first command on a fresh clone: no --tracker, no --weights, no internet. Its
    # run (conftest.readme_run, with a --report) is shared with the Dockerfile's test.
    command = " ".join(["python inference.py", *README_COMMAND, "--output"])
    assert command in (REPO / "README.md").read_text()
    assert inference.DEFAULT_TRACKER == "xmem"
    traced, out, report_path = readme_run
    done = traced.done
    assert done.returncode == 0, done.stderr
    expected, _ = resolve_weights()
    report = json.loads(report_path.read_text())
    environment = report["environment"]
    assert report["tracker"] == "xmem" and environment["weights"] == str(expected)
    assert environment["weights_sha256"] == file_digest(expected)[1]
    assert environment["device"].startswith("cpu") and environment["precision"] in ("fp32", "bf16")
    assert environment["torch"] == torch.__version__
    if environment["precision"] == "fp32":
        assert environment["network_path"] == "fp32, frozen graphs"  # the CPU's fast fp32 path
    # The example's window is 121 frame pixels: twice that, to a multiple of 16.
    assert report["settings"]["resolved"]["grid_px"] == 256 and "network grid: 256 px a side" in done.stdout
    assert f"weights {expected}" in done.stdout and environment["weights_sha256"][:12] in done.stdout
    if environment["weights_kind"] == "project":  # a clone without the official XMem.pth
        assert done.stderr.count("warning: XMem runs on the project's own weights") == 1
    masks = sitk.GetArrayFromImage(read_output(out))
    assert score_sequence(masks, read_labels(EXAMPLE_CASE), "abdomen")["dsc"] >= 0.8  # copy: 0.66


def test_non_square_frames_and_non_unit_spacing_in_the_challenge_layout(make_input, tmp_path, run_main):
    frames, masks = square_sequence(shape=(24, 37), n_frames=6)
    root = make_input(frames, masks[:, :, :1], spacing=(0.125, 1.7, 2.3), origin=(4.0, -5.0, 6.0))
    snapshot = make_read_only(root)
    out = tmp_path / "out"
    # XMem on a 64 px grid, in eager mode: the network's grid does not depend on the frame's
    # shape or spacing (the default grid and its frozen graphs take seconds to set up).
    done = run_main("--input", root, "--output", out, "--crop-size", "64", "--no-frozen-graphs")
    assert done.returncode == 0, done.stderr
    output = read_output(out)
    result = sitk.GetArrayFromImage(output)
    assert result.shape == (24, 37, 6) and result.dtype == np.uint8
    assert output.GetSpacing() == pytest.approx((0.125, 1.7, 2.3))
    assert output.GetOrigin() == (4.0, -5.0, 6.0)
    assert set(np.unique(result)) == {0, 1} and result.reshape(-1, 6).sum(axis=0).min() > 0
    assert snapshot_tree(root) == snapshot


def test_one_frame_sequence_writes_the_first_mask(make_input, tmp_path, run_main):
    frames, masks = square_sequence(n_frames=1)
    done = run_main("--input", make_input(frames, masks), "--output", tmp_path / "out")
    assert done.returncode == 0, done.stderr
    np.testing.assert_array_equal(sitk.GetArrayFromImage(read_output(tmp_path / "out")), masks)


@dataclass
class _FlakySettings:
    misses: int = field(default=0, metadata={"help": "frames returned empty"})
    label: str = field(default="x", metadata={"help": "a string setting"})
    fast: bool = field(default=False, metadata={"help": "a flag"})


class FlakyTracker(Tracker):
    """Returns empty masks for the first `misses` frames, to exercise settings and fallbacks."""

    name = "flaky"
    Settings = _FlakySettings

    def __init__(self, settings: _FlakySettings) -> None:
        self.config, self.calls = settings, 0

    def start(self, first_frame, first_mask, info: SequenceInfo) -> None:
        self.mask = first_mask

    def track(self, frame):
        self.calls += 1
        return np.zeros_like(self.mask) if self.calls <= self.config.misses else self.mask

    def events(self):
        return {"calls": self.calls}


def test_settings_become_options_and_reach_the_report(make_input, tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(TRACKER_CLASSES, "flaky", f"{__name__}:FlakyTracker")
    report = tmp_path / "report.json"
    code = inference.main(
        [
            "--input",
            str(make_input()),
            "--output",
            str(tmp_path / "out"),
            "--tracker",
            "flaky",
            "--misses",
            "2",
            "--label",
            "y",
            "--fast",
            "--report",
            str(report),
        ]
    )
    assert code == 0
    content = json.loads(report.read_text())
    assert content["settings"] == {"misses": 2, "label": "y", "fast": True}
    # The flaky tracker returns the first mask (or nothing) on every frame.
    assert content["events"] == {"calls": 4, "empty_fallback": 2, "first_mask_repeated": 4}
    masks = sitk.GetArrayFromImage(read_output(tmp_path / "out"))
    assert masks.reshape(-1, 5).sum(axis=0).min() > 0
    assert "--misses" in _help_text(capsys)


class CrashingTracker(FlakyTracker):
    def track(self, frame):
        raise RuntimeError("CUDA out of memory")


def test_a_crashing_tracker_still_writes_a_complete_output(make_input, tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(TRACKER_CLASSES, "crashing", f"{__name__}:CrashingTracker")
    report = tmp_path / "report.json"
    code = inference.main(
        [
            "--input",
            str(make_input()),
            "--output",
            str(tmp_path / "out"),
            "--tracker",
            "crashing",
            "--report",
            str(report),
        ]
    )
    assert code == 0
    assert capsys.readouterr().err == (
        "warning: the crashing tracker failed at frame 1 (RuntimeError: "
        "CUDA out of memory); the last good mask fills the remaining frames\n"
    )
    masks = sitk.GetArrayFromImage(read_output(tmp_path / "out"))
    assert all(np.array_equal(masks[:, :, t], masks[:, :, 0]) for t in range(masks.shape[2]))
    content = json.loads(report.read_text())
    assert content["warnings"] == [
        "the crashing tracker failed at frame 1 (RuntimeError: CUDA out of memory); "
        "the last good mask fills the remaining frames"
    ]
    assert content["events"]["tracker_error"] == 1
    assert "Traceback" in content["tracker_error"] and "CUDA out of memory" in content["tracker_error"]


class EmulatedBf16Tracker(FlakyTracker):
    def describe(self):
        return {"device": "cpu (2 threads)", "precision": "bf16"}


def test_bf16_on_a_cpu_without_native_bf16_warns_once_and_reaches_the_report(make_input, tmp_path, monkeypatch, capsys):
    import model.device

    monkeypatch.setitem(TRACKER_CLASSES, "bf16", f"{__name__}:EmulatedBf16Tracker")
    monkeypatch.setattr(model.device, "cpu_has_native_bf16", lambda: False)
    report = tmp_path / "report.json"
    argv = [
        "--input",
        str(make_input()),
        "--output",
        str(tmp_path / "out"),
        "--tracker",
        "bf16",
        "--report",
        str(report),
    ]
    assert inference.main(argv) == 0
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("warning: precision bf16 on this CPU") and "fp32" in lines[0]
    assert json.loads(report.read_text())["warnings"] == [lines[0].removeprefix("warning: ")]
    monkeypatch.setattr(model.device, "cpu_has_native_bf16", lambda: True)
    assert inference.main(argv) == 0 and capsys.readouterr().err == ""


def _help_text(capsys) -> str:
    with pytest.raises(SystemExit):
        inference.main(["--tracker", "flaky", "--help"])
    return capsys.readouterr().out


def test_mask_values_other_than_0_1_are_binarised_with_a_warning(make_input, tmp_path, run_main):
    frames, masks = square_sequence()
    done = run_main(
        "--input", make_input(frames, masks[:, :, :1] * 7), "--tracker", "copy", "--output", tmp_path / "out"
    )
    assert done.returncode == 0 and "binarised as value > 0" in done.stderr
    np.testing.assert_array_equal(sitk.GetArrayFromImage(read_output(tmp_path / "out"))[:, :, 1], masks[:, :, 0])


def test_nan_and_inf_pixels_are_sanitised_with_a_warning(make_input, tmp_path, run_main):
    frames, masks = square_sequence()
    frames[3, 3, 2], frames[4, 4, 3] = np.nan, np.inf
    done = run_main(
        "--input",
        make_input(frames, masks[:, :, :1]),
        "--tracker",
        "copy",
        "--output",
        tmp_path / "out",
        "--report",
        tmp_path / "r.json",
    )
    assert done.returncode == 0 and "2 NaN/Inf pixels replaced" in done.stderr
    assert json.loads((tmp_path / "r.json").read_text())["events"]["nonfinite_pixels"] == 2


def test_missing_json_uses_defaults_with_a_warning(make_input, tmp_path, run_main):
    root = make_input()
    (root / "frame-rate.json").unlink()
    done = run_main("--input", root, "--tracker", "copy", "--output", tmp_path / "out")
    assert done.returncode == 0 and "frame-rate.json: missing, using default 4.0" in done.stderr


# --- bad inputs: one line on stderr naming the file and the problem, exit 1, no output ----------


SERIES = Path("images/mri-linacs/case_frames.mha")

# Every kind of bad input runs in-process in test_bad_input_corpus.py; these two run the entry
# point as its own process, so the exit status and stderr are the interpreter's, not main()'s.
BAD_INPUTS = {
    # name: (how to break a good input, file named in the message, problem in the message)
    "truncated image": (
        lambda r: (r / SERIES).write_bytes((r / SERIES).read_bytes()[:-40]),
        "case_frames.mha",
        "truncated",
    ),
    "JSON of the wrong type": (
        lambda r: (r / "frame-rate.json").write_text('"8"'),
        "frame-rate.json",
        "expected a JSON number, got str",
    ),
}


def _assert_clean_failure(done, out: Path, *fragments: str) -> None:
    assert done.returncode == 1
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith("error: ") and "Traceback" not in done.stderr
    for fragment in fragments:
        assert fragment in lines[0]
    assert not (out / OUTPUT_RELATIVE).exists()


@pytest.mark.parametrize("name", BAD_INPUTS)
def test_bad_input(name, make_input, tmp_path):
    breaker, filename, problem = BAD_INPUTS[name]
    root = make_input()
    breaker(root)
    snapshot = make_read_only(root)
    out = tmp_path / "out"
    done = run_inference("--input", root, "--output", out)
    _assert_clean_failure(done, out, filename, problem)
    assert snapshot_tree(root) == snapshot


def test_output_folder_not_writable(make_input, tmp_path, run_main):
    blocker = tmp_path / "blocker"
    blocker.write_text("a file where the output folder should go")
    blocker.chmod(0o444)
    out = blocker / "out"  # unwritable for root too: its parent is a file
    done = run_main("--input", make_input(), "--output", out)
    _assert_clean_failure(done, out, str(out), "output folder not writable")


def test_overlay_writes_an_animation_and_a_montage_with_the_ground_truth(tmp_path, run_main):
    from PIL import Image

    overlay = tmp_path / "pictures" / "z001.gif"
    done = run_main("--case", EXAMPLE_CASE, "--output", tmp_path / "out", "--tracker", "copy", "--overlay", overlay)
    assert done.returncode == 0, done.stderr
    with Image.open(overlay) as gif:
        assert gif.n_frames == 10
    with Image.open(overlay.with_suffix(".png")) as montage:
        pixels = np.asarray(montage.convert("RGB")).reshape(-1, 3).astype(int)
    # The copy mask (amber) and the moving ground truth (green) are both drawn.
    assert ((pixels[:, 1] > 150) & (pixels[:, 0] < 100) & (pixels[:, 2] < 100)).any()
    assert ((pixels[:, 0] > 200) & (pixels[:, 1] > 100) & (pixels[:, 2] < 80)).any()


def test_overlay_with_another_suffix_is_a_usage_error(tmp_path, run_main):
    done = run_main("--case", EXAMPLE_CASE, "--output", tmp_path / "out", "--overlay", tmp_path / "x.avi")
    assert done.returncode == 2 and "must end in .gif or .mp4" in done.stderr
    assert not (tmp_path / "out").exists()


def test_report_and_overlay_may_go_inside_the_output_folder_not_yet_created(tmp_path, run_main):
    out = tmp_path / "new" / "out"
    done = run_main(
        "--case",
        EXAMPLE_CASE,
        "--tracker",
        "copy",
        "--output",
        out,
        "--report",
        out / "run.json",
        "--overlay",
        out / "pictures" / "run.gif",
    )
    assert done.returncode == 0, done.stderr
    assert json.loads((out / "run.json").read_text())["n_frames"] == 10
    assert (out / "pictures" / "run.png").is_file()


def test_a_failed_run_removes_the_folders_it_created_and_nothing_else(tmp_path, run_main):
    (tmp_path / "kept").mkdir()
    out, report = tmp_path / "kept" / "new" / "out", tmp_path / "runs" / "run.json"
    done = run_main("--case", EXAMPLE_CASE, "--output", out, "--report", report, "--weights", tmp_path / "missing.pth")
    assert done.returncode == 1, done.stderr
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["kept"]


def test_missing_weights_is_one_line_naming_where_it_looked(tmp_path, monkeypatch, run_main):
    monkeypatch.delenv("TRACKRAD_XMEM_WEIGHTS", raising=False)
    missing = tmp_path / "nowhere.pth"
    done = run_main("--case", EXAMPLE_CASE, "--output", tmp_path / "out", "--tracker", "xmem", "--weights", missing)
    _assert_clean_failure(done, tmp_path / "out", str(missing))


def test_unavailable_device_is_one_line_before_loading_weights(tmp_path, run_main):
    done = run_main("--case", EXAMPLE_CASE, "--output", tmp_path / "out", "--tracker", "xmem", "--device", "cuda:7")
    _assert_clean_failure(done, tmp_path / "out", "xmem settings", "'cuda:7' is not available")


def test_invalid_setting_is_one_line_naming_the_setting(tmp_path, run_main):
    done = run_main("--case", EXAMPLE_CASE, "--output", tmp_path / "out", "--tracker", "xmem", "--crop-size", "100")
    _assert_clean_failure(done, tmp_path / "out", "xmem settings", "crop_size")


def test_dataset_layout_without_first_label(tmp_path, run_main):
    case = tmp_path / "Q_9"
    shutil.copytree(EXAMPLE_CASE, case)
    (case / "targets" / "Q_9_first_label.mha").unlink(missing_ok=True)
    (case / "images" / "Z_001_frames.mha").rename(case / "images" / "Q_9_frames.mha")
    done = run_main("--case", case, "--output", tmp_path / "out")
    _assert_clean_failure(done, tmp_path / "out", "Q_9_first_label.mha", "not found")


# --- the output under faults: complete and readable, or absent with exit 1 -----------------------


def _assert_nothing_left(folder: Path) -> None:
    """No file at all under `folder` (folders may exist: they are created before tracking)."""
    assert [p for p in folder.rglob("*") if p.is_file()] == []


def test_full_disk_is_one_error_line_and_no_output(full_disk):
    out = full_disk / "out"
    done = run_inference("--case", EXAMPLE_CASE, "--tracker", "copy", "--output", out, "--report", out / "run.json")
    _assert_clean_failure(done, out, "output.mha: cannot write", "no space left on the device")
    _assert_nothing_left(out)


@pytest.mark.parametrize("max_bytes", [0, 200, 600], ids=["nothing", "part of the header", "part of the data"])
def test_output_cut_short_is_one_error_line_and_no_output(tmp_path, max_bytes):
    out = tmp_path / "out"
    done = run_inference("--case", EXAMPLE_CASE, "--tracker", "copy", "--output", out, max_file_bytes=max_bytes)
    _assert_clean_failure(done, out, f"{out / OUTPUT_RELATIVE}: cannot write")
    _assert_nothing_left(out)


def test_report_and_overlay_that_cannot_be_written_completely(make_input, tmp_path, run_main):
    full = run_main(  # the sizes of a complete run's files; the limited runs need processes
        "--input",
        make_input(),
        "--tracker",
        "copy",
        "--output",
        tmp_path / "sizes",
        "--report",
        tmp_path / "sizes.json",
    )
    assert full.returncode == 0, full.stderr
    output_bytes = (tmp_path / "sizes" / OUTPUT_RELATIVE).stat().st_size
    assert (tmp_path / "sizes.json").stat().st_size > output_bytes  # the report is the larger file
    for option, name in (("--report", "run.json"), ("--overlay", "run.gif")):
        out = tmp_path / option.strip("-")
        done = run_inference(
            "--input",
            make_input(),
            "--tracker",
            "copy",
            "--output",
            out,
            option,
            out / name,
            max_file_bytes=output_bytes,
        )
        lines = done.stderr.strip().splitlines()
        assert done.returncode == 1 and len(lines) == 1, done.stderr
        assert lines[0].startswith(f"error: {out / name}: cannot write")
        # The output itself is complete; nothing else is left, no temporary file either.
        assert [p.name for p in out.rglob("*") if p.is_file()] == ["output.mha"]


def test_output_is_readable_by_other_users_whatever_the_umask(make_input, tmp_path):
    out = tmp_path / "out"
    done = run_inference(
        "--input",
        make_input(),
        "--tracker",
        "copy",
        "--output",
        out,
        "--report",
        out / "run.json",
        "--overlay",
        out / "run.gif",
        umask=0o077,
    )
    assert done.returncode == 0, done.stderr
    for path in (out / OUTPUT_RELATIVE, out / "run.json", out / "run.gif", out / "run.png"):
        assert path.stat().st_mode & 0o777 == 0o644, path


def test_weights_without_the_xmem_tracker_explains_itself(make_input, tmp_path, capsys):
    with pytest.raises(SystemExit) as stopped:
        inference.main(
            ["--input", str(make_input()), "--output", str(tmp_path / "out"), "--tracker", "copy", "--weights", "w.pth"]
        )
    assert stopped.value.code == 2
    err = capsys.readouterr().err
    assert "--weights is a setting of the xmem tracker, not of copy: add --tracker xmem" in err
    assert not (tmp_path / "out").exists()


def test_a_stand_in_network_outside_the_benchmark_is_a_usage_error(make_input, tmp_path, capsys):
    with pytest.raises(SystemExit) as stopped:
        inference.main(["--input", str(make_input()), "--output", str(tmp_path / "out"), "--network", "exact"])
    assert stopped.value.code == 2
    err = capsys.readouterr().err
    assert "stand-in networks are built from a case's labels, so they exist only in the benchmark" in err
    assert not (tmp_path / "out").exists()


def test_help_says_how_to_see_each_trackers_settings(capsys):
    with pytest.raises(SystemExit):
        inference.main(["--tracker", "copy", "--help"])
    assert "`inference.py --tracker NAME --help` lists them" in " ".join(capsys.readouterr().out.split())


def test_implausible_frame_rate_and_blank_frames_reach_the_report(make_input, tmp_path, run_main):
    frames, masks = square_sequence(n_frames=5)
    frames[:, :, 3] = 0.0
    root = make_input(frames, masks[:, :, :1], json_values={"frame-rate.json": 1e6})
    report = tmp_path / "run.json"
    done = run_main("--input", root, "--tracker", "copy", "--output", tmp_path / "out", "--report", report)
    assert done.returncode == 0, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 2 and all(line.startswith("warning: ") for line in lines)
    assert "1e+06 frames/s is outside the plausible 0.1-100 frames/s; using 100" in lines[1]
    content = json.loads(report.read_text())
    assert content["events"]["blank_frames"] == 1
    assert content["events"]["first_mask_repeated"] == 4  # the copy tracker


def test_help_of_a_tracker_without_settings_says_so_and_flow_references_share_xmems_names(capsys):
    with pytest.raises(SystemExit):
        inference.main(["--tracker", "copy", "--help"])
    assert "none: the copy tracker has no settings" in capsys.readouterr().out
    for tracker, option in (("optical-flow", "--reference"), ("xmem", "--motion")):
        with pytest.raises(SystemExit):
            inference.main(["--tracker", tracker, "--help"])
        assert option in (text := " ".join(capsys.readouterr().out.split())), tracker
        assert "first-frame" in text and "previous-frame" in text and "frame-to-frame" not in text


def test_xmem_help_shows_one_heading_per_settings_group(capsys):
    with pytest.raises(SystemExit):
        inference.main(["--tracker", "xmem", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    headings = [f"xmem {name} settings" for name in ("window", "output", "motion", "arbitration", "guards", "network")]
    positions = [text.index(heading) for heading in headings]
    assert positions == sorted(positions)
    # Each option under its own group's heading.
    prior_weight, trust_floor = text.index("weight of the flow prior"), text.index("the network's trust:")
    assert positions[2] < prior_weight < positions[3] < trust_floor < positions[4]
