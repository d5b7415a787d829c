"""TrackRAD2025 entry point: read a case, track the first-frame mask through it, write the masks.

With no arguments it reads /input and writes /output, as grand-challenge mounts them.
Only I/O and orchestration live here; see model/ for the reading, the tracking and the metrics.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from model.atomic import write_atomically
from model.cli import DEFAULT_TRACKER, build_parser, explain_unknown_options
from model.device import emulated_bf16_warning
from model.errors import printed_warnings, run_command, warn
from model.io import (
    OUTPUT_FOLDER,
    Case,
    CaseError,
    dataset_case_id,
    prepare_output,
    read_case,
    read_dataset_case,
    read_labels,
    write_output,
)
from model.progress import Progress
from model.runner import run_tracker, time_summary
from model.settings import setting_values
from model.settings_file import SettingsFileError, resolve_settings
from model.trackers import available_trackers, build_tracker, tracker_class
from model.weights import PROJECT_WEIGHTS_WARNING

OVERLAY_SUFFIXES = (".gif", ".mp4")


def main(argv: list[str] | None = None) -> int:
    """Run one case; returns the process exit code (0 ok, 1 bad input or output, 2 usage)."""
    args, settings = _parse_args(sys.argv[1:] if argv is None else argv)
    # Bad case files, weights, settings or output places: one line, no traceback.
    return run_command(lambda: _run(args, settings))


def _run(args: argparse.Namespace, settings: dict[str, Any]) -> int:
    # A run that fails removes the folders it created and left empty.
    places = [args.output / OUTPUT_FOLDER, *(path.parent for path in (args.report, args.overlay) if path)]
    created = _missing_folders(places)
    try:
        return _track(args, settings)
    except BaseException:
        for folder in created:
            with contextlib.suppress(OSError):
                folder.rmdir()
        raise


def _track(args: argparse.Namespace, settings: dict[str, Any]) -> int:
    started = time.perf_counter()
    _check_folder_for(args.report, "report")
    _check_folder_for(args.overlay, "overlay")  # found before tracking, not after
    case = read_dataset_case(args.case) if args.case else read_case(args.input)
    for warning in case.warnings:
        warn(warning)
    prepare_output(args.output)  # fail before tracking, not after
    tracker = build_tracker(args.tracker, **settings)
    environment = tracker.describe()
    if environment:  # what this run's result depends on, before the first frame
        shown = {**environment, "weights_sha256": environment.get("weights_sha256", "")[:12]}
        print(f"{args.tracker}: " + ", ".join(f"{key} {value}" for key, value in shown.items() if value))
    print(f"settings: {args.settings_from.summary()}")
    other_weights = args.settings_from.weights_warning(environment.get("weights_sha256", ""))
    if other_weights:
        warn(other_weights)
    if environment.get("weights_kind") == "project":
        warn(PROJECT_WEIGHTS_WARNING)
    slow = emulated_bf16_warning(environment.get("precision", ""), environment.get("device", "").split(" ")[0])
    if slow:
        warn(slow)
    loading = time.perf_counter() - started

    # Live progress on a terminal only: the per-frame line below is the summary.
    with Progress(args.tracker, case.frames.shape[2] - 1, summary=False) as progress:
        result = run_tracker(tracker, case.frames, case.first_mask, case.info, on_frame=progress.advance)
    if result.tracker_error:  # one line here; the traceback goes into the report
        where, _, trace = result.tracker_error.partition(": ")
        warn(
            f"the {args.tracker} tracker failed at {where} ({trace.strip().splitlines()[-1]}); "
            "the last good mask fills the remaining frames"
        )

    writing_started = time.perf_counter()
    path = write_output(args.output, result.masks, case)
    writing = time.perf_counter() - writing_started

    frame_stats = time_summary(result.frame_seconds)
    width, height, n_frames = case.frames.shape
    print(f"loading: {loading:.3f} s ({case.image_path.name}, {width}x{height}, {n_frames} frames)")
    resolved = tracker.settings().get("resolved", {})
    if "grid_px" in resolved:  # the network's share of the time goes with its grid's area
        box = "x".join(str(side) for side in resolved["crop_box_size_px"])
        print(f"network grid: {resolved['grid_px']} px a side (crop window {box} frame pixels)")
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
        if case.blank_frames:
            events["blank_frames"] = case.blank_frames
        _write_report(
            args.report,
            {
                "tracker": args.tracker,
                # The chosen settings, then what the tracker resolved for this case ('auto' values,
                # the weights file, the device).
                "settings": {**_settings_dict(args.tracker, settings), **tracker.settings()},
                "settings_file": args.settings_from.record(),
                "environment": environment,
                "input": str(case.image_path),
                "output": str(path),
                "n_frames": n_frames,
                "loading_seconds": loading,
                "frame_seconds": frame_stats,
                "writing_seconds": writing,
                "total_seconds": time.perf_counter() - started,
                "events": events,
                "warnings": printed_warnings(),
                "tracker_error": result.tracker_error,
            },
        )
    return 0


def _parse_args(argv: list[str]) -> tuple[argparse.Namespace, dict[str, Any]]:
    # Phase 1: only --tracker, to know which Settings fields become options in phase 2.
    pre = argparse.ArgumentParser(add_help=False)
    pre.add_argument("--tracker", default=DEFAULT_TRACKER, choices=available_trackers())
    pre.add_argument("--settings", type=Path)
    known, _ = pre.parse_known_args(argv)
    try:  # the resolved file's settings become the options' defaults
        resolved = resolve_settings(known.tracker, known.settings)
    except SettingsFileError as error:
        pre.exit(1, f"error: {error}\n")
    parser, names = build_parser(known.tracker, resolved.settings)
    args, unknown = parser.parse_known_args(argv)
    args.settings_from = resolved
    if unknown:
        parser.error(explain_unknown_options(unknown, known.tracker))
    if args.overlay is not None and args.overlay.suffix.lower() not in OVERLAY_SUFFIXES:
        parser.error(f"--overlay {args.overlay}: the file must end in .gif or .mp4")
    settings = {name: getattr(args, name) for name in names}
    return args, settings


def _settings_dict(tracker_name: str, settings: dict[str, Any]) -> dict[str, Any]:
    settings_cls = tracker_class(tracker_name).Settings
    return setting_values(settings_cls(**settings)) if settings_cls is not None else {}


def _write_pictures(args: argparse.Namespace, case: Case, masks: np.ndarray) -> list[Path]:
    """The animated overlay and its PNG montage; ground truth drawn when a --case has labels."""
    from model.overlay import write_montage, write_overlay  # pictures only: not on the hot path

    truth = None
    if args.case and (args.case / "targets" / f"{dataset_case_id(args.case)}_labels.mha").is_file():
        truth = read_labels(args.case)
    return [
        write_overlay(case.frames, masks, args.overlay, truth=truth, fps=case.info.frame_rate),
        write_montage(case.frames, masks, args.overlay.with_suffix(".png"), truth=truth),
    ]


def _check_folder_for(path: Path | None, what: str) -> None:
    """Create the folder of the `what` file `path` and check it is writable."""
    if path is None:
        return
    folder = path.parent
    try:  # created like the output folder (the report often goes inside it)
        folder.mkdir(parents=True, exist_ok=True)
    except OSError:
        raise CaseError(f"{path}: cannot create the {what} folder") from None
    if not os.access(folder, os.W_OK):
        raise CaseError(f"{path}: {what} folder not writable")


def _missing_folders(folders: list[Path]) -> list[Path]:
    """The folders among `folders` and their parents that do not exist yet, deepest first."""
    missing: set[Path] = set()
    for folder in folders:
        folder = folder.absolute()
        while not folder.exists() and folder != folder.parent:
            missing.add(folder)
            folder = folder.parent
    return sorted(missing, key=lambda path: len(path.parts), reverse=True)


def _write_report(report: Path, content: dict[str, Any]) -> None:
    text = json.dumps(content, indent=2) + "\n"
    write_atomically(
        report, lambda temporary: temporary.write_text(text), check=lambda temporary: json.loads(temporary.read_text())
    )


if __name__ == "__main__":
    sys.exit(main())
