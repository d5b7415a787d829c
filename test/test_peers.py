"""The peer trackers recover pure translations and never return an empty mask."""

from __future__ import annotations

import numpy as np
import pytest

from model.errors import InputError
from model.runner import run_tracker
from model.trackers import build_tracker
from sequences.synthetic import make_translation_sequence

PEERS = [
    ("optical-flow", {}),
    ("optical-flow", {"reference": "previous-frame"}),
    ("optical-flow", {"method": "farneback"}),
    ("optical-flow", {"refinement": 0}),
    ("template", {}),
]


def _centroid(mask: np.ndarray) -> np.ndarray:
    return np.array(np.nonzero(mask)).mean(axis=1)


@pytest.mark.parametrize("name, settings", PEERS)
def test_peer_recovers_translation_within_one_pixel(name, settings):
    sequence = make_translation_sequence(n_frames=12, seed=1)
    result = run_tracker(build_tracker(name, **settings), sequence.frames, sequence.masks[:, :, 0] > 0, sequence.info)
    assert result.events == {}
    start = _centroid(result.masks[:, :, 0])
    for t in range(1, 12):
        moved = _centroid(result.masks[:, :, t]) - start
        assert np.abs(moved - sequence.motion_px[t]).max() <= 1.0, (t, moved, sequence.motion_px[t])


# Farneback is left out: it cannot bridge a 15 px jump of a 9 px-radius tumour (known limit).
@pytest.mark.parametrize("name, settings", [p for p in PEERS if p[1].get("method") != "farneback"])
def test_peer_follows_large_integer_jumps(name, settings):
    shifts = np.array([[0, 0], [5, 0], [10, -3], [14, -6], [9, -2], [2, 3]], float)
    sequence = make_translation_sequence(shifts, n_frames=6, seed=2)
    result = run_tracker(build_tracker(name, **settings), sequence.frames, sequence.masks[:, :, 0] > 0, sequence.info)
    start = _centroid(result.masks[:, :, 0])
    errors = [np.abs(_centroid(result.masks[:, :, t]) - start - shifts[t]).max() for t in range(6)]
    assert max(errors) <= 1.0, errors


@pytest.mark.parametrize("name", ["optical-flow", "template"])
def test_peer_keeps_last_mask_on_a_blank_frame(name):
    sequence = make_translation_sequence(n_frames=3)
    tracker = build_tracker(name)
    tracker.start(sequence.frames[:, :, 0], sequence.masks[:, :, 0] > 0, sequence.info)
    tracked = tracker.track(sequence.frames[:, :, 1])
    blank = tracker.track(np.zeros_like(sequence.frames[:, :, 2]))
    assert blank.any() and blank.dtype == bool
    if name == "template":  # a flat frame has no correlation peak: the last mask is kept
        np.testing.assert_array_equal(blank, tracked)
        assert tracker.events()["kept_last"] == 1


def test_optical_flow_settings_are_validated():
    with pytest.raises(InputError, match="optical-flow settings: .*reference"):
        build_tracker("optical-flow", reference="backwards")
    with pytest.raises(InputError, match="optical-flow settings: .*method"):
        build_tracker("optical-flow", method="lucas-kanade")
    with pytest.raises(InputError, match="optical-flow settings: .*refinement"):
        build_tracker("optical-flow", refinement=-1)
