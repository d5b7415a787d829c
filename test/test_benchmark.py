"""The benchmark command on two tiny sequences, and the pictures it relies on."""

from __future__ import annotations

import csv
import os
import subprocess

import cv2
import numpy as np
import pytest
import torch
from conftest import REPO
from PIL import Image

from evaluation import benchmark
from evaluation.metrics import dice_per_frame
from model.overlay import write_line_chart, write_montage, write_overlay
from model.trackers.xmem import XMemSettings
from model.weights import ENV_VAR
from model.xmem.network.network import XMem
from sequences.synthetic import MotionRanges, generate_sequence, write_case

# XMem runs with random weights here, for its time only: on a 64 px grid, in eager mode (the
# default grid and the frozen graphs' tracing would take most of the test's time).
XMEM = "xmem[crop-size=64,frozen-graphs=off]"
TRACKERS = ["copy", "optical-flow", "template", XMEM]
FRAMES = 8  # per case: 2 s at 4 frames/s, enough motion for tracking to beat copying


@pytest.fixture(scope="module")
def tiny_dataset(tmp_path_factory):
    root = tmp_path_factory.mktemp("dataset")
    for index, (field, region) in enumerate([(0.35, "lung"), (1.5, "abdomen")]):
        sequence = generate_sequence(
            index, FRAMES, field, region, MotionRanges(si_mm=(8, 12)), frame_rate=4.0, shape=(96, 96)
        )
        write_case(root / f"S_00{index + 1}", f"S_00{index + 1}", sequence)
    return root


@pytest.fixture(scope="module")
def random_weights(tmp_path_factory):
    """XMem weights that run but do not track: enough to time XMem and form the ratios."""
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("weights") / "random.pth"
    torch.save({k: v.half() if v.is_floating_point() else v for k, v in XMem().state_dict().items()}, path)
    return path


def run_in_process(monkeypatch, spawned=()):
    """Run the tracker specs in this process, except those in `spawned`, instead of in a fresh
    spawned process each (each of which imports torch, seconds): the rows are the same."""
    fresh = benchmark.benchmark_in_fresh_process

    def run(spec, case_dirs, overlay_dir=None):
        if spec in spawned:
            return fresh(spec, case_dirs, overlay_dir)
        return benchmark.benchmark_tracker(spec, case_dirs, overlay_dir)

    monkeypatch.setattr(benchmark, "benchmark_in_fresh_process", run)


@pytest.fixture
def in_process(monkeypatch):
    """For the tests about rows and labels, not about the worker process, which
    test_benchmark_writes_table_with_all_columns runs for real."""
    run_in_process(monkeypatch)


@pytest.mark.slow  # XMem's worker process imports torch and loads the random weights
def test_benchmark_writes_table_with_all_columns(tiny_dataset, random_weights, tmp_path, capsys, monkeypatch):
    # XMem's row comes from a real spawned worker, which gets the weights from the environment;
    # the other rows run in this process.
    run_in_process(monkeypatch, spawned={XMEM})
    monkeypatch.setenv(ENV_VAR, str(random_weights))  # inherited by the spawned worker process
    out = tmp_path / "bench"
    benchmark.main([str(tiny_dataset), "--trackers", ",".join(TRACKERS), "--out", str(out), "--overlays"])
    printed = capsys.readouterr().out
    assert all(column in printed for column in benchmark.COLUMNS)

    with open(out / "table.csv") as handle:
        reader = csv.DictReader(handle)
        assert tuple(reader.fieldnames) == benchmark.COLUMNS
        rows = {row["tracker"]: row for row in reader}
    assert list(rows) == TRACKERS
    numeric = ["dsc", "hd95_px", "masd_px", "cd_px", "rel_d98", "median_ms", "p95_ms", "peak_rss_mib"]
    for name in ["copy", "optical-flow", "template"]:
        row = rows[name]
        assert row["cases"] == "2"
        values = {key: float(row[key]) for key in numeric}
        assert 0 <= values["dsc"] <= 1 and values["peak_rss_mib"] > 0
    xmem = rows[XMEM]
    assert float(xmem["time_vs_xmem"]) == pytest.approx(1.0)
    expected = float(rows["template"]["median_ms"]) / float(xmem["median_ms"])
    assert float(rows["template"]["time_vs_xmem"]) == pytest.approx(expected, rel=0.01)
    # Tracking beats copying on moving tumours.
    assert float(rows["template"]["dsc"]) > float(rows["copy"]["dsc"])

    with open(out / "cases.csv") as handle:
        reader = csv.DictReader(handle)
        assert tuple(reader.fieldnames) == benchmark.CASE_COLUMNS
        per_case = list(reader)
    assert [(r["tracker"], r["case"]) for r in per_case] == [(t, c) for t in TRACKERS for c in ("S_001", "S_002")]
    assert all(r["frames"] == str(FRAMES) for r in per_case)
    # The summary row is the mean of its per-case rows.
    template_dsc = [float(r["dsc"]) for r in per_case if r["tracker"] == "template"]
    assert float(rows["template"]["dsc"]) == pytest.approx(np.mean(template_dsc), abs=1.5e-3)

    markdown = (out / "table.md").read_text().splitlines()
    assert len(markdown) == 2 + len(TRACKERS) and all(c in markdown[0] for c in benchmark.COLUMNS)
    chart = cv2.imread(str(out / "dsc_over_time.png"))
    assert chart is not None and chart.shape[0] > 100
    gif = Image.open(out / "overlays" / "S_001" / "template.gif")
    assert gif.n_frames == FRAMES
    assert (out / "overlays" / "S_002" / "copy.png").is_file()


def test_xmem_without_weights_gets_a_row_saying_why(tiny_dataset, tmp_path, monkeypatch, in_process):
    monkeypatch.setenv(ENV_VAR, str(tmp_path / "missing.pth"))
    out = tmp_path / "bench"
    benchmark.main([str(tiny_dataset), "--trackers", "copy,xmem", "--out", str(out)])
    with open(out / "table.csv") as handle:
        rows = {row["tracker"]: row for row in csv.DictReader(handle)}
    assert rows["xmem"]["note"].startswith("skipped:") and "missing.pth" in rows["xmem"]["note"]
    assert rows["xmem"]["dsc"] == "" and rows["copy"]["time_vs_xmem"] == ""
    assert float(rows["copy"]["dsc"]) > 0


def test_unknown_tracker_is_rejected_before_running(tiny_dataset, tmp_path):
    with pytest.raises(SystemExit):
        benchmark.main([str(tiny_dataset), "--trackers", "copy,nope", "--out", str(tmp_path)])
    assert not (tmp_path / "table.csv").exists()


def test_tracker_specs_carry_settings_and_weights():
    assert benchmark.split_specs("copy, xmem[motion=off,motion-crop=on]@w.pth ,optical-flow") == [
        "copy",
        "xmem[motion=off,motion-crop=on]@w.pth",
        "optical-flow",
    ]
    assert benchmark.parse_spec("xmem[motion-prior=fixed,prior-weight=0.7,crop-size=64]@a/b.pth") == (
        "xmem",
        {"motion_prior": "fixed", "prior_weight": 0.7, "crop_size": 64, "weights": "a/b.pth"},
    )
    assert benchmark.parse_spec("optical-flow[reference=previous-frame]") == (
        "optical-flow",
        {"reference": "previous-frame"},
    )
    assert benchmark.parse_spec("xmem[flow-fallback=off]")[1] == {"flow_fallback": False}
    for bad, reason in [
        ("xmem[nope=1]", "not a setting of xmem"),
        ("xmem[motion-crop=maybe]", "takes a bool"),
        ("copy@w.pth", "takes no weights"),
        ("xmem[prior-weight=2]", "prior_weight must be in"),
        ("xmem[motion=off", "is not NAME"),
    ]:
        with pytest.raises(ValueError, match=reason):
            benchmark.check_spec(bad)


def test_spec_rows_are_labelled_by_their_spec_and_timed_against_the_reference(
    tiny_dataset, random_weights, tmp_path, monkeypatch, in_process
):
    monkeypatch.delenv(ENV_VAR, raising=False)  # the weights come from the specs only
    alone = f"xmem[crop-size=64,frozen-graphs=off,motion=off]@{random_weights}"
    motion = f"xmem[crop-size=64,frozen-graphs=off,motion=first-frame,flow-fallback=on]@{random_weights}"
    out = tmp_path / "bench"
    benchmark.main([str(tiny_dataset), "--trackers", f"copy,{motion},{alone}", "--out", str(out), "--reference", alone])
    with open(out / "table.csv") as handle:
        rows = {row["tracker"]: row for row in csv.DictReader(handle)}
    assert list(rows) == ["copy", motion, alone]
    assert all(row["cases"] == "2" and not row["note"].startswith("skipped") for row in rows.values())
    assert float(rows[alone]["time_vs_xmem"]) == pytest.approx(1.0)
    expected = float(rows[motion]["median_ms"]) / float(rows[alone]["median_ms"])
    assert float(rows[motion]["time_vs_xmem"]) == pytest.approx(expected, rel=0.01)
    with open(out / "cases.csv") as handle:
        assert {row["tracker"] for row in csv.DictReader(handle)} == set(rows)


def test_motion_ablation_script_switches_on_one_part_per_row(tmp_path):
    """scripts/motion_ablation.sh is one benchmark command whose XMem rows are XMem alone, each
    motion part alone, the default and the default with the pulled-mask centre, all timed
    against XMem alone (a stub `python` records the command instead of running it)."""
    stub = tmp_path / "bin" / "python"
    stub.parent.mkdir()
    stub.write_text('#!/bin/sh\nprintf "%s\\n" "$@" > "$ARGS_FILE"\n')
    stub.chmod(0o755)
    env = {**os.environ, "PATH": f"{stub.parent}:{os.environ['PATH']}", "ARGS_FILE": str(tmp_path / "args")}
    subprocess.run(["bash", str(REPO / "scripts" / "motion_ablation.sh"), "DATA", "OUT", "w.pth"], env=env, check=True)
    args = (tmp_path / "args").read_text().splitlines()
    assert args[:3] == ["-m", "evaluation.benchmark", "DATA"] and args[args.index("--out") + 1] == "OUT"
    assert args[args.index("--reference") + 1] == "xmem[motion=off]@w.pth"
    specs = benchmark.split_specs(args[args.index("--trackers") + 1])
    assert specs[:3] == ["copy", "optical-flow", "template"]
    parts, centres = [], []
    for spec in specs[3:]:
        benchmark.check_spec(spec)
        name, settings = benchmark.parse_spec(spec)
        assert name == "xmem" and settings.pop("weights") == "w.pth"
        parts.append(XMemSettings(**settings).motion_parts().names())
        centres.append(XMemSettings(**settings).motion.flow_centre)
    assert centres[-2:] == ["two-way", "pulled"]
    assert parts == [
        [],
        ["crop"],
        ["prior"],
        ["prior", "trust"],
        ["trust", "align"],  # the trust steers the alignment and the guards as in the default
        ["trust", "guards", "fallback"],
        XMemSettings().motion_parts().names(),
        XMemSettings().motion_parts().names(),
    ]


def test_bad_spec_is_one_error_line_before_running(tiny_dataset, tmp_path, capsys):
    with pytest.raises(SystemExit):
        benchmark.main([str(tiny_dataset), "--trackers", "copy,xmem[motion=sideways]", "--out", str(tmp_path)])
    assert "motion must be one of" in capsys.readouterr().err
    assert not (tmp_path / "table.csv").exists()


@pytest.mark.parametrize("trackers", ["", " , "])
def test_a_tracker_list_that_names_none_is_a_usage_error(tiny_dataset, tmp_path, capsys, trackers):
    with pytest.raises(SystemExit) as stopped:
        benchmark.main([str(tiny_dataset), "--trackers", trackers, "--out", str(tmp_path)])
    assert stopped.value.code == 2 and "--trackers names no tracker" in capsys.readouterr().err
    assert not (tmp_path / "table.csv").exists()


def test_dataset_without_cases_is_one_error_line(tmp_path, capsys):
    assert benchmark.main([str(tmp_path), "--trackers", "copy", "--out", str(tmp_path / "out")]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith(f"error: {tmp_path}: no case folder")


def test_a_case_with_an_undefined_metric_is_left_out_of_the_mean_and_counted():
    def case(case_id: str, dsc: float, rel_d98: float) -> benchmark.CaseRun:
        scores = dict(dsc=dsc, hd95=1.0, masd=0.5, cd=0.5, rel_d98=rel_d98)
        return benchmark.CaseRun(case_id, 4.0, scores, [dsc], [0.001], {})

    run = benchmark.TrackerRun("copy", [case("A", 0.8, float("nan")), case("B", 0.6, 0.9)], peak_rss_mib=100)
    row = benchmark.summarise([run])[0]
    assert row["dsc"] == "0.700" and row["rel_d98"] == "0.900"
    assert row["note"] == "undefined_rel_d98=1"
    assert [r["rel_d98"] for r in benchmark.case_rows([run])] == ["nan", "0.900"]


def test_frame_dsc_per_frame():
    truth = np.zeros((8, 8, 3), np.uint8)
    truth[2:6, 2:6, :2] = 1
    pred = truth.copy()
    pred[:, :, 1] = 0
    pred[0:2, 0:2, 1] = 1
    np.testing.assert_allclose(dice_per_frame(pred, truth), [1.0, 0.0, np.nan])


def _moving_square(n_frames: int = 5):
    frames = np.zeros((40, 50, n_frames), np.float32)
    masks = np.zeros(frames.shape, np.uint8)
    for t in range(n_frames):
        frames[10 + t : 20 + t, 10:20, t] = 1.0
        masks[10 + t : 20 + t, 10:20, t] = 1
    return frames, masks


def test_overlay_gif_and_mp4_show_contours(tmp_path):
    frames, masks = _moving_square()
    gif = write_overlay(frames, masks, tmp_path / "seq.gif", truth=masks, fps=4.0)
    image = Image.open(gif)
    assert image.n_frames == 5 and image.info["duration"] == 250
    # Enlarged to at least 256 px; the contour colours are present.
    rgb = np.asarray(image.convert("RGB"))
    assert min(rgb.shape[:2]) >= 256
    assert ((rgb[:, :, 1] > 150) & (rgb[:, :, 2] < 120)).any()  # green truth / amber prediction
    mp4 = write_overlay(frames, masks, tmp_path / "seq.mp4")
    capture = cv2.VideoCapture(str(mp4))
    assert int(capture.get(cv2.CAP_PROP_FRAME_COUNT)) == 5
    with pytest.raises(ValueError):
        write_overlay(frames, masks, tmp_path / "seq.avi")


def test_montage_and_line_chart(tmp_path):
    frames, masks = _moving_square(10)
    montage = cv2.imread(str(write_montage(frames, masks, tmp_path / "m.png", count=6, columns=3)))
    single = 256 // 40 + 1  # zoom factor for a 40-pixel side
    assert montage.shape[:2] == (2 * 40 * single, 3 * 50 * single)
    chart = write_line_chart({"a": ([0, 1, 2], [0.2, 0.5, 0.9])}, tmp_path / "c.png", "t", "x", "y")
    picture = cv2.imread(str(chart))
    assert picture.shape == (500, 900, 3) and (picture < 250).any()
