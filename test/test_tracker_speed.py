import json

import pytest

from evaluation.tracker_speed import main


def test_one_json_row_per_tracker_with_times_ratio_and_a_tracking_check(capsys):
    assert main(["--trackers", "copy,optical-flow[reference=previous-frame]", "--cases", "2", "--frames", "8"]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [row["tracker"] for row in rows] == ["copy", "optical-flow[reference=previous-frame]"]
    copy, flow = rows
    assert copy["frames"] == flow["frames"] == 2 * 7  # every frame after the first, of both sequences
    assert 0 < copy["median_ms"] <= copy["p95_ms"] <= copy["max_ms"]
    assert copy["time_vs_first"] == 1.0 and flow["time_vs_first"] > 1.0  # flow costs more than a copy
    assert flow["mean_dsc"] > copy["mean_dsc"]  # the phantom breathes: following it beats standing still


@pytest.mark.parametrize(
    ("trackers", "message"),
    [("", "--trackers names no tracker"), ("copy,xmem[motion=sideways]", "motion must be one of")],
)
def test_bad_tracker_lists_are_usage_errors_before_anything_runs(trackers, message, capsys):
    with pytest.raises(SystemExit) as stopped:
        main(["--trackers", trackers, "--cases", "1", "--frames", "2"])
    captured = capsys.readouterr()
    assert stopped.value.code == 2 and message in captured.err and captured.out == ""


def test_a_stand_in_times_the_pipeline_around_the_network(capsys):
    specs = "xmem[network=exact,motion=off],xmem[network=exact,crop-size=auto]"
    assert main(["--trackers", specs, "--cases", "1", "--frames", "8"]) == 0
    alone, default = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert alone["mean_dsc"] > 0.95 and default["mean_dsc"] > 0.9  # it saw the labels through the window
    assert alone["network_path"] == "stand-in from the labels" and len(default["grid_px"]) == 1
    assert default["median_ms"] > alone["median_ms"]  # the motion parts cost something
