"""TrackRAD2025 entry point: read a case, track the first-frame mask through it, write the masks.

With no arguments it reads /input and writes /output, as grand-challenge mounts them.
Only I/O and orchestration live here; see model/ for the reading, the tracking and the metrics.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from model.errors import InputError
from model.io import (
    Case,
    CaseError,
    dataset_case_id,
    prepare_output,
    read_case,
    read_dataset_case,
    read_labels,
    write_output,
)
from model.runner import run_tracker, time_summary
from model.trackers import add_settings_options, available_trackers, build_tracker, tracker_class

DEFAULT_TRACKER = "copy"  # becomes "xmem" once the project's own weights pass their bar (docs/training.md)
DEFAULT_INPUT = Path("/input")
DEFAULT_OUTPUT = Path("/output")
OVERLAY_SUFFIXES = (".gif", ".mp4")


def main(argv: list[str] | None = None) -> int:
    """Run one case; returns the process exit code (0 ok, 1 bad input or output, 2 usage)."""
    args, settings = _parse_args(sys.argv[1:] if argv is None else argv)
    try:
        return _run(args, settings)
    except InputError as error:  # bad case files, weights or settings: one line, no traceback
        print(f"error: {error}", file=sys.stderr)
        return 1


def _run(args: argparse.Namespace, settings: dict[str, Any]) -> int:
    started = time.perf_counter()
    _check_report_path(args.report)
    case = read_dataset_case(args.case) if args.case else read_case(args.input)
    for warning in case.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    prepare_output(args.output)  # fail before tracking, not after
    tracker = build_tracker(args.tracker, **settings)
    loading = time.perf_counter() - started

    result = run_tracker(tracker, case.frames, case.first_mask, case.info)
    if result.tracker_error:
        print(f"warning: the {args.tracker} tracker failed; the last good mask fills the "
              f"remaining frames. {result.tracker_error}", file=sys.stderr)

    writing_started = time.perf_counter()
    path = write_output(args.output, result.masks, case)
    writing = time.perf_counter() - writing_started

    frame_stats = time_summary(result.frame_seconds)
    width, height, n_frames = case.frames.shape
    print(f"loading: {loading:.3f} s ({case.image_path.name}, {width}x{height}, {n_frames} frames)")
    print(
        f"per frame ({args.tracker}): median {frame_stats['median'] * 1e3:.3f} ms, "
        f"p95 {frame_stats['p95'] * 1e3:.3f} ms, max {frame_stats['max'] * 1e3:.3f} ms"
    )
    print(f"writing: {writing:.3f} s ({path})")
    if args.overlay:
        for picture in _write_pictures(args, case, result.masks):
            print(f"overlay: {picture}")
    if args.report:
        events = dict(tracker.events())
        for key, count in result.events.items():
            events[key] = events.get(key, 0) + count
        if case.nonfinite_pixels:
            events["nonfinite_pixels"] = case.nonfinite_pixels
        _write_report(args.report, {
            "tracker": args.tracker,
            # The chosen settings, then what the tracker resolved for this case ('auto' values,
            # the weights file, the device).
            "settings": {**_settings_dict(args.tracker, settings), **tracker.settings()},
            "input": str(case.image_path),
            "output": str(path),
            "n_frames": n_frames,
            "loading_seconds": loading,
            "frame_seconds": frame_stats,
            "writing_seconds": writing,
            "total_seconds": time.perf_counter() - started,
            "events": events,
            "warnings": case.warnings,
        })
    return 0


def _parse_args(argv: list[str]) -> tuple[argparse.Namespace, dict[str, Any]]:
    # Phase 1: only --tracker, to know which Settings fields become options in phase 2.
    pre = argparse.ArgumentParser(add_help=False)
    pre.add_argument("--tracker", default=DEFAULT_TRACKER, choices=available_trackers())
    known, _ = pre.parse_known_args(argv)

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--input", type=Path, default=DEFAULT_INPUT,
                        help="grand-challenge input folder (default /input)")
    source.add_argument("--case", type=Path,
                        help="a case folder in the dataset layout (images/, targets/, *.json)")
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT,
                        help="output folder (default /output)")
    parser.add_argument("--tracker", default=DEFAULT_TRACKER, choices=available_trackers(),
                        help=f"tracker to run (default {DEFAULT_TRACKER}; copy = no tracking)")
    parser.add_argument("--report", type=Path, help="write timings, settings and events as JSON")
    parser.add_argument("--overlay", type=Path,
                        help="write the sequence with the predicted contour (and, with --case, "
                             "the ground truth) as an animated .gif or .mp4, plus a .png montage")
    settings_cls = tracker_class(known.tracker).Settings
    names = []
    if settings_cls is not None:
        names = add_settings_options(parser.add_argument_group(f"{known.tracker} settings"), settings_cls)
    args = parser.parse_args(argv)
    if args.overlay is not None and args.overlay.suffix.lower() not in OVERLAY_SUFFIXES:
        parser.error(f"--overlay {args.overlay}: the file must end in .gif or .mp4")
    settings = {name: getattr(args, name) for name in names}
    return args, settings


def _settings_dict(tracker_name: str, settings: dict[str, Any]) -> dict[str, Any]:
    settings_cls = tracker_class(tracker_name).Settings
    return dataclasses.asdict(settings_cls(**settings)) if settings_cls is not None else {}


def _write_pictures(args: argparse.Namespace, case: Case, masks: np.ndarray) -> list[Path]:
    """The animated overlay and its PNG montage; ground truth drawn when a --case has labels."""
    from model.overlay import write_montage, write_overlay  # pictures only: not on the hot path

    truth = None
    if args.case and (args.case / "targets" / f"{dataset_case_id(args.case)}_labels.mha").is_file():
        truth = read_labels(args.case)
    montage = args.overlay.with_suffix(".png")
    try:
        return [
            write_overlay(case.frames, masks, args.overlay, truth=truth, fps=case.info.frame_rate),
            write_montage(case.frames, masks, montage, truth=truth),
        ]
    except OSError as error:
        raise CaseError(f"{args.overlay}: cannot write the overlay ({error.strerror or error})") from None


def _check_report_path(report: Path | None) -> None:
    if report is None:
        return
    folder = report.parent
    try:  # created like the output folder (the report often goes inside it)
        folder.mkdir(parents=True, exist_ok=True)
    except OSError:
        raise CaseError(f"{report}: cannot create the report folder") from None
    if not os.access(folder, os.W_OK):
        raise CaseError(f"{report}: report folder not writable")


def _write_report(report: Path, content: dict[str, Any]) -> None:
    temporary = report.with_name(report.name + ".tmp")
    try:
        temporary.write_text(json.dumps(content, indent=2) + "\n")
        os.replace(temporary, report)
    except OSError as error:
        raise CaseError(f"{report}: cannot write report ({error.strerror})") from None


if __name__ == "__main__":
    sys.exit(main())
