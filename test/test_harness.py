"""test/run.sh and evaluation.harness: staging, scoring, the table, and the pass/fail rules."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk
from conftest import EXAMPLE_CASE, REPO

from evaluation import harness
from evaluation.metrics import score_sequence
from model.io import find_case_dirs, read_dataset_case, read_labels
from model.trackers.registry import TRACKER_CLASSES


def test_run_sh_prints_the_example_table_with_the_copy_baseline():
    # PYTHON: run.sh uses the interpreter running the tests, not whichever is first on PATH.
    done = subprocess.run(
        ["bash", "test/run.sh", "--tracker", "copy"],
        cwd=REPO,
        env={**os.environ, "PYTHON": sys.executable},
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    truth = read_labels(EXAMPLE_CASE)
    copied = np.repeat(truth[:, :, :1], truth.shape[2], axis=2)
    expected = score_sequence(copied, truth, "abdomen")
    row = next(line for line in done.stdout.splitlines() if line.startswith("Z_001"))
    assert f"{expected['dsc']:.3f}" in row and f"{expected['rel_d98']:.3f}" in row
    assert row.rstrip().endswith("ok")
    assert "time per frame" in done.stdout and "mean over cases" in done.stdout


def test_stage_input_lays_out_the_challenge_folders_read_only(tmp_path):
    harness.stage_input(EXAMPLE_CASE, tmp_path / "input")
    files = sorted(p.relative_to(tmp_path / "input").as_posix() for p in (tmp_path / "input").rglob("*") if p.is_file())
    assert files == [
        "b-field-strength.json",
        "frame-rate.json",
        "images/mri-linac-target/Z_001_first_label.mha",
        "images/mri-linacs/Z_001_frames.mha",
        "scanned-region.json",
    ]
    assert not (tmp_path / "input" / "frame-rate.json").stat().st_mode & 0o222
    for path in [tmp_path / "input", *(tmp_path / "input").rglob("*")]:
        path.chmod(0o755)


def test_docker_command_uses_the_challenge_mounts(tmp_path, monkeypatch):
    monkeypatch.setattr(harness, "_has_gpu", lambda: True)
    command = harness.entry_command(tmp_path / "in", tmp_path / "out", [], "algo:1")
    assert command[:5] == ["docker", "run", "--rm", "--network", "none"]
    assert "--gpus" in command and f"{tmp_path / 'in'}:/input:ro" in command
    assert command[command.index("algo:1") + 1 :] == ["--report", "/output/run-report.json"]


def test_failed_case_and_unlabelled_case(tmp_path, capsys):
    good = tmp_path / "A_1"
    shutil.copytree(EXAMPLE_CASE, good)
    for path in good.rglob("Z_001*"):
        path.rename(path.with_name(path.name.replace("Z_001", "A_1")))
    (good / "targets" / "A_1_labels.mha").unlink()  # unlabelled: run and checked, not scored
    bad = tmp_path / "B_2"
    shutil.copytree(good, bad)
    for path in bad.rglob("A_1*"):
        path.rename(path.with_name(path.name.replace("A_1", "B_2")))
    mask = bad / "targets" / "B_2_first_label.mha"
    sitk.WriteImage(sitk.GetImageFromArray(np.zeros((125, 125, 1), np.uint8)), str(mask))
    assert find_case_dirs(tmp_path) == [good, bad]
    assert harness.main([str(tmp_path), "--tracker", "copy"]) == 1
    out = capsys.readouterr().out
    failed = next(line for line in out.splitlines() if line.startswith("B_2"))
    # Named as the case's own file, not the staged copy in a deleted temporary folder.
    assert f"{mask}: mask is empty" in failed and "trackrad-harness-" not in failed
    assert next(line for line in out.splitlines() if line.startswith("A_1")).rstrip().endswith("ok")
    assert "FAIL: 1 of 2 case(s) failed" in out


def test_summary_fails_on_slow_runs_and_empty_frames():
    fast = harness.CaseResult("X", n_frames=10, wall_seconds=1.0, scores={})
    assert harness.summarise([fast], 1.0)[1] is True
    assert harness.summarise([fast], 0.05)[1] is False
    empty = harness.CaseResult("Y", n_frames=10, wall_seconds=1.0, empty_frames=2)
    lines, passed = harness.summarise([empty], 1.0)
    assert not passed and "FAIL: 2 empty output frame(s)" in lines


def test_speed_line_says_what_ran_and_why_a_cpu_may_be_slow(monkeypatch):
    report = {
        "environment": {"device": "cpu (2 threads)", "precision": "fp32", "network_path": "fp32, frozen graphs"},
        "settings": {"resolved": {"grid_px": 224}},
    }
    ran_on = harness._ran_on(report)
    assert ran_on == "cpu (2 threads), fp32, frozen graphs, grid 224"
    assert harness._ran_on({"environment": {}, "settings": {}}) == ""  # e.g. the copy tracker
    slow = harness.CaseResult("X", n_frames=10, wall_seconds=6.0, median_frame_seconds=0.4, ran_on=ran_on)
    monkeypatch.setattr(harness, "cpu_has_native_bf16", lambda: False)
    lines, passed = harness.summarise([slow], 0.25)
    assert not passed and lines[0].endswith(f"({ran_on})")
    assert lines[1].startswith("FAIL: median per-frame time 0.400 s > 0.25 s (fp32 on a CPU without native bf16")
    monkeypatch.setattr(harness, "cpu_has_native_bf16", lambda: True)
    assert harness.summarise([slow], 0.25)[0][1] == "FAIL: median per-frame time 0.400 s > 0.25 s"


def test_means_leave_out_an_undefined_metric_and_count_it():
    scores = dict(dsc=0.9, hd95=1.0, masd=0.5, cd=0.5, rel_d98=1.0)
    tiny = harness.CaseResult("A", n_frames=10, wall_seconds=1.0, scores={**scores, "rel_d98": float("nan")})
    other = harness.CaseResult("B", n_frames=10, wall_seconds=1.0, scores={**scores, "dsc": 0.7})
    lines, passed = harness.summarise([tiny, other], 1.0)
    assert passed and lines[0] == (
        "mean over cases: dsc 0.800, hd95_px 1.00, masd_px 0.50, cd_px 0.500, "
        "rel_d98 1.000 (undefined, left out: rel_d98 on 1 of 2 cases)"
    )
    assert "rel_d98" in harness.format_table([tiny]).splitlines()[0]


def test_speed_check_uses_the_fit_across_lengths_and_the_median_for_one_length():
    # One length: 5 s of start-up over 10 frames would read as 0.6 s/frame; the in-process
    # median (0.1 s) is what the limit is checked against.
    slow_start = harness.CaseResult("X", n_frames=10, wall_seconds=6.0, median_frame_seconds=0.1)
    lines, passed = harness.summarise([slow_start], 0.5)
    assert passed and "time per frame 0.600 s (one sequence length: start-up counted as frames" in lines[0]
    assert harness.summarise([slow_start], 0.05)[1] is False
    # No median (a run that did not report one): the upper bound is what is judged.
    unmeasured = harness.CaseResult("Z", n_frames=10, wall_seconds=6.0, median_frame_seconds=float("nan"))
    lines, passed = harness.summarise([unmeasured], 0.5)
    assert not passed and "FAIL: time per frame (upper bound) 0.600 s > 0.5 s" in lines
    # Two lengths: the fit separates loading (5 s) from 0.1 s per frame, whatever the medians say.
    longer = harness.CaseResult("Y", n_frames=20, wall_seconds=7.0, median_frame_seconds=0.9)
    lines, passed = harness.summarise([slow_start, longer], 0.5)
    assert passed and "time per frame (linear fit) 0.100 s, loading 5.00 s" in lines[0]


def test_tracker_settings_pass_through_to_the_entry_point(capsys):
    assert harness.main([str(EXAMPLE_CASE), "--tracker", "optical-flow", "--method", "farneback"]) == 0
    capsys.readouterr()
    # An option the entry point does not know stops the harness before any case runs.
    with pytest.raises(SystemExit) as stopped:
        harness.main([str(EXAMPLE_CASE), "--tracker", "copy", "--no-such-setting", "1"])
    assert stopped.value.code == 2
    assert "unrecognized arguments: --no-such-setting" in capsys.readouterr().err


@pytest.mark.parametrize(
    "argv",
    [
        ["--tracker", "xmem", "--weights", "W.pth", "--crop-size", "256"],
        ["--crop-size", "256", "--weights", "W.pth", "--tracker", "xmem"],
        ["DATA", "--tracker", "xmem", "--weights", "W.pth", "--crop-size", "256"],
        ["--weights", "W.pth", "DATA", "--crop-size=256", "--tracker", "xmem", "--max-seconds-per-frame", "2"],
    ],
    ids=["no dataset", "no dataset, tracker last", "dataset first", "dataset between"],
)
def test_entry_point_options_keep_their_values_in_any_order(argv):
    args, extra = harness.parse_arguments(argv)
    assert args.tracker == "xmem"
    assert args.dataset == (Path("DATA") if "DATA" in argv else harness.DEFAULT_DATASET)
    assert extra[:2] == ["--tracker", "xmem"]
    assert extra[extra.index("--weights") + 1] == "W.pth"
    assert "--crop-size=256" in extra or extra[extra.index("--crop-size") + 1] == "256"
    assert "DATA" not in extra and "--max-seconds-per-frame" not in extra


def test_a_flag_does_not_take_the_dataset_as_its_value(monkeypatch):
    monkeypatch.setitem(TRACKER_CLASSES, "flaky", "test_inference:FlakyTracker")
    args, extra = harness.parse_arguments(["--tracker", "flaky", "--fast", "DATA", "--misses", "2"])
    assert args.dataset == Path("DATA") and extra == ["--tracker", "flaky", "--fast", "--misses", "2"]


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--output", "x"], "--output is set by the harness"),
        (["--weights", "W.pth"], "--weights is a setting of the xmem tracker"),
        (["--tracker", "xmem", "--crop-size"], "--crop-size expects a value"),
        (["A", "B"], "one DATASET_DIR expected, got A B"),
    ],
)
def test_harness_usage_errors(argv, message, monkeypatch, capsys):
    monkeypatch.setattr(harness, "DEFAULT_TRACKER", "copy")
    with pytest.raises(SystemExit) as stopped:
        harness.parse_arguments(argv)
    assert stopped.value.code == 2 and message in capsys.readouterr().err


# These two call the harness in this process (the entry point still runs as a process of its
# own per case); test_run_sh_prints_the_example_table_with_the_copy_baseline runs test/run.sh,
# which hands its arguments to the harness unchanged.


def test_weights_without_a_dataset_go_to_the_example_case_and_its_row_names_them(tmp_path, capsys):
    missing = tmp_path / "missing.pth"
    assert harness.main(["--tracker", "xmem", "--weights", str(missing)]) == 1
    done = capsys.readouterr()
    row = next(line for line in done.out.splitlines() if line.startswith("Z_001"))
    assert str(missing) in row and "no case folder" not in done.out + done.err


def test_help_describes_the_harness_and_the_pass_through(capsys):
    with pytest.raises(SystemExit) as stopped:
        harness.main(["--help"])
    assert stopped.value.code == 0
    text = " ".join(capsys.readouterr().out.split())
    assert "scores the outputs and checks the runtime limit." in text
    assert "Any other option goes to the entry point with its value" in text


def test_no_case_found_is_one_error_line(tmp_path, capsys):
    assert harness.main([str(tmp_path), "--tracker", "copy"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith(f"error: {tmp_path}: no case folder")


def test_example_case_is_the_shipped_challenge_case():
    case = read_dataset_case(harness.DEFAULT_DATASET / "Z_001")
    assert case.frames.shape == (125, 125, 10)
    assert (harness.DEFAULT_DATASET / "SOURCE.md").is_file()


_NO_DAEMON = "Cannot connect to the Docker daemon at unix:///var/run/docker.sock. Is the docker daemon running?"


def _stub_docker(tmp_path: Path, monkeypatch, info_fails: bool) -> None:
    """A `docker` first on PATH: `info` fails as the client does without a daemon (or answers),
    `run` fails as `docker run` does when the daemon refuses the container (exit 125)."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    stub = bin_dir / "docker"
    info = f"echo {_NO_DAEMON!r} >&2; exit 1" if info_fails else "echo 28.2.2; exit 0"
    stub.write_text(
        f'#!/bin/sh\nif [ "$1" = info ]; then {info}; fi\n'
        "echo 'docker: Error response from daemon: pull access denied for algo' >&2\n"
        "echo >&2\n"
        "echo \"Run 'docker run --help' for more information\" >&2\n"
        "exit 125\n"
    )
    stub.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")


def test_docker_without_a_daemon_is_one_line_before_any_case(tmp_path, monkeypatch, capsys):
    _stub_docker(tmp_path, monkeypatch, info_fails=True)
    assert harness.main(["--docker", "algo:1"]) == 1
    captured = capsys.readouterr()
    assert (
        captured.err == f"error: docker: cannot reach the Docker daemon ({_NO_DAEMON}); start it, or set DOCKER_HOST\n"
    )
    assert captured.out == ""


def test_a_failure_of_docker_itself_keeps_dockers_message(tmp_path, monkeypatch, capsys):
    _stub_docker(tmp_path, monkeypatch, info_fails=False)
    assert harness.main(["--docker", "algo:1"]) == 1
    out = capsys.readouterr().out
    failed = next(line for line in out.splitlines() if line.startswith("Z_001"))
    assert "exit 125: docker: Error response from daemon: pull access denied for algo" in failed
