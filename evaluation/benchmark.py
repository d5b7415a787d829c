"""Benchmark trackers against each other on a labelled dataset folder: each tracker in its own
fresh process, one after the other, scored with the challenge's metrics and timed per frame.

    python -m evaluation.benchmark DATASET_DIR --trackers copy,optical-flow,template,xmem --out DIR
        [--overlays] [--reference SPEC]

A tracker spec is NAME[setting=value,...]@WEIGHTS, brackets and weights optional
(xmem[motion=off], xmem@resources/trackrad-xmem.pth). Writes DIR/table.csv, table.md, cases.csv,
dsc_over_time.png. From Python: run_benchmark, benchmark_tracker, parse_spec. See docs/benchmark.md.
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import multiprocessing
import re
import resource
import sys
from collections import Counter
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from evaluation.evaluate import evaluate_case
from evaluation.metrics import METRICS, dice_per_frame, mean_over_cases
from evaluation.standins import STAND_INS, stand_in_tracker
from model.atomic import write_atomically
from model.errors import run_command
from model.io import find_case_dirs, read_dataset_case, read_labels
from model.overlay import write_line_chart, write_montage, write_overlay
from model.progress import Progress
from model.runner import time_summary
from model.settings import setting_fields, value_kind, value_parser
from model.trackers import available_trackers, build_tracker
from model.trackers.registry import tracker_class

DEFAULT_TRACKERS = "copy,optical-flow,template,xmem"
REFERENCE_TRACKER = "xmem"  # time_vs_xmem is relative to the first row of this tracker by default
_SPEC = re.compile(r"^(?P<name>[a-z0-9-]+)(\[(?P<settings>[^\]]*)\])?(@(?P<weights>.+))?$")
NETWORK_KEY = "network"
NETWORKS = ("xmem", *STAND_INS)
COLUMNS = (
    "tracker",
    "cases",
    *(metric.column for metric in METRICS),
    "median_ms",
    "p95_ms",
    "peak_rss_mib",
    "peak_gpu_mib",
    "time_vs_xmem",
    "note",
)
CASE_COLUMNS = ("tracker", "case", "frames", *(metric.column for metric in METRICS), "events")


def split_specs(text: str) -> list[str]:
    """Split a comma-separated list of tracker specs, keeping commas inside brackets."""
    specs, depth, current = [], 0, ""
    for char in text:
        depth += {"[": 1, "]": -1}.get(char, 0)
        if char == "," and depth == 0:
            specs.append(current.strip())
            current = ""
        else:
            current += char
    specs.append(current.strip())
    return [spec for spec in specs if spec]


def parse_spec(spec: str) -> tuple[str, dict[str, object]]:
    """A tracker spec (module docstring) -> (registry name, settings); ValueError if invalid."""
    match = _SPEC.match(spec.strip())
    if match is None:
        raise ValueError(f"tracker spec {spec!r} is not NAME, NAME[key=value,...] or NAME...@WEIGHTS")
    name = match["name"]
    if name not in available_trackers():
        raise ValueError(f"unknown tracker {name!r} in {spec!r}; choose from {available_trackers()}")
    settings_cls = tracker_class(name).Settings
    fields = {f.name: f for f in setting_fields(settings_cls)} if settings_cls is not None else {}
    settings: dict[str, object] = {}
    for item in filter(None, (part.strip() for part in (match["settings"] or "").split(","))):
        key, equals, value = item.partition("=")
        field_name = key.strip().replace("-", "_")
        if field_name == NETWORK_KEY and equals and name == "xmem":
            if value.strip() not in NETWORKS:
                raise ValueError(f"{spec!r}: network takes one of {', '.join(NETWORKS)}, got {value.strip()!r}")
            settings[NETWORK_KEY] = value.strip()
            continue
        if not equals or field_name not in fields:
            raise ValueError(
                f"{spec!r}: {item!r} is not a setting of {name} (key=value; "
                f"settings: {', '.join(f.replace('_', '-') for f in fields) or 'none'})"
            )
        settings[field_name] = _convert(fields[field_name], value.strip(), spec)
    if match["weights"]:
        if "weights" not in fields:
            raise ValueError(f"{spec!r}: tracker {name} takes no weights file")
        settings["weights"] = match["weights"]
    return name, settings


def split_network(settings: dict[str, object]) -> tuple[str | None, dict[str, object]]:
    """(the stand-in network a spec names, or None for the real one; the tracker's settings)."""
    rest = dict(settings)
    network = rest.pop(NETWORK_KEY, "xmem")
    return (None if network == "xmem" else str(network)), rest


def _convert(setting: dataclasses.Field, value: str, spec: str) -> object:
    try:
        return value_parser(setting)(value)
    except ValueError:
        kind = value_kind(setting)
        raise ValueError(f"{spec!r}: {setting.name.replace('_', '-')} takes a {kind}, got {value!r}") from None


def checked_specs(parser: argparse.ArgumentParser, text: str) -> list[str]:
    """The specs of a --trackers argument, each checked (`check_spec`); a usage error (exit 2)
    when it names none or a bad one, before anything runs."""
    specs = split_specs(text)
    if not specs:
        parser.error("--trackers names no tracker")
    for spec in specs:
        try:
            check_spec(spec)
        except ValueError as error:
            parser.error(str(error))
    return specs


def check_spec(spec: str) -> None:
    """Raise ValueError (with the reason) if the spec names no tracker or invalid settings.

    Builds only the Settings, not the tracker, so no weights are loaded here.
    """
    name, settings = parse_spec(spec)
    settings = split_network(settings)[1]
    settings_cls = tracker_class(name).Settings
    if settings_cls is not None:
        try:
            settings_cls(**{k: v for k, v in settings.items() if k != "weights"})
        except (TypeError, ValueError) as error:
            raise ValueError(f"{spec!r}: {error}") from None


@dataclass
class CaseRun:
    case_id: str
    frame_rate: float
    scores: dict[str, float]  # score_sequence's means
    frame_dsc: list[float]  # DSC of frames 1..T-1 (NaN where the truth is empty)
    frame_seconds: list[float]
    events: dict[str, int]


@dataclass
class TrackerRun:
    name: str
    cases: list[CaseRun] = field(default_factory=list)
    peak_rss_mib: float = float("nan")
    peak_gpu_mib: float = float("nan")
    skipped: str = ""  # why the tracker could not run, empty if it ran


def benchmark_tracker(spec: str, case_dirs: list[Path], overlay_dir: Path | None) -> TrackerRun:
    """Run one tracker spec over the cases; meant to run alone in a fresh process (module doc)."""
    run = TrackerRun(spec)
    try:
        name, settings = parse_spec(spec)
        stand_in, settings = split_network(settings)
        tracker = None if stand_in else build_tracker(name, **settings)
    except Exception as error:  # any build failure (missing module, weights) is reported, not raised
        run.skipped = f"{type(error).__name__}: {error}"
        return run
    progress = Progress(spec, len(case_dirs), unit="case")  # stderr: a live line, or one summary
    for case_dir in case_dirs:
        if stand_in:
            tracker = stand_in_tracker(stand_in, settings, read_labels(case_dir), read_dataset_case(case_dir).frames)
        evaluated = evaluate_case(tracker, case_dir)
        case, result, truth = evaluated.case, evaluated.result, evaluated.truth
        run.cases.append(
            CaseRun(
                case_id=evaluated.case_id,
                frame_rate=case.info.frame_rate,
                scores=evaluated.scores,
                frame_dsc=dice_per_frame(result.masks, truth)[1:].tolist(),
                frame_seconds=result.frame_seconds,
                events={**tracker.events(), **result.events},
            )
        )
        if overlay_dir is not None:
            folder = overlay_dir / evaluated.case_id
            stem = re.sub(r"[^A-Za-z0-9.=-]+", "_", spec)
            write_overlay(case.frames, result.masks, folder / f"{stem}.gif", truth, fps=case.info.frame_rate)
            write_montage(case.frames, result.masks, folder / f"{stem}.png", truth)
        progress.advance()
    progress.close()
    run.peak_rss_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
    torch = sys.modules.get("torch")
    if torch is not None and torch.cuda.is_available() and torch.cuda.is_initialized():
        run.peak_gpu_mib = torch.cuda.max_memory_allocated() / 2**20
    return run


def default_reference(specs: list[str]) -> str | None:
    """The first spec of the reference tracker (XMem), else None."""
    return next((spec for spec in specs if parse_spec(spec)[0] == REFERENCE_TRACKER), None)


def summarise(runs: list[TrackerRun], reference_spec: str | None = None) -> list[dict[str, str]]:
    """One formatted table row (COLUMNS) per tracker; times relative to `reference_spec`'s row
    (default: the first XMem row)."""
    medians = {run.name: _median_ms(run) for run in runs}
    if reference_spec is None:
        reference_spec = default_reference([run.name for run in runs])
    reference = medians.get(reference_spec, float("nan"))
    rows = []
    for run in runs:
        row = dict.fromkeys(COLUMNS, "")
        row["tracker"] = run.name
        row["cases"] = str(len(run.cases))
        if run.skipped:
            row["note"] = f"skipped: {run.skipped}"
            rows.append(row)
            continue
        averaged = mean_over_cases([c.scores for c in run.cases])
        row.update(_metric_cells(averaged.means))
        times = time_summary(np.concatenate([c.frame_seconds for c in run.cases]))
        row.update(
            median_ms=f"{times['median'] * 1000:.3f}",
            p95_ms=f"{times['p95'] * 1000:.3f}",
            peak_rss_mib=f"{run.peak_rss_mib:.0f}",
            peak_gpu_mib="" if np.isnan(run.peak_gpu_mib) else f"{run.peak_gpu_mib:.0f}",
            # Significant digits, not decimals: fast peers are thousands of times quicker.
            time_vs_xmem="" if np.isnan(reference) else f"{medians[run.name] / reference:.3g}",
        )
        totals = sum((Counter(c.events) for c in run.cases), Counter())
        notes = [f"{k}={v}" for k, v in sorted(totals.items()) if v]
        notes += [f"undefined_{m.key}={averaged.left_out[m.key]}" for m in METRICS if averaged.left_out[m.key]]
        row["note"] = ", ".join(notes)
        rows.append(row)
    return rows


def case_rows(runs: list[TrackerRun]) -> list[dict[str, str]]:
    """One formatted row (CASE_COLUMNS) per tracker and case, in run order."""
    rows = []
    for run in runs:
        for case in run.cases:
            rows.append(
                {
                    "tracker": run.name,
                    "case": case.case_id,
                    "frames": str(len(case.frame_dsc) + 1),
                    **_metric_cells(case.scores),
                    "events": ", ".join(f"{k}={v}" for k, v in sorted(case.events.items()) if v),
                }
            )
    return rows


def _metric_cells(values: dict[str, float]) -> dict[str, str]:
    """Metric values by key -> formatted cells by column title (evaluation.metrics.METRICS)."""
    return {m.column: f"{values[m.key]:{m.format}}" for m in METRICS}


def format_text(rows: list[dict[str, str]]) -> str:
    """A fixed-width table for the terminal."""
    widths = {c: max(len(c), *(len(r[c]) for r in rows)) for c in COLUMNS}
    lines = ["  ".join(c.ljust(widths[c]) for c in COLUMNS)]
    lines += ["  ".join(r[c].ljust(widths[c]) for c in COLUMNS) for r in rows]
    return "\n".join(line.rstrip() for line in lines)


def format_markdown(rows: list[dict[str, str]]) -> str:
    lines = ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    lines += ["| " + " | ".join(r[c].replace("|", "/") for c in COLUMNS) + " |" for r in rows]
    return "\n".join(lines) + "\n"


def dsc_over_time(runs: list[TrackerRun]) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Per tracker, (bin centre seconds, mean DSC) over all cases' frames, time-binned."""
    curves: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    for run in runs:
        if not run.cases:
            continue
        times = np.concatenate([np.arange(1, len(c.frame_dsc) + 1) / c.frame_rate for c in run.cases])
        values = np.concatenate([c.frame_dsc for c in run.cases])
        width = max(1.0, float(np.ceil(times.max() / 150)))  # at most ~150 points per line
        bins = (times // width).astype(int)
        keep = np.isfinite(values)
        totals = np.bincount(bins[keep], values[keep])
        counts = np.bincount(bins[keep])
        filled = counts > 0
        curves[run.name] = ((np.flatnonzero(filled) + 0.5) * width, totals[filled] / counts[filled])
    return curves


def run_benchmark(
    dataset: Path, trackers: list[str], out: Path, overlays: bool = False, reference: str | None = None
) -> list[dict[str, str]]:
    """Run every tracker spec (each in a fresh spawned process), write the outputs, return the rows."""
    case_dirs = find_case_dirs(Path(dataset))
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    runs = []
    for spec in trackers:
        runs.append(benchmark_in_fresh_process(spec, case_dirs, out / "overlays" if overlays else None))
        print(f"{spec}: {'skipped (' + runs[-1].skipped + ')' if runs[-1].skipped else 'done'}", flush=True)
        # After every row, so a long run that is stopped still leaves the rows it finished.
        rows = write_outputs(runs, out, reference, len(case_dirs))
    return rows


def benchmark_in_fresh_process(spec: str, case_dirs: list[Path], overlay_dir: Path | None = None) -> TrackerRun:
    """`benchmark_tracker` in a fresh spawned process of its own, waited for."""
    with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as pool:
        return pool.submit(benchmark_tracker, spec, case_dirs, overlay_dir).result()


def write_outputs(runs: list[TrackerRun], out: Path, reference: str | None, n_cases: int) -> list[dict[str, str]]:
    """Write table.csv, table.md, cases.csv and dsc_over_time.png for the runs; return the rows."""
    rows = summarise(runs, reference)
    write_atomically(out / "table.csv", lambda temporary: _write_csv(temporary, COLUMNS, rows))
    write_atomically(out / "cases.csv", lambda temporary: _write_csv(temporary, CASE_COLUMNS, case_rows(runs)))
    write_atomically(out / "table.md", lambda temporary: temporary.write_text(format_markdown(rows)))
    write_line_chart(
        dsc_over_time(runs),
        out / "dsc_over_time.png",
        title=f"DSC over time, mean of {n_cases} cases",
        x_label="time in sequence (s)",
        y_label="DSC",
    )
    return rows


def _write_csv(path: Path, columns: tuple[str, ...], rows: list[dict[str, str]]) -> None:
    with open(path, "w", newline="") as handle:
        writer = csv.DictWriter(handle, columns)
        writer.writeheader()
        writer.writerows(rows)


def _median_ms(run: TrackerRun) -> float:
    if not run.cases:
        return float("nan")
    return time_summary(np.concatenate([c.frame_seconds for c in run.cases]))["median"] * 1000


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m evaluation.benchmark", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("dataset", type=Path, help="dataset folder (case sub-folders) or one case")
    parser.add_argument(
        "--trackers",
        default=DEFAULT_TRACKERS,
        help="comma-separated tracker specs: NAME, NAME[key=value,...], NAME...@WEIGHTS",
    )
    parser.add_argument(
        "--reference", default=None, help="the spec whose time is 1.0 in time_vs_xmem (default: the first xmem row)"
    )
    parser.add_argument("--out", type=Path, required=True, help="folder for table.csv, table.md, plots")
    parser.add_argument("--overlays", action="store_true", help="also write a GIF and PNG per case and tracker")
    args = parser.parse_args(argv)
    trackers = checked_specs(parser, args.trackers)
    if len(set(trackers)) != len(trackers):
        parser.error("each tracker spec may appear once (the spec is the row's label)")
    if args.reference is not None and args.reference not in trackers:
        parser.error(f"--reference {args.reference!r} is not one of the --trackers specs")

    def body() -> None:
        rows = run_benchmark(args.dataset, trackers, args.out, args.overlays, args.reference)
        print(format_text(rows))
        written = ", ".join(
            str(args.out / name) for name in ("table.csv", "table.md", "cases.csv", "dsc_over_time.png")
        )
        print(f"written: {written}")

    return run_command(body)  # e.g. no case folder under DATASET: one line, exit 1


if __name__ == "__main__":
    sys.exit(main())
