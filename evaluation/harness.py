"""Local TrackRAD harness (behind test/run.sh): runs the entry point on every case of a
dataset as grand-challenge would, scores the outputs and checks the runtime limit.

The harness's own options (--tracker, --max-seconds-per-frame, --docker) are read first; every
other option goes to the entry point with its value. From Python: run_case, summarise.
See docs/benchmark.md, "The harness", and docs/bad-input.md, "The harness's options".
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
from model.cli import DEFAULT_TRACKER, build_parser, explain_unknown_options
from model.device import cpu_has_native_bf16
from model.errors import InputError, run_command
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
# Entry-point options the harness sets for every case itself.
HARNESS_SET = ("--input", "--case", "--output", "--report")
REPORT_NAME = "run-report.json"


@dataclass
class CaseResult:
    case_id: str
    n_frames: int = 0
    wall_seconds: float = math.nan
    median_frame_seconds: float = math.nan
    empty_frames: int = 0
    ran_on: str = ""  # device, network path and grid, from the run report (e.g. "cpu (2 threads), fp32, grid 224")
    scores: dict[str, float] = field(default_factory=dict)  # empty when the case has no labels
    error: str | None = None


def stage_input(case_dir: Path, input_dir: Path) -> dict[Path, Path]:
    """Copy a dataset-layout case into the grand-challenge input layout, then make it read-only.

    Returns each staged path (files and image folders) with the case's path it stands for, so
    that messages about the staged copy can name the case's own files."""
    case_id = dataset_case_id(case_dir)
    series = input_dir / "images" / "mri-linacs"
    target = input_dir / "images" / "mri-linac-target"
    series.mkdir(parents=True)
    target.mkdir(parents=True)
    sources = {
        series / f"{case_id}_frames.mha": case_dir / "images" / f"{case_id}_frames.mha",
        target / f"{case_id}_first_label.mha": case_dir / "targets" / f"{case_id}_first_label.mha",
        series: case_dir / "images",
        target: case_dir / "targets",
    }
    for staged, source in list(sources.items())[:2]:
        shutil.copy(source, staged)
    for name in (FRAME_RATE_JSON, FIELD_STRENGTH_JSON, SCANNED_REGION_JSON):
        if (case_dir / name).is_file():
            shutil.copy(case_dir / name, input_dir)
            sources[input_dir / name] = case_dir / name
    sources[input_dir] = case_dir
    for path in [input_dir, *input_dir.rglob("*")]:
        path.chmod(path.stat().st_mode & ~(stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH))
    return sources


def name_case_files(message: str, sources: dict[Path, Path]) -> str:
    """`message` with every staged path replaced by the case's path it was copied from (the
    temporary folder is gone when the user reads the message)."""
    for staged in sorted(sources, key=lambda path: len(str(path)), reverse=True):
        message = message.replace(str(staged), str(sources[staged]))
    return message


def entry_command(input_dir: Path, output_dir: Path, extra: list[str], docker_image: str | None) -> list[str]:
    """The process that runs one case: the entry point, or the image with the challenge's mounts.

    `extra` are entry-point options (--tracker and the tracker's settings) passed through."""
    if docker_image is None:
        return [
            sys.executable,
            str(REPO / "inference.py"),
            "--input",
            str(input_dir),
            "--output",
            str(output_dir),
            "--report",
            str(output_dir / REPORT_NAME),
            *extra,
        ]
    gpus = ["--gpus", "all"] if _has_gpu() else []
    return [
        "docker",
        "run",
        "--rm",
        "--network",
        "none",
        *gpus,
        "-v",
        f"{input_dir}:/input:ro",
        "-v",
        f"{output_dir}:/output",
        docker_image,
        "--report",
        f"/output/{REPORT_NAME}",
        *extra,
    ]


# `docker run`'s own exit codes (the container never ran, or its command could not start): its
# message comes first, followed by a hint such as "Run 'docker run --help' for more information".
DOCKER_OWN_EXITS = (125, 126, 127)


def failure_line(stderr: str, returncode: int, docker: bool) -> str:
    """The line that says why a case's process failed: the entry point's last line (its one
    `error:` line), or Docker's first when Docker itself failed."""
    lines = [line.strip() for line in stderr.splitlines() if line.strip()] or ["(no message)"]
    return lines[0] if docker and returncode in DOCKER_OWN_EXITS else lines[-1]


def check_docker() -> None:
    """Raise InputError, in one line with Docker's own reason, unless a Docker daemon answers."""
    if shutil.which("docker") is None:
        raise InputError("docker: not installed (https://docs.docker.com/get-docker/)")
    answer = subprocess.run(["docker", "info", "--format", "{{.ServerVersion}}"], capture_output=True, text=True)
    if answer.returncode != 0:
        reason = failure_line(answer.stderr, answer.returncode, docker=False)
        raise InputError(f"docker: cannot reach the Docker daemon ({reason}); start it, or set DOCKER_HOST")


def run_case(case_dir: Path, extra: list[str], docker_image: str | None) -> CaseResult:
    """Stage, run and score one case; every failure is recorded in `error`, never raised."""
    try:
        result = CaseResult(case_id=dataset_case_id(case_dir))
    except CaseError as error:
        return CaseResult(case_id=case_dir.name, error=str(error))
    with tempfile.TemporaryDirectory(prefix="trackrad-harness-") as temp:
        input_dir, output_dir = Path(temp) / "input", Path(temp) / "output"
        try:
            sources = stage_input(case_dir, input_dir)
        except OSError as error:
            result.error = f"{case_dir}: cannot stage input ({error})"
            return result
        if docker_image is not None:  # the container names its mounts
            sources = {**sources, **{Path("/input") / p.relative_to(input_dir): c for p, c in sources.items()}}
        output_dir.mkdir()
        output_dir.chmod(0o777)  # the container's non-root user must be able to write here
        try:
            started = time.perf_counter()
            process = subprocess.run(
                entry_command(input_dir, output_dir, extra, docker_image), capture_output=True, text=True
            )
            result.wall_seconds = time.perf_counter() - started
            if process.returncode != 0:
                message = failure_line(process.stderr, process.returncode, docker_image is not None)
                result.error = f"exit {process.returncode}: {name_case_files(message, sources)}"
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
        recorded = json.loads(report.read_text())
        result.median_frame_seconds = recorded["frame_seconds"]["median"]
        result.ran_on = _ran_on(recorded)
    if not (case_dir / "targets" / f"{result.case_id}_labels.mha").is_file():
        return
    try:
        _, result.scores = score_output(masks, case_dir, read_scanned_region(case_dir))
    except CaseError as error:
        result.error = str(error)


def format_table(results: list[CaseResult]) -> str:
    header = (
        f"{'case':<16}{'frames':>7}"
        + "".join(f"{m.column:>9}" for m in METRICS)
        + f"{'wall s':>9}{'med ms':>9}{'empty':>7}  status"
    )
    lines = [header, "-" * len(header)]
    for r in results:
        metrics = "".join(f"{r.scores[m.key]:>9{m.format}}" if r.scores else f"{'-':>9}" for m in METRICS)
        lines.append(
            f"{r.case_id:<16}{r.n_frames:>7}{metrics}{r.wall_seconds:>9.2f}"
            f"{r.median_frame_seconds * 1e3:>9.3f}{r.empty_frames:>7}  "
            f"{r.error or 'ok'}"
        )
    return "\n".join(lines)


def _ran_on(report: dict) -> str:
    """What the network ran on and at which grid, as a run report records it ("" for others)."""
    environment = report.get("environment", {})
    grid = report.get("settings", {}).get("resolved", {}).get("grid_px")
    parts = [environment.get("device", ""), environment.get("network_path", environment.get("precision", ""))]
    parts.append(f"grid {grid}" if grid else "")
    return ", ".join(part for part in parts if part)


def _slow_cpu_note(results: list[CaseResult]) -> str:
    """Why a CPU run may be slow: fp32 on a CPU without native bf16 (no AVX512-BF16 or AMX)."""
    if cpu_has_native_bf16() or not any(r.ran_on.startswith("cpu") and "fp32" in r.ran_on for r in results):
        return ""
    return (
        " (fp32 on a CPU without native bf16, no AVX512-BF16 or AMX: a GPU, or a smaller --grid-min "
        "or --crop-size, is faster)"
    )


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
        # With a single frame count the fit cannot separate start-up (imports, weights) from
        # frames and charges it all to frames; then the in-process median is the fair check.
        one_length = len({r.n_frames for r in ok}) < 2
        if one_length:
            fit = f"time per frame {per_frame:.3f} s (one sequence length: start-up counted as frames, an upper bound)"
        else:
            fit = f"time per frame (linear fit) {per_frame:.3f} s, loading {loading:.2f} s"
        ran_on = "; ".join(sorted({r.ran_on for r in ok if r.ran_on}))
        lines.append(f"{fit}, median per-frame time {median_ms}" + (f" ({ran_on})" if ran_on else ""))
        if one_length and medians:
            checked, basis = statistics.median(medians), "median per-frame time"
        else:
            checked, basis = per_frame, "time per frame (upper bound)" if one_length else "time per frame (linear fit)"
        if checked > max_seconds_per_frame:
            lines.append(f"FAIL: {basis} {checked:.3f} s > {max_seconds_per_frame} s{_slow_cpu_note(ok)}")
            passed = False
    empty = sum(r.empty_frames for r in ok)
    if empty:
        lines.append(f"FAIL: {empty} empty output frame(s)")
        passed = False
    failed = len(results) - len(ok)
    if failed:
        lines.append(f"FAIL: {failed} of {len(results)} case(s) failed")
    return lines, passed


def parse_arguments(argv: list[str]) -> tuple[argparse.Namespace, list[str]]:
    """The harness's options and DATASET_DIR, and the entry-point options to pass on (with
    their values, in their order). Usage errors exit 2, as argparse does."""
    if any(argument in ("-h", "--help") for argument in argv):
        _harness_parser(with_dataset=True).print_help()
        sys.exit(0)
    parser = _harness_parser(with_dataset=False)
    # Without the positional, argparse leaves every argument that is not the harness's own
    # (DATASET_DIR included) in `rest`, in order.
    args, rest = parser.parse_known_args(argv)
    tracker = args.tracker or DEFAULT_TRACKER
    options = build_parser(tracker)[0]._option_string_actions
    extra, positionals = [], []
    waiting = False  # the previous option takes a value: this argument is it
    for argument in rest:
        if waiting:
            extra.append(argument)
            waiting = False
        elif argument.startswith("-") and argument != "-":
            name = argument.split("=", 1)[0]
            prefixed = [option for option in options if option.startswith(name)]
            name = prefixed[0] if name not in options and len(prefixed) == 1 else name  # as argparse
            if name not in options:
                parser.error(explain_unknown_options([argument], tracker))
            if name in HARNESS_SET:
                parser.error(f"{name} is set by the harness for each case")
            extra.append(argument)
            waiting = "=" not in argument and options[name].nargs != 0
        else:
            positionals.append(argument)
    if waiting:
        parser.error(f"{rest[-1]} expects a value")
    if len(positionals) > 1:
        parser.error(f"one DATASET_DIR expected, got {' '.join(positionals)}")
    args.dataset = Path(positionals[0]) if positionals else DEFAULT_DATASET
    return args, (["--tracker", args.tracker] if args.tracker else []) + extra


def _harness_parser(with_dataset: bool) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="test/run.sh",
        add_help=with_dataset,
        usage="%(prog)s [DATASET_DIR] [--tracker NAME] [--max-seconds-per-frame S] "
        "[--docker IMAGE] [entry-point options ...]",
        description=" ".join(__doc__.split("\n\n")[0].split()),
        epilog="Any other option goes to the entry point with its value, before or after "
        "DATASET_DIR: e.g. --crop-size 256, or --weights PATH for the xmem tracker. "
        "`python inference.py --tracker NAME --help` lists a tracker's options.",
    )
    if with_dataset:  # for --help only; parse_arguments finds DATASET_DIR itself
        parser.add_argument(
            "dataset",
            nargs="?",
            metavar="DATASET_DIR",
            help="a dataset folder of case folders, or one case folder "
            "(default: the example case in resources/example)",
        )
    parser.add_argument("--tracker", help=f"tracker to run (default: the entry point's, {DEFAULT_TRACKER})")
    parser.add_argument(
        "--max-seconds-per-frame",
        type=float,
        default=1.0,
        help="the runtime limit checked (default 1.0, the challenge's)",
    )
    parser.add_argument("--docker", metavar="IMAGE", help="run this built image instead")
    return parser


def main(argv: list[str] | None = None) -> int:
    args, extra = parse_arguments(sys.argv[1:] if argv is None else argv)

    def body() -> int:
        cases = find_case_dirs(args.dataset)  # none: one error line, exit 1
        if args.docker:
            check_docker()  # once, in one line, rather than a failure per case
        results = []
        for case_dir in cases:
            results.append(run_case(case_dir, extra, args.docker))
            print(f"{results[-1].case_id}: {results[-1].error or 'done'}", file=sys.stderr)
        print(format_table(results))
        lines, passed = summarise(results, args.max_seconds_per_frame)
        print("\n".join(lines))
        return 0 if passed else 1

    return run_command(body)


def _has_gpu() -> bool:
    if shutil.which("nvidia-smi") is None:
        return False
    return subprocess.run(["nvidia-smi"], capture_output=True).returncode == 0


if __name__ == "__main__":
    sys.exit(main())
