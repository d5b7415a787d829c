"""python -m evaluation.calibrate: folds, the selection rule, honest held-out scores, resuming a
stopped run, and the command end to end with cheap trackers on tiny generated cases (the cells
run in this process instead of a fresh one each)."""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path

import numpy as np
import pytest
from conftest import REPO

import evaluation.calibrate as calibrate_module
from evaluation.benchmark import benchmark_tracker, check_spec
from evaluation.calibrate import (
    DEFAULT_GRID,
    DEFAULT_LABEL,
    PEER_LABEL,
    CellStore,
    calibrate,
    cell_spec,
    choose,
    cross_validate,
    make_folds,
    read_grid,
    weights_of,
)
from model.errors import InputError
from model.io import dataset_case_id, find_case_dirs
from model.releases import file_digest
from model.settings_file import read_settings_file
from model.trackers.optical_flow import OpticalFlowSettings
from sequences.synthetic import write_dataset

FLOW_GRID = ["optical-flow", "optical-flow[refinement=0]", "optical-flow[reference=previous-frame]"]


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("calibration") / "data"
    write_dataset(root, 3, seed=1, frames=(8, 10))
    return root


def grid_file(folder: Path, cells: list[str]) -> Path:
    path = folder / "grid.json"
    path.write_text(json.dumps({"cells": cells}))
    return path


def in_process(calls: list[str]):
    """The benchmark's worker in this process, recording the specs it ran."""

    def run(spec: str, case_dirs: list[Path]):
        calls.append(spec)
        return benchmark_tracker(spec, case_dirs, None)

    return run


def score(dsc: float, cd: float) -> dict[str, float]:
    return {"dsc": dsc, "hd95": 1.0, "masd": 1.0, "cd": cd, "rel_d98": 1.0}


def test_folds_are_disjoint_cover_every_case_and_follow_the_seed():
    cases = [f"C_{i:03d}" for i in range(23)]
    folds = make_folds(cases, 5, seed=3)
    flat = [case for fold in folds for case in fold]
    assert sorted(flat) == cases and len(flat) == len(set(flat))
    assert {len(fold) for fold in folds} == {4, 5}
    assert make_folds(cases, 5, seed=3) == folds and make_folds(cases, 5, seed=4) != folds


def test_the_rule_mean_dsc_then_centre_distance_within_the_tolerance_then_grid_order():
    cases = ["a", "b"]
    scores = {
        "first": {"a": score(0.90, 1.0), "b": score(0.90, 1.0)},
        "sharper": {"a": score(0.9005, 0.5), "b": score(0.9005, 0.5)},
        "better": {"a": score(0.95, 2.0), "b": score(0.95, 2.0)},
    }
    assert choose(["first", "sharper"], scores, cases, tolerance=0.001) == "sharper"  # within: cd decides
    assert choose(["first", "sharper"], scores, cases, tolerance=0.0) == "sharper"  # higher dsc
    assert choose(["first", "sharper", "better"], scores, cases, tolerance=0.001) == "better"
    scores["twin"] = scores["first"]
    assert choose(["twin", "first"], scores, cases, tolerance=0.001) == "twin"
    assert choose(["first", "twin"], scores, cases, tolerance=0.001) == "first"


def test_the_chosen_settings_never_saw_the_fold_that_judges_them():
    rng = np.random.default_rng(0)
    cases = [f"C_{i:02d}" for i in range(12)]
    cells = [f"xmem[prior-weight=0.{weight}]" for weight in range(1, 5)]
    labels = [*cells, DEFAULT_LABEL, PEER_LABEL]
    scores = {label: {case: score(rng.uniform(0.8, 0.9), rng.uniform(0, 2)) for case in cases} for label in labels}
    folds = make_folds(cases, 4, seed=0)
    result = cross_validate("xmem", cells, scores, folds, tolerance=0.001)
    for fold in result.folds:
        # Whatever the fold's own cases score, the cell chosen for it stays the same...
        rigged = {label: dict(by_case) for label, by_case in scores.items()}
        for cell in cells:
            for case in fold.cases:
                rigged[cell][case] = score(1.0 if cell != fold.chosen else 0.0, 0.0)
        again = cross_validate("xmem", cells, rigged, folds, tolerance=0.001)
        assert again.folds[fold.number - 1].chosen == fold.chosen
        # ...and it is judged on exactly the fold's cases.
        judged = np.mean([scores[fold.chosen][case]["dsc"] for case in fold.cases])
        assert math.isclose(fold.held_out["chosen"]["dsc"], judged)
    # A cell that wins only on one fold's cases is chosen for every other fold, never for its own.
    lucky = cells[3]
    scores[lucky] = {case: score(0.84, 3.0) for case in cases}
    scores[lucky].update({case: score(1.0, 0.0) for case in folds[0]})
    result = cross_validate("xmem", cells, scores, folds, tolerance=0.001)
    assert result.folds[0].chosen != lucky and all(fold.chosen == lucky for fold in result.folds[1:])
    assert result.chosen == lucky  # with its own cases among the choosers it would have won


def test_the_default_grid_holds_valid_xmem_cells_the_default_first():
    tracker, cells = read_grid(DEFAULT_GRID)
    assert tracker == "xmem" and cells[0] == "xmem" and 10 <= len(cells) <= 23  # about 80 minutes on one GPU
    for cell in cells:
        check_spec(cell_spec(cell, ["network=exact"], REPO / "resources" / "trackrad-xmem.pth"))


def test_set_options_join_every_cell_and_may_not_clash_with_one():
    assert cell_spec("xmem[prior-weight=0.5]", ["network=creep", "device=cpu"], None) == (
        "xmem[network=creep,device=cpu,prior-weight=0.5]"
    )
    assert cell_spec("xmem", ["network=exact"], Path("w.pth")) == "xmem[network=exact]@w.pth"
    with pytest.raises(ValueError, match="sets a key that cell"):
        cell_spec("xmem[prior-weight=0.5]", ["prior_weight=0.2"], None)
    with pytest.raises(ValueError, match="not a setting"):
        cell_spec("xmem", ["speed=3"], None)


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        ("[1, 2]", "a list of tracker specs"),
        ('{"cells": ["xmem", "optical-flow"]}', "more than one tracker"),
        ('{"cells": ["xmem@w.pth"]}', "names weights"),
        ('{"cells": ["xmem[nope=1]"]}', "not a setting"),
        ('{"cells": ["xmem", "xmem"]}', "appears twice"),
    ],
)
def test_a_bad_grid_is_one_line_naming_it(tmp_path, content, problem):
    path = tmp_path / "grid.json"
    path.write_text(content)
    with pytest.raises(InputError, match=problem) as raised:
        read_grid(path)
    assert str(raised.value).startswith(f"{path}: ")


def test_a_stopped_calibration_resumes_without_rerunning_finished_cells(dataset, tmp_path, capsys):
    grid, out, work = grid_file(tmp_path, FLOW_GRID), tmp_path / "pipeline.json", tmp_path / "work"
    calls: list[str] = []
    run = in_process(calls)

    def stopped_after_two(spec: str, case_dirs: list[Path]):
        if len(calls) == 2:
            raise KeyboardInterrupt  # as a killed run: nothing after the second cell is kept
        return run(spec, case_dirs)

    with pytest.raises(KeyboardInterrupt):
        calibrate(dataset, grid, out, work, folds=3, run_cell=stopped_after_two)
    assert len(calls) == 2 and not out.exists()
    finished = {path: path.stat().st_mtime_ns for path in (work / "cells").iterdir()}
    assert len(finished) == 2 and not list((work / "cells").glob(".*"))  # no partial file

    calls.clear()
    calibrate(dataset, grid, out, work, folds=3, run_cell=run)
    assert len(calls) == 1 and calls[0] == FLOW_GRID[2]  # the peer and the first cell were done
    assert all(path.stat().st_mtime_ns == mtime for path, mtime in finished.items())
    assert "done before" in capsys.readouterr().err
    calls.clear()
    calibrate(dataset, grid, out, work, folds=3, seed=5, run_cell=run)  # other folds, same runs
    assert calls == []


def test_a_cell_another_calibration_finished_meanwhile_is_not_run_again(dataset, tmp_path, capsys):
    grid, out, work = grid_file(tmp_path, FLOW_GRID), tmp_path / "pipeline.json", tmp_path / "work"
    calls: list[str] = []
    run = in_process(calls)
    case_ids = [dataset_case_id(case_dir) for case_dir in find_case_dirs(dataset)]
    store = CellStore(work, weights_of("optical-flow", None)[1], case_ids)

    def with_a_neighbour(spec: str, case_dirs: list[Path]):
        result = run(spec, case_dirs)
        if len(calls) == 1:  # a second calibration on the same folder finishes the last cell
            store.save(FLOW_GRID[2], run(FLOW_GRID[2], case_dirs), 1.0)
        return result

    calibrate(dataset, grid, out, work, folds=3, run_cell=with_a_neighbour)
    assert calls.count(FLOW_GRID[2]) == 1 and sorted(set(calls)) == sorted(FLOW_GRID)
    assert "done meanwhile" in capsys.readouterr().err


def test_a_run_kept_from_before_a_default_changed_runs_again(dataset, tmp_path, monkeypatch):
    grid, out, work = grid_file(tmp_path, FLOW_GRID), tmp_path / "pipeline.json", tmp_path / "work"
    calls: list[str] = []
    calibrate(dataset, grid, out, work, folds=3, run_cell=in_process(calls))
    assert sorted(calls) == sorted(FLOW_GRID)

    refinement = {f.name: f for f in dataclasses.fields(OpticalFlowSettings)}["refinement"]
    monkeypatch.setattr(refinement, "default", refinement.default + 1)
    calls.clear()
    calibrate(dataset, grid, out, work, folds=3, run_cell=in_process(calls))
    # The cell that sets refinement itself is kept; the two that took the default run again.
    assert sorted(calls) == sorted([FLOW_GRID[0], FLOW_GRID[2]])


def test_a_run_kept_under_another_file_name_is_found_by_its_content(dataset, tmp_path, capsys):
    grid, out, work = grid_file(tmp_path, FLOW_GRID), tmp_path / "pipeline.json", tmp_path / "work"
    calls: list[str] = []
    calibrate(dataset, grid, out, work, folds=3, run_cell=in_process(calls))
    kept = sorted((work / "cells").glob("*.json"))
    for number, path in enumerate(kept):  # as files named before the key's settings were sorted
        path.rename(path.with_name(f"kept-{number}.json"))
    calls.clear()
    calibrate(dataset, grid, out, work, folds=3, run_cell=in_process(calls))
    assert calls == [] and "kept-0.json" in capsys.readouterr().err  # it says where it found the run
    record = json.loads((work / "cells" / "kept-0.json").read_text())
    record["settings"]["refinement"] = -1  # a run with other settings is not today's
    (work / "cells" / "kept-0.json").write_text(json.dumps(record))
    calibrate(dataset, grid, out, work, folds=3, run_cell=in_process(calls))
    assert calls == [record["spec"]]


def test_the_command_writes_the_settings_file_and_prints_the_table(dataset, tmp_path, monkeypatch, capsys):
    calls: list[str] = []
    monkeypatch.setattr(calibrate_module, "benchmark_in_fresh_process", in_process(calls))
    cells = ["xmem", "xmem[prior-weight=0.5]", "xmem[motion-prior=off]"]
    weights = REPO / "resources" / "trackrad-xmem.pth"
    out = tmp_path / "res" / "pipeline.json"
    argv = [str(dataset), "--grid", str(grid_file(tmp_path, cells)), "--out", str(out), "--work", str(tmp_path / "w")]
    argv += ["--weights", str(weights), "--folds", "3", "--set", "network=exact", "--set", "crop-size=64"]
    assert calibrate_module.main(argv) == 0
    printed = capsys.readouterr()
    # One run per distinct spec: the bare cell is the default, and optical flow runs as a peer.
    assert sorted(calls) == sorted(
        [
            f"xmem[network=exact,crop-size=64{extra}]@{weights}"
            for extra in ("", ",prior-weight=0.5", ",motion-prior=off")
        ]
        + ["optical-flow"]
    )
    assert "| fold | cases | chosen on the other folds | chosen (held out) | default | optical flow |" in printed.out
    assert len([line for line in printed.out.splitlines() if line.startswith("| ")]) == 1 + 3 + 1
    assert "left" in printed.err and f"written: {out}" in printed.out
    tracker, resolved = read_settings_file(out, "--settings")
    provenance = resolved.provenance
    assert tracker == "xmem" and provenance["weights_sha256"] == file_digest(weights)[1]
    assert provenance["case_ids"] == ["S_001", "S_002", "S_003"]
    assert provenance["command"].startswith("python -m evaluation.calibrate ") and provenance["date"]
    assert len(provenance["scores"]["folds"]) == 3 and set(provenance["scores"]["held_out"]) == {
        "chosen",
        DEFAULT_LABEL,
        PEER_LABEL,
    }
    chosen = provenance["scores"]["chosen"]
    assert chosen in cells and "crop_size" not in resolved.settings and "network" not in resolved.settings
    assert resolved.settings == {"xmem": {}, cells[1]: {"prior_weight": 0.5}, cells[2]: {"motion_prior": "off"}}[chosen]


def test_usage_and_input_errors(dataset, tmp_path, capsys):
    with pytest.raises(SystemExit) as stopped:
        calibrate_module.main([str(dataset), "--out", str(tmp_path / "p.json"), "--folds", "1"])
    assert stopped.value.code == 2 and "--folds must be at least 2" in capsys.readouterr().err
    grid = grid_file(tmp_path, FLOW_GRID)
    code = calibrate_module.main(
        [str(dataset), "--grid", str(grid), "--out", str(tmp_path / "p.json"), "--weights", "w"]
    )
    assert code == 1 and capsys.readouterr().err.endswith("the optical-flow tracker takes no weights\n")
    code = calibrate_module.main([str(dataset / "S_001"), "--grid", str(grid), "--out", str(tmp_path / "p.json")])
    assert code == 1 and "at least 2 cases" in capsys.readouterr().err
