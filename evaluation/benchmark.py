"""Benchmark trackers against each other on a labelled dataset folder.

    python -m evaluation.benchmark DATASET_DIR --trackers copy,optical-flow,template,xmem --out DIR
        [--overlays]

Every tracker runs in its own fresh process (spawned one after the other, never in parallel,
so timings do not compete) over all cases of the dataset, through model.runner.run_tracker.
Printed and written (DIR/table.csv, DIR/table.md), one row per tracker:
- dsc, hd95_px, masd_px, cd_px, rel_d98: per-case challenge means (evaluation.metrics.score_sequence,
  first frame excluded), averaged over the cases;
- median_ms, p95_ms: the median and 95th percentile of the time of one `track` call, over all
  frames of all cases (loading and `start` excluded);
- peak_rss_mib: peak resident memory (ru_maxrss) of that tracker's worker process, which
  holds the interpreter, the imported libraries, one case at a time and the tracker. The copy
  row is the floor, so a tracker's own footprint is about its peak minus copy's;
- peak_gpu_mib: torch.cuda.max_memory_allocated in the worker, when torch ran on CUDA;
- time_vs_xmem: median_ms divided by XMem's median_ms (XMem = 1.0).
A tracker that cannot be built (e.g. XMem without weights) gets a row with the reason in `note`.
DIR/cases.csv has the same metrics per tracker and case (CASE_COLUMNS), to see which cases
decide a mean.
DIR/dsc_over_time.png plots the DSC of each frame against its time in the sequence, averaged
over the cases in one-second bins (wider for long sequences). With --overlays, every tracker
writes DIR/overlays/<case>/<tracker>.gif and .png (prediction amber, ground truth green).
"""
from __future__ import annotations

import argparse
import csv
import multiprocessing
import resource
from collections import Counter
import sys
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from model.atomic import write_atomically
from model.errors import run_command
from model.io import dataset_case_id, find_case_dirs, read_dataset_case, read_labels
from evaluation.metrics import dice_per_frame, score_sequence
from model.overlay import write_line_chart, write_montage, write_overlay
from model.runner import run_tracker, time_summary
from model.trackers import available_trackers, build_tracker

DEFAULT_TRACKERS = "copy,optical-flow,template,xmem"
REFERENCE_TRACKER = "xmem"
METRIC_KEYS = ("dsc", "hd95", "masd", "cd", "rel_d98")
COLUMNS = (
    "tracker",
    "cases",
    "dsc",
    "hd95_px",
    "masd_px",
    "cd_px",
    "rel_d98",
    "median_ms",
    "p95_ms",
    "peak_rss_mib",
    "peak_gpu_mib",
    "time_vs_xmem",
    "note",
)
CASE_COLUMNS = ("tracker", "case", "frames", "dsc", "hd95_px", "masd_px", "cd_px", "rel_d98", "events")


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


def benchmark_tracker(name: str, case_dirs: list[Path], overlay_dir: Path | None) -> TrackerRun:
    """Run one tracker over the cases; meant to run alone in a fresh process (see module doc)."""
    run = TrackerRun(name)
    try:
        tracker = build_tracker(name)
    except Exception as error:  # any build failure (missing module, weights) is reported, not raised
        run.skipped = f"{type(error).__name__}: {error}"
        return run
    for case_dir in case_dirs:
        case = read_dataset_case(case_dir)
        truth = read_labels(case_dir)
        result = run_tracker(tracker, case.frames, case.first_mask, case.info)
        case_id = dataset_case_id(case_dir)
        run.cases.append(
            CaseRun(
                case_id=case_id,
                frame_rate=case.info.frame_rate,
                scores=score_sequence(result.masks, truth, case.info.scanned_region),
                frame_dsc=dice_per_frame(result.masks, truth)[1:].tolist(),
                frame_seconds=result.frame_seconds,
                events={**tracker.events(), **result.events},
            )
        )
        if overlay_dir is not None:
            folder = overlay_dir / case_id
            write_overlay(case.frames, result.masks, folder / f"{name}.gif", truth, fps=case.info.frame_rate)
            write_montage(case.frames, result.masks, folder / f"{name}.png", truth)
    run.peak_rss_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
    torch = sys.modules.get("torch")
    if torch is not None and torch.cuda.is_available() and torch.cuda.is_initialized():
        run.peak_gpu_mib = torch.cuda.max_memory_allocated() / 2**20
    return run


def summarise(runs: list[TrackerRun]) -> list[dict[str, str]]:
    """One formatted table row (COLUMNS) per tracker."""
    medians = {run.name: _median_ms(run) for run in runs}
    reference = medians.get(REFERENCE_TRACKER, float("nan"))
    rows = []
    for run in runs:
        row = dict.fromkeys(COLUMNS, "")
        row["tracker"] = run.name
        row["cases"] = str(len(run.cases))
        if run.skipped:
            row["note"] = f"skipped: {run.skipped}"
            rows.append(row)
            continue
        means = {key: float(np.nanmean([c.scores[key] for c in run.cases])) for key in METRIC_KEYS}
        times = time_summary(np.concatenate([c.frame_seconds for c in run.cases]))
        row.update(
            dsc=f"{means['dsc']:.3f}",
            hd95_px=f"{means['hd95']:.2f}",
            masd_px=f"{means['masd']:.2f}",
            cd_px=f"{means['cd']:.2f}",
            rel_d98=f"{means['rel_d98']:.3f}",
            median_ms=f"{times['median'] * 1000:.3f}",
            p95_ms=f"{times['p95'] * 1000:.3f}",
            peak_rss_mib=f"{run.peak_rss_mib:.0f}",
            peak_gpu_mib="" if np.isnan(run.peak_gpu_mib) else f"{run.peak_gpu_mib:.0f}",
            # Significant digits, not decimals: fast peers are thousands of times quicker.
            time_vs_xmem="" if np.isnan(reference) else f"{medians[run.name] / reference:.3g}",
        )
        totals = sum((Counter(c.events) for c in run.cases), Counter())
        row["note"] = ", ".join(f"{k}={v}" for k, v in sorted(totals.items()) if v)
        rows.append(row)
    return rows


def case_rows(runs: list[TrackerRun]) -> list[dict[str, str]]:
    """One formatted row (CASE_COLUMNS) per tracker and case, in run order."""
    rows = []
    for run in runs:
        for case in run.cases:
            scores = case.scores
            rows.append({
                "tracker": run.name,
                "case": case.case_id,
                "frames": str(len(case.frame_dsc) + 1),
                "dsc": f"{scores['dsc']:.3f}",
                "hd95_px": f"{scores['hd95']:.2f}",
                "masd_px": f"{scores['masd']:.2f}",
                "cd_px": f"{scores['cd']:.2f}",
                "rel_d98": f"{scores['rel_d98']:.3f}",
                "events": ", ".join(f"{k}={v}" for k, v in sorted(case.events.items()) if v),
            })
    return rows


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


def run_benchmark(dataset: Path, trackers: list[str], out: Path, overlays: bool = False) -> list[dict[str, str]]:
    """Run every tracker (each in a fresh spawned process), write the outputs, return the rows."""
    case_dirs = find_case_dirs(Path(dataset))
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    runs = []
    for name in trackers:
        with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as pool:
            overlay_dir = out / "overlays" if overlays else None
            runs.append(pool.submit(benchmark_tracker, name, case_dirs, overlay_dir).result())
        print(f"{name}: {'skipped (' + runs[-1].skipped + ')' if runs[-1].skipped else 'done'}", flush=True)
    rows = summarise(runs)
    write_atomically(out / "table.csv", lambda temporary: _write_csv(temporary, COLUMNS, rows))
    write_atomically(out / "cases.csv", lambda temporary: _write_csv(temporary, CASE_COLUMNS, case_rows(runs)))
    write_atomically(out / "table.md", lambda temporary: temporary.write_text(format_markdown(rows)))
    write_line_chart(
        dsc_over_time(runs),
        out / "dsc_over_time.png",
        title=f"DSC over time, mean of {len(case_dirs)} cases",
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
    parser = argparse.ArgumentParser(prog="python -m evaluation.benchmark", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("dataset", type=Path, help="dataset folder (case sub-folders) or one case")
    parser.add_argument("--trackers", default=DEFAULT_TRACKERS, help="comma-separated registry names")
    parser.add_argument("--out", type=Path, required=True, help="folder for table.csv, table.md, plots")
    parser.add_argument("--overlays", action="store_true", help="also write a GIF and PNG per case and tracker")
    args = parser.parse_args(argv)
    trackers = [t.strip() for t in args.trackers.split(",") if t.strip()]
    unknown = sorted(set(trackers) - set(available_trackers()))
    if unknown:
        parser.error(f"unknown trackers {unknown}; choose from {available_trackers()}")

    def body() -> None:
        rows = run_benchmark(args.dataset, trackers, args.out, args.overlays)
        print(format_text(rows))
        written = ", ".join(str(args.out / name)
                            for name in ("table.csv", "table.md", "cases.csv", "dsc_over_time.png"))
        print(f"written: {written}")

    return run_command(body)  # e.g. no case folder under DATASET: one line, exit 1


if __name__ == "__main__":
    sys.exit(main())
