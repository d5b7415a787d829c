"""Choose the pipeline's settings for one's weights on one's labelled cases, by cross-validation
over the cases, and write them as a settings file (model.settings_file) for the entry point.

    python -m evaluation.calibrate DATASET --weights W --out resources/pipeline.json
        [--grid FILE] [--folds 5] [--seed 0] [--tolerance 0.001] [--set KEY=VALUE ...] [--work DIR]

The grid (default evaluation/calibration_grid.json) holds tracker specs as the benchmark writes
them; finished runs are kept under WORK/cells, so a stopped run resumes. From Python:
calibrate, choose. See docs/calibration.md.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import hashlib
import json
import math
import os
import re
import shlex
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from evaluation.benchmark import TrackerRun, benchmark_in_fresh_process, check_spec, parse_spec, split_specs
from evaluation.metrics import mean_over_cases
from model.atomic import write_atomically
from model.errors import InputError, run_command, warn
from model.io import dataset_case_id, find_case_dirs
from model.releases import file_digest
from model.settings import setting_fields
from model.settings_file import write_settings_file
from model.trackers.registry import tracker_class
from model.weights import resolve_weights

DEFAULT_GRID = Path(__file__).with_name("calibration_grid.json")
PEER = "optical-flow"  # the peer's spec
PEER_LABEL = "optical flow"  # labels of the two peers: no cell can have them
DEFAULT_LABEL = "default"
DEFAULT_FOLDS = 5
DEFAULT_TOLERANCE = 0.001  # mean DSC; closer cells are told apart by centre distance
_SPEC_PARTS = re.compile(r"^(?P<name>[a-z0-9-]+)(\[(?P<settings>[^\]]*)\])?$")

Scores = Mapping[str, Mapping[str, float]]  # case id -> score_sequence's metrics
RunCell = Callable[[str, list[Path]], TrackerRun]


def read_grid(path: Path) -> tuple[str, list[str]]:
    """(the tracker, the cells) of a grid file; InputError naming the file when it is not one."""
    try:
        content = json.loads(Path(path).read_text(encoding="utf-8-sig"))
    except OSError as error:
        raise InputError(f"{path}: cannot read the grid ({error.strerror or error})") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise InputError(f"{path}: not a JSON grid ({error})") from None
    cells = content.get("cells") if isinstance(content, dict) else None
    if not isinstance(cells, list) or not cells or not all(isinstance(cell, str) for cell in cells):
        raise InputError(f'{path}: a grid is a JSON object whose "cells" is a list of tracker specs')
    names = set()
    for cell in cells:
        if "@" in cell:
            raise InputError(f"{path}: cell {cell!r} names weights; pass them as --weights")
        try:
            check_spec(cell)
        except ValueError as error:
            raise InputError(f"{path}: {error}") from None
        names.add(parse_spec(cell)[0])
    if len(names) > 1:
        raise InputError(f"{path}: the cells name more than one tracker ({', '.join(sorted(names))})")
    if len(set(cells)) != len(cells):
        raise InputError(f"{path}: a cell appears twice")
    return names.pop(), cells


def cell_spec(cell: str, extra: Sequence[str], weights: Path | None) -> str:
    """The spec that runs `cell`: the `--set` items first, then the cell's, then `@weights`.
    ValueError when an item sets a key the cell sets too, or the spec is not valid."""
    parts = _SPEC_PARTS.match(cell)
    if parts is None:
        raise ValueError(f"{cell!r} is not NAME or NAME[key=value,...]")
    own = [item.strip() for item in (parts["settings"] or "").split(",") if item.strip()]
    own_keys = {_key(item) for item in own}
    clash = [item for item in extra if _key(item) in own_keys]
    if clash:
        raise ValueError(f"--set {clash[0]} sets a key that cell {cell!r} sets too")
    items = [*extra, *own]
    spec = parts["name"] + (f"[{','.join(items)}]" if items else "") + (f"@{weights}" if weights else "")
    check_spec(spec)
    return spec


def _key(item: str) -> str:
    return item.partition("=")[0].strip().replace("_", "-")


def make_folds(case_ids: Sequence[str], folds: int, seed: int) -> list[list[str]]:
    """The cases, shuffled with `seed` and dealt into `folds` folds: disjoint, covering every case,
    sizes within one of each other."""
    order = sorted(case_ids)
    np.random.default_rng(seed).shuffle(order)
    return [sorted(order[index::folds]) for index in range(folds)]


def choose(cells: Sequence[str], scores: Mapping[str, Scores], case_ids: Sequence[str], tolerance: float) -> str:
    """The selection rule (module docstring) over `case_ids` only."""
    means = {cell: _means(scores[cell], case_ids) for cell in cells}
    dsc = {cell: _or(means[cell]["dsc"], -math.inf) for cell in cells}
    best = max(dsc.values())
    near = [cell for cell in cells if dsc[cell] >= best - tolerance]
    return min(near, key=lambda cell: (_or(means[cell]["cd"], math.inf), cells.index(cell)))


def _means(scores: Scores, case_ids: Sequence[str]) -> dict[str, float]:
    return mean_over_cases([scores[case] for case in case_ids]).means


def _or(value: float, instead: float) -> float:
    return instead if math.isnan(value) else value


@dataclass
class Fold:
    number: int
    cases: list[str]
    chosen: str  # the cell chosen on the other folds
    held_out: dict[str, dict[str, float]]  # "chosen", DEFAULT_LABEL, PEER_LABEL -> mean dsc, cd on this fold


@dataclass
class Calibration:
    tracker: str
    case_ids: list[str]
    folds: list[Fold]
    held_out: dict[str, dict[str, float]]  # the same three over all cases, each case judged out of fold
    chosen: str  # chosen on all cases
    chosen_scores: dict[str, float]  # its mean dsc, cd on all cases (in sample)
    settings: dict[str, object]  # the chosen cell's tracker settings


def cross_validate(
    tracker: str,
    cells: Sequence[str],
    scores: Mapping[str, Scores],
    folds: Sequence[Sequence[str]],
    tolerance: float,
) -> Calibration:
    """Per fold the cell chosen on the other folds and the held-out scores; then the choice on all
    cases. `scores` holds every cell, DEFAULT_LABEL and PEER_LABEL."""
    case_ids = sorted(case for fold in folds for case in fold)
    results, chosen_per_case = [], {}
    for number, fold in enumerate(folds, 1):
        others = [case for case in case_ids if case not in fold]
        chosen = choose(cells, scores, others, tolerance)
        chosen_per_case.update(dict.fromkeys(fold, chosen))
        held_out = {"chosen": _pair(scores[chosen], fold)}
        held_out.update({label: _pair(scores[label], fold) for label in (DEFAULT_LABEL, PEER_LABEL)})
        results.append(Fold(number, list(fold), chosen, held_out))
    out_of_fold = {case: scores[chosen_per_case[case]][case] for case in case_ids}
    held_out = {"chosen": _pair(out_of_fold, case_ids)}
    held_out.update({label: _pair(scores[label], case_ids) for label in (DEFAULT_LABEL, PEER_LABEL)})
    chosen = choose(cells, scores, case_ids, tolerance)
    name, settings = parse_spec(chosen)
    fields = {f.name for f in setting_fields(tracker_class(name).Settings)} - {"weights"}
    settings = {key: value for key, value in settings.items() if key in fields}
    return Calibration(tracker, case_ids, results, held_out, chosen, _pair(scores[chosen], case_ids), settings)


def _pair(scores: Scores, case_ids: Sequence[str]) -> dict[str, float]:
    means = _means(scores, case_ids)
    return {"dsc": means["dsc"], "cd": means["cd"]}


def format_table(result: Calibration) -> str:
    """The per-fold table (markdown): the chosen cell's held-out score against the default's and
    optical flow's, then all cases."""

    def cell(pair: Mapping[str, float]) -> str:
        return f"{pair['dsc']:.4f} / {pair['cd']:.3f}"

    lines = [
        f"| fold | cases | chosen on the other folds | chosen (held out) | {DEFAULT_LABEL} | {PEER_LABEL} |",
        "|---|---|---|---|---|---|",
    ]
    for fold in result.folds:
        scores = [cell(fold.held_out[label]) for label in ("chosen", DEFAULT_LABEL, PEER_LABEL)]
        lines.append(f"| {fold.number} | {len(fold.cases)} | `{fold.chosen}` | " + " | ".join(scores) + " |")
    overall = [cell(result.held_out[label]) for label in ("chosen", DEFAULT_LABEL, PEER_LABEL)]
    lines.append(f"| all | {len(result.case_ids)} | (each fold's own) | " + " | ".join(overall) + " |")
    lines.append("")
    lines.append(
        f"Mean DSC / centre distance (px). Chosen on all cases: `{result.chosen}` ({cell(result.chosen_scores)})."
    )
    return "\n".join(lines) + "\n"


def spec_settings(spec: str) -> dict[str, object]:
    """Every setting a spec runs with: its own, and the tracker's defaults for the rest (as JSON
    values), so that a run kept from before a default changed is not taken for today's."""
    name, given = parse_spec(spec)
    settings_cls = tracker_class(name).Settings
    defaults = {setting.name: setting.default for setting in setting_fields(settings_cls)} if settings_cls else {}
    return json.loads(json.dumps({**defaults, **given}, default=str))


class CellStore:
    """One JSON file per finished run under WORK/cells/, keyed by spec, the settings it resolves
    to, weights and cases."""

    def __init__(self, work: Path, weights_sha256: str, case_ids: Sequence[str]) -> None:
        self.folder = Path(work) / "cells"
        self.weights_sha256 = weights_sha256
        self.case_ids = list(case_ids)

    def _identity(self, spec: str) -> list[object]:
        return [spec, spec_settings(spec), self.weights_sha256, self.case_ids]

    def path(self, spec: str) -> Path:
        key = json.dumps(self._identity(spec), sort_keys=True)
        readable = re.sub(r"[^A-Za-z0-9.=-]+", "_", spec.split("@")[0])[:80]
        return self.folder / f"{readable}-{hashlib.sha256(key.encode()).hexdigest()[:12]}.json"

    def load(self, spec: str) -> tuple[Path, dict[str, dict[str, float]]] | None:
        """(the file, the per-case scores) of a finished run of `spec` with today's settings, or
        None. A run is known by its record's content; the file name only finds it fast (a run
        kept under another name, e.g. before the settings' order changed, is found by the others)."""
        identity = self._identity(spec)
        named = self.path(spec)
        for path in [named, *sorted(set(self.folder.glob("*.json")) - {named})]:
            try:
                record = json.loads(path.read_text())
            except (OSError, ValueError):
                continue
            if [record.get(key) for key in ("spec", "settings", "weights_sha256", "case_ids")] == identity:
                return path, record["cases"]
        return None

    def save(self, spec: str, run: TrackerRun, seconds: float) -> dict[str, dict[str, float]]:
        cases = {case.case_id: case.scores for case in run.cases}
        record = {
            "spec": spec,
            "settings": spec_settings(spec),
            "weights_sha256": self.weights_sha256,
            "case_ids": self.case_ids,
            "seconds": seconds,
            "frames": sum(len(case.frame_seconds) for case in run.cases),
            "cases": cases,
        }
        text = json.dumps(record, indent=1)
        write_atomically(self.path(spec), lambda temporary: temporary.write_text(text))
        return cases


def run_all(
    specs: Mapping[str, str],
    case_dirs: list[Path],
    store: CellStore,
    run_cell: RunCell | None = None,
) -> dict[str, dict[str, dict[str, float]]]:
    """Per label, the per-case scores of its spec: from the store, else run (and stored), each
    spec once, by `run_cell` (default: the benchmark's worker in a fresh process). The store is
    read again before each cell, so calibrations sharing a work folder (one per GPU) share
    their cells. Progress with a time estimate on stderr."""
    run_cell = run_cell or benchmark_in_fresh_process
    by_spec: dict[str, dict[str, dict[str, float]]] = {}
    for spec in dict.fromkeys(specs.values()):
        kept = store.load(spec)
        if kept is not None:
            path, by_spec[spec] = kept
            _progress(f"{spec}: done before ({path})")
    # Optical flow first: it is quick, and leaves the estimate to the slow cells alone.
    todo = sorted((spec for spec in dict.fromkeys(specs.values()) if spec not in by_spec), key=lambda s: s != PEER)
    timed: list[float] = []
    for number, spec in enumerate(todo, 1):
        kept = store.load(spec)
        if kept is not None:
            path, by_spec[spec] = kept
            _progress(f"[{number}/{len(todo)}] {spec}: done meanwhile ({path})")
            continue
        left = len(todo) - number + 1
        estimate = f"about {_duration(np.mean(timed) * left)} left" if timed else "estimate after the first cell"
        _progress(f"[{number}/{len(todo)}] {spec}: running ({estimate})")
        started = time.perf_counter()
        run = run_cell(spec, case_dirs)
        if run.skipped:
            raise InputError(f"{spec}: cannot run ({run.skipped})")
        seconds = time.perf_counter() - started
        by_spec[spec] = store.save(spec, run, seconds)
        if spec != PEER:
            timed.append(seconds)
        _progress(f"[{number}/{len(todo)}] {spec}: done in {_duration(seconds)}")
    return {label: by_spec[spec] for label, spec in specs.items()}


def _progress(message: str) -> None:
    print(f"calibrate: {message}", file=sys.stderr, flush=True)


def _duration(seconds: float) -> str:
    return f"{seconds:.0f} s" if seconds < 120 else f"{seconds / 60:.0f} min"


def weights_of(tracker: str, weights: Path | None) -> tuple[Path | None, str]:
    """(the weights file every cell runs, its sha256), resolved as the entry point resolves them;
    (None, "") for a tracker without weights."""
    fields = {f.name for f in setting_fields(tracker_class(tracker).Settings)}
    if "weights" not in fields:
        if weights is not None:
            raise InputError(f"--weights {weights}: the {tracker} tracker takes no weights")
        return None, ""
    path, _ = resolve_weights(weights)
    return path, file_digest(path)[1]


def calibrate(
    dataset: Path,
    grid: Path,
    out: Path,
    work: Path,
    weights: Path | None = None,
    extra: Sequence[str] = (),
    folds: int = DEFAULT_FOLDS,
    seed: int = 0,
    tolerance: float = DEFAULT_TOLERANCE,
    command: str = "",
    run_cell: RunCell | None = None,
) -> Calibration:
    """Run the grid (resuming from `work`), cross-validate, write the settings file; the result."""
    tracker, cells = read_grid(grid)
    case_dirs = find_case_dirs(Path(dataset))
    case_ids = [dataset_case_id(case_dir) for case_dir in case_dirs]
    if len(case_ids) < 2:
        raise InputError(f"{dataset}: cross-validation needs at least 2 cases, found {len(case_ids)}")
    if folds > len(case_ids):
        warn(f"{dataset}: {len(case_ids)} cases for {folds} folds; using {len(case_ids)} folds (one case each)")
        folds = len(case_ids)
    _check_writable(out)
    weights_file, weights_sha256 = weights_of(tracker, weights)
    try:
        specs = {cell: cell_spec(cell, extra, weights_file) for cell in cells}
        specs[DEFAULT_LABEL] = cell_spec(tracker, extra, weights_file)
    except ValueError as error:
        raise InputError(f"{grid}: {error}") from None
    specs[PEER_LABEL] = PEER
    scores = run_all(specs, case_dirs, CellStore(work, weights_sha256, case_ids), run_cell)
    result = cross_validate(tracker, cells, scores, make_folds(case_ids, folds, seed), tolerance)
    table = format_table(result)
    write_atomically(Path(work) / "table.md", lambda temporary: temporary.write_text(table))
    provenance = {
        "weights_sha256": weights_sha256,
        "weights": str(weights_file or ""),
        "case_ids": case_ids,
        "scores": {
            "rule": f"highest mean DSC; within {tolerance} of it, lowest mean centre distance; then grid order",
            "folds": [dataclasses.asdict(fold) for fold in result.folds],
            "held_out": result.held_out,
            "chosen": result.chosen,
            "chosen_on_all_cases": result.chosen_scores,
        },
        "grid": cells,
        "set": list(extra),
        "dataset": str(dataset),
        "command": command,
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
    }
    write_settings_file(out, tracker, result.settings, provenance)
    return result


def _check_writable(out: Path) -> None:
    """Fail before an hour of tracking, not after, when --out cannot be written."""
    folder = Path(out).parent
    existing = next(p for p in [folder, *folder.parents] if p.exists())
    if Path(out).is_dir() or not os.access(existing, os.W_OK):
        raise InputError(f"{out}: cannot write the settings file there")


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    parser = argparse.ArgumentParser(
        prog="python -m evaluation.calibrate", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("dataset", type=Path, help="labelled dataset folder (case sub-folders)")
    parser.add_argument("--out", type=Path, required=True, help="the settings file to write (resources/pipeline.json)")
    parser.add_argument("--weights", type=Path, help="weights every cell runs (default: resolved as inference.py does)")
    parser.add_argument("--grid", type=Path, default=DEFAULT_GRID, help=f"grid file (default {DEFAULT_GRID.name})")
    parser.add_argument(
        "--folds", type=int, default=DEFAULT_FOLDS, help="cross-validation folds over cases (default 5)"
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of the cases' shuffle into folds (default 0)")
    parser.add_argument(
        "--tolerance", type=float, default=DEFAULT_TOLERANCE, help="mean DSC within which centre distance decides"
    )
    parser.add_argument(
        "--set",
        dest="extra",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a spec key for every cell and the default, e.g. network=exact or device=cuda (repeatable)",
    )
    parser.add_argument(
        "--work",
        type=Path,
        default=Path("runs/calibration"),
        help="finished cells and the table (default runs/calibration)",
    )
    args = parser.parse_args(argv)
    if args.folds < 2:
        parser.error("--folds must be at least 2")
    if args.tolerance < 0:
        parser.error("--tolerance must be >= 0")
    extra = [item for text in args.extra for item in split_specs(text)]
    for item in extra:
        if "=" not in item:
            parser.error(f"--set {item!r}: give KEY=VALUE")
    command = shlex.join(["python", "-m", "evaluation.calibrate", *argv])

    def body() -> None:
        result = calibrate(
            args.dataset,
            args.grid,
            args.out,
            args.work,
            args.weights,
            extra,
            args.folds,
            args.seed,
            args.tolerance,
            command,
        )
        print(format_table(result), end="")
        chosen = json.dumps(result.settings) if result.settings else "its built-in defaults"
        print(f"written: {args.out} ({result.tracker}: {chosen})")

    return run_command(body)


if __name__ == "__main__":
    sys.exit(main())
