"""evaluation.network_speed: the network's paths timed side by side."""

from __future__ import annotations

import json

import pytest

from evaluation import network_speed


def test_paths_are_timed_side_by_side(capsys: pytest.CaptureFixture[str]) -> None:
    code = network_speed.main(
        # fp32 whatever the CPU: the frozen graphs are its fast path, and auto picks bf16 on CPUs with native bf16.
        ["--device", "cpu", "--precision", "fp32", "--sizes", "32", "--frames", "2", "--warmup", "0"]
        + ["--paths", "eager,frozen-graphs"]
    )
    assert code == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [row["path"] for row in rows] == ["fp32", "fp32, frozen graphs"]
    assert [row["size"] for row in rows] == [32, 32]
    assert rows[0]["vs_first_path"] == 1.0
    assert rows[1]["vs_first_path"] == pytest.approx(rows[1]["median_s"] / rows[0]["median_s"], rel=0.01)


@pytest.mark.parametrize("paths", ["eager,fast", "eager,eager"])
def test_unknown_or_repeated_paths_are_usage_errors(paths: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as stopped:
        network_speed.main(["--paths", paths])
    assert stopped.value.code == 2
    assert "--paths takes distinct names" in capsys.readouterr().err
