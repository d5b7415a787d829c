"""The acceptance checks read benchmark CSVs and fail on exactly the check that is not met."""

from __future__ import annotations

import csv

import pytest

from evaluation.acceptance import main
from evaluation.metrics import METRICS

DEFAULT, PEER, ALONE, COPY = "xmem", "optical-flow", "xmem[motion=off]", "copy"
# (DSC, centre distance px) per case: the default beats every other row.
PASSING = {
    DEFAULT: [(0.96, 0.20), (0.94, 0.30)],
    PEER: [(0.95, 0.21), (0.93, 0.31)],
    ALONE: [(0.90, 0.70), (0.80, 1.50)],
    COPY: [(0.70, 3.00), (0.60, 4.00)],
}
PASSING_TIMES = {DEFAULT: 190.0, PEER: 3.0, ALONE: 180.0, COPY: 0.01}


def _write_results(folder, scores, times=None):
    folder.mkdir(parents=True, exist_ok=True)
    with (folder / "cases.csv").open("w", newline="") as handle:
        writer = csv.DictWriter(handle, ["tracker", "case", *(metric.column for metric in METRICS)])
        writer.writeheader()
        for tracker, values in scores.items():
            for index, (dsc, cd) in enumerate(values):
                other = dict.fromkeys((metric.column for metric in METRICS), 1.0)
                writer.writerow({**other, "tracker": tracker, "case": f"C_{index}", "dsc": dsc, "cd_px": cd})
    if times is not None:
        with (folder / "table.csv").open("w", newline="") as handle:
            writer = csv.DictWriter(handle, ["tracker", "median_ms"])
            writer.writeheader()
            writer.writerows({"tracker": t, "median_ms": ms} for t, ms in times.items())
    return folder


def test_all_checks_pass_with_means_to_four_places(tmp_path, capsys):
    assert main([str(_write_results(tmp_path / "set", PASSING, PASSING_TIMES))]) == 0
    out = capsys.readouterr().out
    assert "FAIL" not in out and out.strip().endswith("all checks pass")
    assert "0.9500 against 0.9400" in out  # mean DSC, default against the peer
    assert "1.06 (at most 1.15)" in out  # 190 / 180


@pytest.mark.parametrize(
    ("change", "failing"),
    [
        ({COPY: [(0.70, 3.00), (0.945, 4.00)]}, "never below copy"),  # one case under copy
        ({PEER: [(0.95, 0.19), (0.93, 0.30)]}, "beats peer on mean centre distance"),
        ({PEER: [(0.97, 0.21), (0.93, 0.31)]}, "beats peer on mean DSC"),
        ({ALONE: [(0.96, 0.70), (0.94, 1.50)]}, "beats XMem alone on mean DSC"),  # a tie is no win
    ],
)
def test_each_unmet_check_fails_the_command(tmp_path, capsys, change, failing):
    assert main([str(_write_results(tmp_path / "set", {**PASSING, **change}, PASSING_TIMES))]) == 1
    out = capsys.readouterr().out
    assert [line.split()[0] for line in out.splitlines() if failing in line] == ["FAIL"]
    assert out.count("FAIL") == 1


def test_an_undefined_case_is_left_out_of_the_mean_as_in_the_benchmark(tmp_path, capsys):
    peer = [(0.95, 0.21), (0.93, float("nan"))]  # no centre distance on the second case
    assert main([str(_write_results(tmp_path / "set", {**PASSING, PEER: peer}, PASSING_TIMES))]) == 1
    assert "0.2500 against 0.2100" in capsys.readouterr().out  # the peer's mean over the one defined case


def test_time_over_the_ratio_fails_and_a_csv_alone_skips_the_time(tmp_path, capsys):
    slow = _write_results(tmp_path / "slow", PASSING, {**PASSING_TIMES, DEFAULT: 220.0})
    assert main([str(slow)]) == 1
    assert "FAIL  time per frame" in capsys.readouterr().out
    no_times = _write_results(tmp_path / "no-times", PASSING)
    assert main([str(no_times / "cases.csv")]) == 0
    assert "not measured" in capsys.readouterr().out


def test_a_missing_tracker_row_is_one_error_line(tmp_path, capsys):
    partial = _write_results(tmp_path / "set", {k: v for k, v in PASSING.items() if k != ALONE})
    assert main([str(partial)]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "cases.csv" in err[0] and "xmem[motion=off]" in err[0]


EXACT, EXACT_ALONE = "xmem[network=exact]", "xmem[network=exact,motion=off]"
JITTER, JITTER_ALONE = "xmem[network=jitter]", "xmem[network=jitter,motion=off]"
# The arbitration bar met: exact near the stand-in, jitter better than both sources, the real
# network above the flow's DSC minus the slack and above copy.
ARBITRATION = {
    PEER: [(0.90, 0.60), (0.88, 0.70)],
    COPY: [(0.70, 3.00), (0.60, 4.00)],
    EXACT: [(0.99, 0.10), (0.97, 0.20)],
    EXACT_ALONE: [(1.00, 0.00), (0.99, 0.01)],
    JITTER: [(0.95, 0.40), (0.94, 0.45)],
    JITTER_ALONE: [(0.93, 0.60), (0.92, 0.70)],
    DEFAULT: [(0.898, 0.62), (0.875, 0.72)],
}


def test_the_arbitration_bar_passes_and_compares_with_the_earlier_table(tmp_path, capsys):
    results = _write_results(tmp_path / "val10", ARBITRATION)
    before = _write_results(tmp_path / "old", {DEFAULT: [(0.89, 0.61), (0.88, 0.70)]}) / "cases.csv"
    renamed = before.with_name("bar-val10.csv")
    before.rename(renamed)
    assert main(["--arbitration", str(results), "--before", str(renamed)]) == 0
    out = capsys.readouterr().out
    assert "FAIL" not in out and "as bar-val10.csv" in out


def test_a_results_csv_is_compared_with_the_earlier_table_of_its_set(tmp_path, capsys):
    # As the committed tables are named: arbitration-SET.csv against bar-SET.csv, the set's
    # name itself holding a hyphen; a result of another set is compared with nothing.
    results = _write_results(tmp_path / "now", ARBITRATION) / "cases.csv"
    named = results.rename(results.with_name("arbitration-flowfail-sel.csv"))
    earlier = {}
    for set_ in ("flowfail-sel", "sel"):
        path = _write_results(tmp_path / set_, {DEFAULT: [(0.95, 0.30), (0.95, 0.30)]}) / "cases.csv"
        earlier[set_] = path.rename(path.with_name(f"bar-{set_}.csv"))
    assert main(["--arbitration", str(named), "--before", str(earlier["sel"])]) == 0
    assert main(["--arbitration", str(named), "--before", *map(str, earlier.values())]) == 1
    assert "FAIL  real network: as bar-flowfail-sel.csv" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("change", "failing"),
    [
        ({EXACT: [(0.99, 0.10), (0.94, 0.20)]}, "exact: no case 0.03 DSC below"),
        ({EXACT: [(0.99, 0.35), (0.97, 0.30)]}, "exact: mean centre distance"),
        ({JITTER: [(0.92, 0.40), (0.92, 0.45)]}, "jitter: mean DSC"),
        ({DEFAULT: [(0.89, 0.62), (0.87, 0.72)]}, "real network: mean DSC"),
        ({DEFAULT: [(0.69, 0.62), (0.99, 0.72)]}, "real network: never below copy"),
    ],
)
def test_each_unmet_arbitration_check_fails(tmp_path, capsys, change, failing):
    # The bar asks for the exact checks on the flow-failure set.
    assert main(["--arbitration", str(_write_results(tmp_path / "flowfail", {**ARBITRATION, **change}))]) == 1
    out = capsys.readouterr().out
    assert [line.split()[0] for line in out.splitlines() if failing in line] == ["FAIL"]


def test_the_exact_checks_bind_only_on_the_flow_failure_sets(tmp_path, capsys):
    short = {**ARBITRATION, EXACT: [(0.99, 0.10), (0.94, 0.20)]}
    other = _write_results(tmp_path / "hard12", short) / "cases.csv"
    named = other.rename(other.with_name("arbitration-hard12.csv"))
    assert main(["--arbitration", str(named)]) == 0
    lines = [line for line in capsys.readouterr().out.splitlines() if "exact: no case" in line]
    assert lines[0].split()[0] == "miss" and "beyond the bar here" in lines[0]
    assert main(["--arbitration", str(named), "--exact-sets", "hard12"]) == 1
    assert "FAIL  exact: no case" in capsys.readouterr().out
    flowfail = _write_results(tmp_path / "flowfail", short) / "cases.csv"
    assert main(["--arbitration", str(flowfail.rename(flowfail.with_name("arbitration-flowfail.csv")))]) == 1
