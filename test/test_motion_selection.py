"""Replaying recorded network outputs through the real tracker (evaluation.motion_selection)."""

from __future__ import annotations

import numpy as np
import pytest
from test_pipeline_tracker import ThresholdCore, info_for, moving_scene

from evaluation import motion_selection
from model.runner import run_tracker
from model.trackers.xmem import XMemSettings, XMemTracker
from sequences.synthetic.generator import SyntheticSequence
from sequences.synthetic.layout import write_case

SMALL = dict(crop_size=64, margin_mm="10", device="cpu")


@pytest.fixture(scope="module")
def recorded(tmp_path_factory):
    """A one-case dataset and a recording of ThresholdCore's outputs on it."""
    root = tmp_path_factory.mktemp("selection")
    frames, truth = moving_scene(10, step=(2, 1))
    info = info_for(frames)
    write_case(
        root / "data" / "S_001", "S_001", SyntheticSequence(frames, truth.astype(np.uint8), info, np.zeros((10, 2)))
    )
    core = motion_selection.RecordingCore(ThresholdCore())
    settings = XMemSettings(**SMALL, **motion_selection.RECORDING_SETTINGS)
    direct = run_tracker(XMemTracker(settings, core=core), frames, truth[:, :, 0], info).masks
    (root / "rec").mkdir()
    np.savez(root / "rec" / "S_001.npz", outputs=np.stack(core.outputs), inputs=np.array(core.inputs))
    return root, direct


def test_replay_reproduces_the_run_it_recorded_and_scores_other_settings(recorded, capsys):
    root, direct = recorded
    # The replay core gives the tracker exactly what the recorded core gave it.
    stored = np.load(root / "rec" / "S_001.npz")
    frames, truth = moving_scene(10, step=(2, 1))
    settings = XMemSettings(**SMALL, **motion_selection.RECORDING_SETTINGS)
    replayed = run_tracker(
        XMemTracker(settings, core=motion_selection.ReplayCore(stored["outputs"], stored["inputs"])),
        frames,
        truth[:, :, 0],
        info_for(frames),
    ).masks
    assert np.array_equal(replayed, direct)
    motion_selection.main(
        [
            "replay",
            str(root / "data"),
            "--recorded",
            str(root / "rec"),
            "xmem[crop-size=64,margin-mm=10]",
            "xmem[crop-size=64,margin-mm=10,align-max-px=0]",
        ]
    )
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "cases: S_001" and len(lines) == 4
    dsc, cd = float(lines[2].split()[0]), float(lines[2].split()[1])
    assert dsc > 0.95 and cd < 0.5  # ThresholdCore tracks the bright target


def test_replay_refuses_settings_that_move_the_crop(recorded):
    root, _ = recorded
    with pytest.raises(SystemExit, match="differs from the recording"):
        motion_selection.main(
            ["replay", str(root / "data"), "--recorded", str(root / "rec"), "xmem[crop-size=64,margin-mm=20]"]
        )


def test_lag_is_negative_behind_the_motion():
    truth = np.zeros((20, 20, 3), bool)
    pred = np.zeros_like(truth)
    for t in range(3):
        truth[5 + 2 * t : 9 + 2 * t, 5:9, t] = True
        pred[4 + 2 * t : 8 + 2 * t, 5:9, t] = True  # one pixel behind, along axis 0
    assert motion_selection.lag_px(pred, truth) == pytest.approx(-1.0)
