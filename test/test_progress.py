"""model.progress: a live line on a terminal, one summary line elsewhere, never on stdout."""

import io

import pytest
from conftest import EXAMPLE_CASE

from model.progress import Progress
from model.runner import run_tracker
from model.trackers import build_tracker


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_on_a_terminal_one_live_line_with_the_time_left_then_the_summary():
    stream = Terminal()
    with Progress("xmem", 4, stream=stream, interval_s=0) as progress:
        for _ in range(3):
            progress.advance()
        assert stream.getvalue().endswith("\x1b[K") and "\n" not in stream.getvalue()
        assert "xmem: 3/4 frames, " in stream.getvalue() and " s a frame, " in stream.getvalue()
        assert progress.live_line(6.0) == "xmem: 3/4 frames, 2.000 s a frame, 2 s left"
    shown = stream.getvalue()
    assert shown.count("\n") == 1 and shown.endswith("\x1b[K\n") and "xmem: 3/4 frames in " in shown


@pytest.mark.parametrize("summary", [True, False])
def test_elsewhere_nothing_while_it_runs_then_one_summary_line_if_asked(summary):
    stream = io.StringIO()
    progress = Progress("copy", 10, unit="case", stream=stream, summary=summary)
    for _ in range(10):
        progress.advance()
    assert stream.getvalue() == ""
    progress.close()
    if summary:
        assert stream.getvalue().startswith("copy: 10/10 cases in ") and stream.getvalue().endswith(" a case)\n")
    else:
        assert stream.getvalue() == ""
    assert progress.summary_line(5.0) == "copy: 10/10 cases in 5.0 s (0.500 s a case)"


def test_the_runner_reports_every_tracked_frame():
    from model.io import read_dataset_case

    case = read_dataset_case(EXAMPLE_CASE)
    calls = []
    run_tracker(build_tracker("copy"), case.frames, case.first_mask, case.info, on_frame=lambda: calls.append(1))
    assert len(calls) == case.frames.shape[2] - 1


def test_the_entry_point_shows_progress_on_a_terminal_on_stderr_only(tmp_path, run_main, monkeypatch):
    import sys

    monkeypatch.setattr(sys.stderr, "isatty", lambda: True, raising=False)
    done = run_main("--case", EXAMPLE_CASE, "--output", tmp_path / "out", "--tracker", "copy")
    assert done.returncode == 0
    assert "\rcopy: 9/9 frames in " in done.stderr
    assert "\r" not in done.stdout and "copy: " not in done.stdout


def test_the_benchmark_ends_each_tracker_with_one_summary_line_on_stderr(capsys):
    from evaluation.benchmark import benchmark_tracker

    run = benchmark_tracker("copy", [EXAMPLE_CASE, EXAMPLE_CASE], None)
    assert len(run.cases) == 2
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err.startswith("copy: 2/2 cases in ") and captured.err.count("\n") == 1
