"""Local TrackRAD harness (behind test/run.sh): run the entry point on every case of a dataset
as grand-challenge would, score the outputs and check the runtime limit.

Each case is laid out in a temporary /input-like folder (read-only), the entry point runs as a
separate process (or as the built Docker image with the challenge's mounts), and its output is
scored against targets/<id>_labels.mha (evaluation.evaluate.score_output) and averaged over the
cases (evaluation.metrics.mean_over_cases). Cases without labels are run and checked (exit
code, empty frames, time) but not scored.
"""
from __future__ import annotations

import argparse
import json
import math
import shutil
import stat
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from evaluation.evaluate import score_output
from evaluation.metrics import METRICS, fit_runtime, mean_over_cases
from model.io import (
    FIELD_STRENGTH_JSON,
    FRAME_RATE_JSON,
    OUTPUT_FOLDER,
    OUTPUT_NAME,
    SCANNED_REGION_JSON,
    CaseError,
    dataset_case_id,
    find_case_dirs,
    read_scanned_region,
)

REPO = Path(__file__).resolve().parent.parent
DEFAULT_DATASET = REPO / "resources" / "example"
REPORT_NAME = "run-report.json"


@dataclass
class CaseResult:
    case_id: str
    n_frames: int = 0
    wall_seconds: float = math.nan
    median_frame_seconds: float = math.nan
    empty_frames: int = 0
    scores: dict[str, float] = field(default_factory=dict)  # empty when the case has no labels
    error: str | None = None


def stage_input(case_dir: Path, input_dir: Path) -> None:
    """Copy a dataset-layout case into the grand-challenge input layout, then make it read-only."""
    case_id = dataset_case_id(case_dir)
    series = input_dir / "images" / "mri-linacs"
    target = input_dir / "images" / "mri-linac-target"
    series.mkdir(parents=True)
    target.mkdir(parents=True)
    shutil.copy(case_dir / "images" / f"{case_id}_frames.mha", series)
    shutil.copy(case_dir / "targets" / f"{case_id}_first_label.mha", target)
    for name in (FRAME_RATE_JSON, FIELD_STRENGTH_JSON, SCANNED_REGION_JSON):
        if (case_dir / name).is_file():
            shutil.copy(case_dir / name, input_dir)
    for path in [input_dir, *input_dir.rglob("*")]:
        path.chmod(path.stat().st_mode & ~(stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH))


def entry_command(input_dir: Path, output_dir: Path, extra: list[str],
                  docker_image: str | None) -> list[str]:
    """The process that runs one case: the entry point, or the image with the challenge's mounts.

    `extra` are entry-point options (--tracker and the tracker's settings) passed through."""
    if docker_image is None:
        return [sys.executable, str(REPO / "inference.py"), "--input", str(input_dir),
                "--output", str(output_dir), "--report", str(output_dir / REPORT_NAME), *extra]
    gpus = ["--gpus", "all"] if _has_gpu() else []
    return ["docker", "run", "--rm", "--network", "none", *gpus,
            "-v", f"{input_dir}:/input:ro", "-v", f"{output_dir}:/output",
            docker_image, "--report", f"/output/{REPORT_NAME}", *extra]


def run_case(case_dir: Path, extra: list[str], docker_image: str | None) -> CaseResult:
    """Stage, run and score one case; every failure is recorded in `error`, never raised."""
    try:
        result = CaseResult(case_id=dataset_case_id(case_dir))
    except CaseError as error:
        return CaseResult(case_id=case_dir.name, error=str(error))
    with tempfile.TemporaryDirectory(prefix="trackrad-harness-") as temp:
        input_dir, output_dir = Path(temp) / "input", Path(temp) / "output"
        try:
            stage_input(case_dir, input_dir)
        except OSError as error:
            result.error = f"{case_dir}: cannot stage input ({error})"
            return result
        output_dir.mkdir()
        output_dir.chmod(0o777)  # the container's non-root user must be able to write here
        try:
            started = time.perf_counter()
            process = subprocess.run(entry_command(input_dir, output_dir, extra, docker_image),
                                     capture_output=True, text=True)
            result.wall_seconds = time.perf_counter() - started
            if process.returncode != 0:
                lines = process.stderr.strip().splitlines() or ["(no message)"]
                result.error = f"exit {process.returncode}: {lines[-1]}"
            else:
                _collect(result, case_dir, output_dir)
        finally:
            for path in [input_dir, *input_dir.rglob("*")]:
                path.chmod(0o755)  # writable again, so the temporary folder can be removed
    return result


def _collect(result: CaseResult, case_dir: Path, output_dir: Path) -> None:
    output = output_dir / OUTPUT_FOLDER / OUTPUT_NAME
    if not output.is_file():
        result.error = f"{output}: no output written"
        return
    masks = sitk.GetArrayFromImage(sitk.ReadImage(str(output)))
    if masks.ndim != 3:
        result.error = f"{output}: output is {masks.ndim}-D, expected (W, H, T)"
        return
    result.n_frames = masks.shape[2]
    result.empty_frames = int(np.count_nonzero(masks.reshape(-1, result.n_frames).sum(axis=0) == 0))
    report = output_dir / REPORT_NAME
    if report.is_file():  # the report is optional: an image built elsewhere may not write one
        result.median_frame_seconds = json.loads(report.read_text())["frame_seconds"]["median"]
    if not (case_dir / "targets" / f"{result.case_id}_labels.mha").is_file():
        return
    try:
        _, result.scores = score_output(masks, case_dir, read_scanned_region(case_dir))
    except CaseError as error:
        result.error = str(error)


def format_table(results: list[CaseResult]) -> str:
    header = f"{'case':<16}{'frames':>7}" + "".join(f"{m.column:>9}" for m in METRICS) \
        + f"{'wall s':>9}{'med ms':>9}{'empty':>7}  status"
    lines = [header, "-" * len(header)]
    for r in results:
        metrics = "".join(f"{r.scores[m.key]:>9{m.format}}" if r.scores else f"{'-':>9}" for m in METRICS)
        lines.append(f"{r.case_id:<16}{r.n_frames:>7}{metrics}{r.wall_seconds:>9.2f}"
                     f"{r.median_frame_seconds * 1e3:>9.3f}{r.empty_frames:>7}  "
                     f"{r.error or 'ok'}")
    return "\n".join(lines)


def summarise(results: list[CaseResult], max_seconds_per_frame: float) -> tuple[list[str], bool]:
    """Aggregate lines (challenge means, runtime fit) and whether the run passes."""
    ok = [r for r in results if r.error is None]
    scored = [r for r in ok if r.scores]
    lines = []
    if scored:
        lines.append("mean over cases: " + mean_over_cases([r.scores for r in scored]).summary())
    passed = len(ok) == len(results)
    if ok:
        per_frame, loading = fit_runtime([r.n_frames for r in ok], [r.wall_seconds for r in ok])
        medians = [r.median_frame_seconds for r in ok if not math.isnan(r.median_frame_seconds)]
        median_ms = f"{statistics.median(medians) * 1e3:.3f} ms" if medians else "n/a"
        lines.append(f"time per frame (linear fit) {per_frame:.3f} s, loading {loading:.2f} s, "
                     f"median per-frame time {median_ms}")
        # With a single frame count the fit cannot separate start-up (imports, weights) from
        # frames and charges it all to frames; then the in-process median is the fair check.
        if len({r.n_frames for r in ok}) < 2 and medians:
            checked, basis = statistics.median(medians), "median per-frame time"
        else:
            checked, basis = per_frame, "time per frame (linear fit)"
        if checked > max_seconds_per_frame:
            lines.append(f"FAIL: {basis} {checked:.3f} s > {max_seconds_per_frame} s")
            passed = False
    empty = sum(r.empty_frames for r in ok)
    if empty:
        lines.append(f"FAIL: {empty} empty output frame(s)")
        passed = False
    failed = len(results) - len(ok)
    if failed:
        lines.append(f"FAIL: {failed} of {len(results)} case(s) failed")
    return lines, passed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="test/run.sh", description=__doc__.splitlines()[0])
    parser.add_argument("dataset", nargs="?", type=Path, default=DEFAULT_DATASET,
                        help="a dataset folder of case folders, or one case folder "
                             "(default: the example case in resources/example)")
    parser.add_argument("--tracker", help="tracker to run (default: the entry point's default)")
    parser.add_argument("--max-seconds-per-frame", type=float, default=1.0)
    parser.add_argument("--docker", metavar="IMAGE", help="run this built image instead")
    # Any other option (e.g. --crop-size 256) is a setting of the tracker: passed through.
    args, tracker_options = parser.parse_known_args(argv)
    extra = (["--tracker", args.tracker] if args.tracker else []) + tracker_options
    try:
        cases = find_case_dirs(args.dataset)
    except CaseError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    results = []
    for case_dir in cases:
        results.append(run_case(case_dir, extra, args.docker))
        print(f"{results[-1].case_id}: {results[-1].error or 'done'}", file=sys.stderr)
    print(format_table(results))
    lines, passed = summarise(results, args.max_seconds_per_frame)
    print("\n".join(lines))
    return 0 if passed else 1


def _has_gpu() -> bool:
    if shutil.which("nvidia-smi") is None:
        return False
    return subprocess.run(["nvidia-smi"], capture_output=True).returncode == 0


if __name__ == "__main__":
    sys.exit(main())
