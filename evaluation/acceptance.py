"""Check the default tracker against its peers on benchmark results: the project's acceptance bar.

    python -m evaluation.acceptance RESULTS [RESULTS ...] [--default xmem] [--peer optical-flow]
        [--alone "xmem[motion=off]"] [--copy copy] [--max-time-ratio 1.15]

RESULTS is a benchmark output folder (its cases.csv, and table.csv for the times) or a cases CSV
file (`docs/results/bar-*.csv`; without a table.csv beside it the time check is not made). Per
set, from the per-case scores of the four rows named by the options:
- never below no tracking: the default's DSC is at least copy's on every case;
- beats the peer: a higher mean DSC and a lower mean centre distance than optical flow;
- beats XMem alone: a higher mean DSC and a lower mean centre distance;
- time: the default's median time per frame at most --max-time-ratio times XMem alone's, both
  from the same benchmark command (its table.csv).
Means are over the cases, of the values as the CSV holds them, printed to four places.
Exit 0 when every check passes on every set, 1 when one fails (or a file cannot be read).
"""

from __future__ import annotations

import argparse
import csv
import sys
from dataclasses import dataclass
from pathlib import Path

from evaluation.metrics import METRICS, mean_over_cases
from model.errors import InputError, run_command

CASES_FILE = "cases.csv"
TABLE_FILE = "table.csv"


@dataclass
class Check:
    name: str
    passed: bool | None  # None: not measured (no times)
    detail: str


def read_rows(path: Path) -> list[dict[str, str]]:
    """The rows of a benchmark CSV; InputError naming the file when it is missing or unreadable."""
    try:
        with path.open(newline="") as handle:
            return list(csv.DictReader(handle))
    except FileNotFoundError:
        raise InputError(f"{path}: not found (a benchmark output folder or its cases.csv)") from None
    except (OSError, UnicodeDecodeError, csv.Error) as error:
        raise InputError(f"{path}: cannot be read as a benchmark CSV ({error})") from None


def case_scores(rows: list[dict[str, str]], tracker: str, source: Path) -> dict[str, dict[str, float]]:
    """Per case, one tracker row's metrics by key (evaluation.metrics.METRICS); InputError if the
    tracker has none."""
    try:
        scores = {
            row["case"]: {metric.key: float(row[metric.column]) for metric in METRICS}
            for row in rows
            if row["tracker"] == tracker
        }
    except (KeyError, ValueError) as error:
        raise InputError(f"{source}: not a benchmark cases CSV ({error})") from None
    if not scores:
        found = sorted({row.get("tracker", "") for row in rows})
        raise InputError(f"{source}: no rows for tracker {tracker!r} (found: {', '.join(found)})")
    return scores


def median_ms(table: Path, tracker: str) -> float:
    """The tracker's median time per frame from a benchmark table.csv."""
    for row in read_rows(table):
        if row.get("tracker") == tracker:
            try:
                return float(row["median_ms"])
            except (KeyError, ValueError):
                break
    raise InputError(f"{table}: no median_ms for tracker {tracker!r}")


def check_set(source: Path, default: str, peer: str, alone: str, copy: str, max_time_ratio: float) -> list[Check]:
    """The acceptance checks of one benchmark result (folder or cases CSV)."""
    cases_path = source / CASES_FILE if source.is_dir() else source
    rows = read_rows(cases_path)
    scores = {name: case_scores(rows, name, cases_path) for name in (default, peer, alone, copy)}
    cases = sorted(scores[default])
    for name, by_case in scores.items():
        if sorted(by_case) != cases:
            raise InputError(f"{cases_path}: {name!r} and {default!r} were run on different cases")
    # The benchmark's own averaging: a case whose metric is undefined is left out of its mean.
    means = {name: mean_over_cases(list(by_case.values())).means for name, by_case in scores.items()}
    below_copy = [case for case in cases if scores[default][case]["dsc"] < scores[copy][case]["dsc"]]
    above = f"{len(cases) - len(below_copy)} of {len(cases)} cases"
    checks = [
        Check(
            "never below copy (DSC, every case)",
            not below_copy,
            f"{above}; below: {', '.join(below_copy)}" if below_copy else above,
        )
    ]
    for name, label in ((peer, "peer"), (alone, "XMem alone")):
        for key, metric, higher_is_better in (("dsc", "DSC", True), ("cd", "centre distance px", False)):
            ours, theirs = means[default][key], means[name][key]
            wins = ours > theirs if higher_is_better else ours < theirs
            checks.append(Check(f"beats {label} on mean {metric}", wins, f"{ours:.4f} against {theirs:.4f}"))
    table = cases_path.parent / TABLE_FILE
    time_check = "time per frame vs XMem alone"
    if table.is_file():
        ratio = median_ms(table, default) / median_ms(table, alone)
        checks.append(Check(time_check, ratio <= max_time_ratio, f"{ratio:.2f} (at most {max_time_ratio})"))
    else:
        checks.append(Check(time_check, None, f"not measured: no {TABLE_FILE} beside {cases_path.name}"))
    return checks


def format_checks(source: Path, checks: list[Check]) -> str:
    verdicts = {True: "pass", False: "FAIL", None: "-"}
    width = max(len(check.name) for check in checks)
    lines = [str(source)] + [f"  {verdicts[c.passed]:4s}  {c.name.ljust(width)}  {c.detail}" for c in checks]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m evaluation.acceptance",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("results", type=Path, nargs="+", help="benchmark output folders or cases CSV files")
    parser.add_argument("--default", default="xmem", help="the default tracker's row (spec as in the benchmark)")
    parser.add_argument("--peer", default="optical-flow", help="the optical-flow peer's row")
    parser.add_argument("--alone", default="xmem[motion=off]", help="XMem alone's row")
    parser.add_argument("--copy", default="copy", help="the no-tracking row")
    parser.add_argument(
        "--max-time-ratio", type=float, default=1.15, help="largest allowed default / alone median time"
    )
    args = parser.parse_args(argv)
    if not args.max_time_ratio > 0:
        parser.error(f"--max-time-ratio must be positive, got {args.max_time_ratio}")

    def body() -> int:
        failed = False
        for source in args.results:
            checks = check_set(source, args.default, args.peer, args.alone, args.copy, args.max_time_ratio)
            print(format_checks(source, checks))
            failed |= any(check.passed is False for check in checks)
        print("all checks pass" if not failed else "some checks fail")
        return 1 if failed else 0

    return run_command(body)


if __name__ == "__main__":
    sys.exit(main())
