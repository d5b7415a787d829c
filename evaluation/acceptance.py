"""The project's acceptance bar: the default tracker against its peers on benchmark results.

    python -m evaluation.acceptance RESULTS [RESULTS ...] [--default xmem] [--peer optical-flow]
        [--alone "xmem[motion=off]"] [--copy copy] [--max-time-ratio 1.15]
    python -m evaluation.acceptance --arbitration RESULTS [RESULTS ...] [--before CSV ...]
        [--exact-sets flowfail]

RESULTS: benchmark output folders or cases CSV files (docs/results/bar-*.csv). Exit 0 when every
check passes on every set, 1 when one fails or a file cannot be read. The bar's `exact` checks
bind on the flow-failure sets only (--exact-sets); on the others they are printed, marked as
beyond the bar, and do not fail the run. From Python: check_set,
check_arbitration. See docs/benchmark.md, "Acceptance checks" and "Arbitration matrix".
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
    binding: bool = True  # False: reported beside the bar, never fails the run


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


STAND_INS = ("exact", "jitter", "creep", "lost")
DSC_SLACK, CD_SLACK_PX = 0.003, 0.02  # "within" for jitter and for the real network's earlier table
FLOW_SLACK = 0.005  # a network that fails may cost at most this much DSC against optical flow


def check_arbitration(
    source: Path, default: str, alone: str, peer: str, copy: str, before: Path | None, exact_binding: bool = True
) -> list[Check]:
    """The arbitration bar (module docstring) for every network with rows in one set's result.
    `exact_binding` False: the `exact` checks are reported beside the bar (a set where the bar
    does not ask for them)."""
    cases_path = source / CASES_FILE if source.is_dir() else source
    rows = read_rows(cases_path)
    present = {row["tracker"] for row in rows}
    flow, nothing = case_scores(rows, peer, cases_path), case_scores(rows, copy, cases_path)
    networks = [(k, f"xmem[network={k}]", f"xmem[network={k},motion=off]") for k in STAND_INS]
    networks.append(("real network", default, alone))
    checks = []
    for kind, default_row, alone_row in networks:
        if default_row not in present:
            continue
        ours = case_scores(rows, default_row, cases_path)
        mean, flow_mean = _means(ours), _means(flow)
        if kind in ("exact", "jitter"):
            own = case_scores(rows, alone_row, cases_path)
            own_mean = _means(own)
        if kind == "exact":
            short = [c for c in ours if ours[c]["dsc"] < max(flow[c]["dsc"], own[c]["dsc"]) - 0.03]
            checks += [
                Check("exact: mean DSC >= 0.97", mean["dsc"] >= 0.97, f"{mean['dsc']:.4f}", exact_binding),
                Check("exact: mean centre distance <= 0.30 px", mean["cd"] <= 0.30, f"{mean['cd']:.4f}", exact_binding),
                Check(
                    "exact: no case 0.03 DSC below the better source",
                    not short,
                    ", ".join(short) or "none",
                    exact_binding,
                ),
            ]
        elif kind == "jitter":
            best_dsc, best_cd = max(own_mean["dsc"], flow_mean["dsc"]), min(own_mean["cd"], flow_mean["cd"])
            checks.append(
                Check(
                    "jitter: mean DSC as the better source's",
                    mean["dsc"] >= best_dsc - DSC_SLACK,
                    f"{mean['dsc']:.4f} against {best_dsc:.4f}",
                )
            )
            checks.append(
                Check(
                    "jitter: mean centre distance as the better source's",
                    mean["cd"] <= best_cd + CD_SLACK_PX,
                    f"{mean['cd']:.4f} against {best_cd:.4f}",
                )
            )
        else:
            checks.append(
                Check(
                    f"{kind}: mean DSC at least optical flow's - {FLOW_SLACK}",
                    mean["dsc"] >= flow_mean["dsc"] - FLOW_SLACK,
                    f"{mean['dsc']:.4f} against {flow_mean['dsc']:.4f}",
                )
            )
            below = [c for c in ours if ours[c]["dsc"] < nothing[c]["dsc"]]
            checks.append(Check(f"{kind}: never below copy", not below, ", ".join(below) or f"{len(ours)} cases"))
        if kind == "real network" and before is not None:
            was = _means(case_scores(read_rows(before), default, before))
            checks.append(
                Check(
                    f"real network: as {before.name} within {DSC_SLACK} DSC, {CD_SLACK_PX} px",
                    mean["dsc"] >= was["dsc"] - DSC_SLACK and mean["cd"] <= was["cd"] + CD_SLACK_PX,
                    f"{mean['dsc']:.4f} / {mean['cd']:.4f} against {was['dsc']:.4f} / {was['cd']:.4f}",
                )
            )
    if not checks:
        raise InputError(f"{cases_path}: no default row of any network (run scripts/arbitration_matrix.sh)")
    return checks


def _means(by_case: dict[str, dict[str, float]]) -> dict[str, float]:
    return mean_over_cases(list(by_case.values())).means


def result_name(source: Path) -> str:
    """A result's name: the folder's (SET) or the cases CSV's without its suffix (...-SET)."""
    return source.name if source.is_dir() else source.stem


def set_name(source: Path) -> str:
    """The set a result is of: a folder's name (SET); a cases CSV's name without its first word
    (WHAT-SET.csv, e.g. bar-flowfail-sel.csv), or its whole name when it has one word."""
    name = result_name(source)
    return name if source.is_dir() else name.split("-", 1)[-1]


def before_for(source: Path, before: list[Path]) -> Path | None:
    """The earlier cases CSV of the same set (WHAT-SET.csv)."""
    return next((path for path in before if set_name(path) == set_name(source)), None)


def is_one_of(source: Path, set_names: list[str]) -> bool:
    """Whether a result (a folder SET or a CSV WHAT-SET.csv) is of one of the named sets."""
    return set_name(source) in set_names


def format_checks(source: Path, checks: list[Check]) -> str:
    """One line per check; a check beside the bar reads `miss` where it is not met, not FAIL."""
    verdicts = {True: "pass", False: "FAIL", None: "-"}
    names = [check.name if check.binding else f"{check.name} (beyond the bar here)" for check in checks]
    width = max(len(name) for name in names)
    lines = [str(source)]
    for check, name in zip(checks, names, strict=True):
        verdict = "miss" if check.passed is False and not check.binding else verdicts[check.passed]
        lines.append(f"  {verdict:4s}  {name.ljust(width)}  {check.detail}")
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
    parser.add_argument(
        "--arbitration", action="store_true", help="check the arbitration bar (scripts/arbitration_matrix.sh output)"
    )
    parser.add_argument(
        "--before", type=Path, nargs="*", default=[], help="with --arbitration: earlier cases CSVs, WHAT-SET.csv"
    )
    parser.add_argument(
        "--exact-sets",
        nargs="*",
        default=["flowfail"],
        help="with --arbitration: the sets (by name: a folder SET, a CSV WHAT-SET.csv) where the bar's "
        "exact checks bind; elsewhere they are reported beside it",
    )
    args = parser.parse_args(argv)
    if not args.max_time_ratio > 0:
        parser.error(f"--max-time-ratio must be positive, got {args.max_time_ratio}")

    def body() -> int:
        failed = False
        for source in args.results:
            if args.arbitration:
                earlier = before_for(source, args.before)
                exact_binding = is_one_of(source, args.exact_sets)
                checks = check_arbitration(
                    source, args.default, args.alone, args.peer, args.copy, earlier, exact_binding
                )
            else:
                checks = check_set(source, args.default, args.peer, args.alone, args.copy, args.max_time_ratio)
            print(format_checks(source, checks))
            failed |= any(check.passed is False and check.binding for check in checks)
        print("all checks pass" if not failed else "some checks fail")
        return 1 if failed else 0

    return run_command(body)


if __name__ == "__main__":
    sys.exit(main())
