"""Settings files (model.settings_file): the round trip, the resolution order at each level with
temporary folders in place of /opt/ml/model/ and resources/, the weights warning, bad files, and
the entry point that takes its options' defaults from the resolved file."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import EXAMPLE_CASE

import model.settings_file as settings_file
from model.settings_file import ENV_VAR, SettingsFileError, read_settings_file, resolve_settings, write_settings_file

PROVENANCE = {"weights_sha256": "ab" * 32, "case_ids": ["A_001", "A_002"], "scores": {"overall": {"dsc": 0.9}}}


def flow_file(path: Path, reference: str = "previous-frame", **extra: object) -> Path:
    return write_settings_file(path, "optical-flow", {"reference": reference, **extra}, PROVENANCE)


@pytest.fixture
def places(tmp_path, monkeypatch) -> tuple[Path, Path]:
    """(model folder, resources folder), empty, standing in for /opt/ml/model and resources/."""
    model_dir, resources_dir = tmp_path / "opt-ml-model", tmp_path / "resources"
    model_dir.mkdir()
    resources_dir.mkdir()
    monkeypatch.setattr(settings_file, "MODEL_DIR", model_dir)
    monkeypatch.setattr(settings_file, "RESOURCES_DIR", resources_dir)
    monkeypatch.delenv(ENV_VAR, raising=False)
    return model_dir, resources_dir


def test_a_written_file_reads_back_as_written(tmp_path):
    path = write_settings_file(tmp_path / "p.json", "xmem", {"prior_weight": 0.5, "motion-prior": "fixed"}, PROVENANCE)
    tracker, resolved = read_settings_file(path, "--settings")
    assert tracker == "xmem"
    assert resolved.settings == {"prior_weight": 0.5, "motion_prior": "fixed"}
    assert resolved.provenance == PROVENANCE
    assert json.loads(path.read_text())["settings"] == {"prior_weight": 0.5, "motion-prior": "fixed"}
    assert resolved.summary().startswith(f"{path} (sha256 {resolved.sha256[:12]}, from --settings)")


def test_each_level_of_the_resolution_order(places, tmp_path):
    model_dir, resources_dir = places
    assert resolve_settings("optical-flow").source == "built-in defaults"
    flow_file(resources_dir / "pipeline.json", "first-frame")
    assert resolve_settings("optical-flow").source == "resources"
    flow_file(model_dir / "pipeline.json", "previous-frame")
    found = resolve_settings("optical-flow")
    assert found.source == str(model_dir) and found.settings == {"reference": "previous-frame"}
    flow_file(tmp_path / "env.json", "first-frame", refinement=2)
    found = resolve_settings("optical-flow", environ={ENV_VAR: str(tmp_path / "env.json")})
    assert found.source == f"${ENV_VAR}" and found.settings["refinement"] == 2
    flow_file(tmp_path / "cli.json", refinement=7)
    found = resolve_settings("optical-flow", tmp_path / "cli.json", environ={ENV_VAR: str(tmp_path / "env.json")})
    assert found.source == "--settings" and found.settings["refinement"] == 7


def test_a_file_of_another_tracker_is_passed_over_except_when_named(places, tmp_path):
    model_dir, resources_dir = places
    write_settings_file(model_dir / "pipeline.json", "xmem", {"prior_weight": 0.5}, PROVENANCE)
    flow_file(resources_dir / "pipeline.json")
    assert resolve_settings("optical-flow").source == "resources"
    assert resolve_settings("xmem").source == str(model_dir)
    assert resolve_settings("template").source == "built-in defaults"
    with pytest.raises(SettingsFileError, match="holds settings of the xmem tracker, not of optical-flow"):
        resolve_settings("optical-flow", model_dir / "pipeline.json")


def test_the_weights_warning_only_for_other_weights(tmp_path):
    _, resolved = read_settings_file(flow_file(tmp_path / "p.json"), "--settings")
    assert resolved.weights_warning("ab" * 32) is None
    warning = resolved.weights_warning("cd" * 32)
    assert str(tmp_path / "p.json") in warning and "abababababab" in warning and "cdcdcdcdcdcd" in warning


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        ("{not json", "not a JSON settings file"),
        (b"\xff\xfe", "not a JSON settings file"),
        ('["a list"]', 'a JSON object with a "settings" object'),
        ('{"tracker": "optical-flow", "settings": {}, "setings": {}}', "unknown key 'setings'"),
        ('{"tracker": "nope", "settings": {}}', "unknown tracker 'nope'"),
        ('{"tracker": "copy", "settings": {}}', "must name a tracker with settings"),
        ('{"tracker": "optical-flow", "settings": {"speed": 3}}', "'speed' is not a setting of the optical-flow"),
        ('{"tracker": "optical-flow", "settings": {"refinement": "3"}}', 'refinement takes a int, got "3"'),
        ('{"tracker": "optical-flow", "settings": {"refinement": true}}', "refinement takes a int, got true"),
        ('{"tracker": "optical-flow", "settings": {"method": "lucas"}}', "method must be one of"),
    ],
)
def test_a_bad_file_is_one_line_naming_it_and_exit_1(places, tmp_path, run_main, content, problem):
    bad = tmp_path / "bad.json"
    bad.write_bytes(content if isinstance(content, bytes) else content.encode())
    with pytest.raises(SettingsFileError, match=problem):
        read_settings_file(bad, "--settings")
    done = run_main(
        "--case", EXAMPLE_CASE, "--output", tmp_path / "out", "--tracker", "optical-flow", "--settings", bad
    )
    assert done.returncode == 1 and done.stdout == ""
    assert done.stderr.count("\n") == 1 and done.stderr.startswith(f"error: {bad}: ")
    assert not (tmp_path / "out").exists()


def test_a_missing_or_unreadable_file_is_one_line_naming_it(places, tmp_path, run_main, monkeypatch):
    missing = tmp_path / "missing.json"
    monkeypatch.setenv(ENV_VAR, str(missing))
    done = run_main("--case", EXAMPLE_CASE, "--output", tmp_path / "out", "--tracker", "optical-flow")
    assert done.returncode == 1 and done.stderr == f"error: {missing}: settings file not found (from ${ENV_VAR})\n"
    done = run_main(
        "--case", EXAMPLE_CASE, "--output", tmp_path / "out", "--tracker", "optical-flow", "--settings", tmp_path
    )
    assert (
        done.returncode == 1
        and done.stderr == f"error: {tmp_path}: is a directory, not a settings file (from --settings)\n"
    )


def test_the_entry_point_starts_from_the_file_and_options_override_single_settings(places, tmp_path, run_main):
    _, resources_dir = places
    path = flow_file(resources_dir / "pipeline.json", "previous-frame", refinement=3)
    report = tmp_path / "run.json"
    args = ("--case", EXAMPLE_CASE, "--output", tmp_path / "out", "--tracker", "optical-flow", "--report", report)
    done = run_main(*args, "--refinement", "0")
    assert done.returncode == 0, done.stderr
    sha = json.loads(report.read_text())["settings_file"]["sha256"]
    assert f"settings: {path} (sha256 {sha[:12]}, from resources)" in done.stdout.splitlines()
    recorded = json.loads(report.read_text())
    assert recorded["settings"]["reference"] == "previous-frame" and recorded["settings"]["refinement"] == 0
    assert recorded["settings_file"] == {"source": "resources", "file": str(path), "sha256": sha}

    done = run_main("--tracker", "optical-flow", "--help")
    assert done.returncode == 0 and "patch matching only) (default 3)" in " ".join(done.stdout.split())

    done = run_main("--case", EXAMPLE_CASE, "--output", tmp_path / "out2", "--tracker", "copy", "--report", report)
    assert done.returncode == 0 and "settings: built-in defaults" in done.stdout.splitlines()
    assert json.loads(report.read_text())["settings_file"] == {"source": "built-in defaults", "file": "", "sha256": ""}


def test_a_file_for_other_weights_warns_once(places, tmp_path, run_main, monkeypatch):
    from model.trackers.optical_flow import OpticalFlowTracker

    # Only the weights' digest matters here: a cheap tracker that reports other weights.
    monkeypatch.setattr(OpticalFlowTracker, "describe", lambda self: {"weights_sha256": "cd" * 32})
    path = flow_file(tmp_path / "p.json")
    report = tmp_path / "run.json"
    args = ("--case", EXAMPLE_CASE, "--output", tmp_path / "out", "--tracker", "optical-flow", "--report", report)
    done = run_main(*args, "--settings", path)
    assert done.returncode == 0, done.stderr
    mismatch = [line for line in done.stderr.splitlines() if "calibrated for weights" in line]
    assert len(mismatch) == 1 and mismatch[0].startswith(f"warning: {path}: ")
    assert any("calibrated for weights" in line for line in json.loads(report.read_text())["warnings"])
    monkeypatch.setattr(OpticalFlowTracker, "describe", lambda self: {"weights_sha256": "ab" * 32})
    done = run_main(*args, "--settings", path)
    assert done.returncode == 0 and "calibrated for weights" not in done.stderr
