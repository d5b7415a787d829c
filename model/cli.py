"""The entry point's command line (inference.py), shared with the harness that runs it."""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path
from typing import Any

from model.settings import GroupedSettings, add_settings_options
from model.trackers import available_trackers, tracker_class

DESCRIPTION = "TrackRAD2025 entry point: read a case, track the first-frame mask through it, write the masks."
DEFAULT_TRACKER = "xmem"
DEFAULT_INPUT = Path("/input")
DEFAULT_OUTPUT = Path("/output")


def build_parser(tracker: str, defaults: dict[str, Any] | None = None) -> tuple[argparse.ArgumentParser, list[str]]:
    """The entry point's options with those of `tracker`'s settings (their defaults from
    `defaults` where it has them: a settings file's), and the settings' names."""
    parser = argparse.ArgumentParser(
        description=DESCRIPTION,
        epilog=f"Each tracker has its own settings: `inference.py --tracker NAME --help` lists "
        f"them (NAME: {', '.join(available_trackers())}).",
    )
    source = parser.add_mutually_exclusive_group()
    source.add_argument(
        "--input", type=Path, default=DEFAULT_INPUT, help="grand-challenge input folder (default /input)"
    )
    source.add_argument("--case", type=Path, help="a case folder in the dataset layout (images/, targets/, *.json)")
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT, help="output folder (default /output)")
    parser.add_argument(
        "--tracker",
        default=DEFAULT_TRACKER,
        choices=available_trackers(),
        help=f"tracker to run (default {DEFAULT_TRACKER}; copy = no tracking)",
    )
    parser.add_argument("--report", type=Path, help="write timings, settings and events as JSON")
    parser.add_argument(
        "--settings",
        type=Path,
        help="a settings file (python -m evaluation.calibrate) whose settings become the defaults; "
        "else $TRACKRAD_SETTINGS, /opt/ml/model/pipeline.json, resources/pipeline.json, the built-in ones",
    )
    parser.add_argument(
        "--overlay",
        type=Path,
        help="write the sequence with the predicted contour (and, with --case, "
        "the ground truth) as an animated .gif or .mp4, plus a .png montage",
    )
    settings_cls = tracker_class(tracker).Settings
    names = []
    if settings_cls is not None and issubclass(settings_cls, GroupedSettings):
        # One heading per group in --help: "xmem motion settings", ...
        for field in dataclasses.fields(settings_cls):
            group_cls = field.metadata["group"]
            group = parser.add_argument_group(f"{tracker} {field.name} settings", _first_paragraph(group_cls.__doc__))
            names += add_settings_options(group, group_cls, defaults=defaults)
    elif settings_cls is not None:
        group = parser.add_argument_group(f"{tracker} settings")
        names = add_settings_options(group, settings_cls, defaults=defaults)
    else:
        parser.add_argument_group(f"{tracker} settings", f"none: the {tracker} tracker has no settings")
    return parser, names


def _first_paragraph(text: str | None) -> str | None:
    return " ".join(text.strip().split("\n\n")[0].split()) if text else None


def explain_unknown_options(unknown: list[str], tracker: str) -> str:
    """The usage error for arguments `tracker`'s parser does not know: an option that is another
    tracker's setting says which tracker it belongs to (`--weights` is XMem's)."""
    for argument in unknown:
        option = argument.split("=", 1)[0]
        if option == "--network":
            return (
                "--network: stand-in networks are built from a case's labels, so they exist only in "
                'the benchmark (python -m evaluation.benchmark DATASET --trackers "xmem[network=exact]")'
            )
        owners = [
            name
            for name in available_trackers()
            if name != tracker and option in build_parser(name)[0]._option_string_actions
        ]
        if owners:
            return (
                f"{option} is a setting of the {' and '.join(owners)} tracker, not of {tracker}: "
                f"add --tracker {owners[0]} (see `--tracker {owners[0]} --help`)"
            )
    return f"unrecognized arguments: {' '.join(unknown)}"
