"""Stand-in networks: what each outputs on a known frame, and that it sees only the window."""

from __future__ import annotations

import math

import numpy as np
import pytest

from evaluation.benchmark import parse_spec, split_network
from evaluation.standins import CREEP_FRAMES_PER_PX, StandInCore
from model.pipeline.masks import dice
from model.trackers import SequenceInfo
from model.trackers.xmem import XMemSettings, XMemTracker


def disc_case(shape=(64, 64), n_frames=30, radius=6.0, step=(0.0, 1.0)):
    """Textured frames (W, H, T) with a bright disc moving `step` px a frame, and its labels."""
    rows, cols = np.indices(shape)
    rng = np.random.default_rng(0)
    labels = np.zeros((*shape, n_frames), bool)
    frames = np.empty((*shape, n_frames), np.float32)
    texture = rng.uniform(0.0, 20.0, shape).astype(np.float32)
    for t in range(n_frames):
        centre = (32 + step[0] * t, 20 + step[1] * t)
        labels[:, :, t] = np.hypot(rows - centre[0], cols - centre[1]) <= radius
        frames[:, :, t] = texture + 100.0 * labels[:, :, t]
    return frames, labels


INFO = SequenceInfo((64, 64), 30, (1.0, 1.0), 4.0, 1.5, "abdomen")


def tracker_around(kind: str, frames: np.ndarray, labels: np.ndarray, **settings) -> XMemTracker:
    core = StandInCore(kind, labels, frames)
    tracker = XMemTracker(XMemSettings(**settings), core=core)
    core.see_through(tracker)
    return tracker


def test_exact_outputs_the_label_and_the_tracker_follows_it() -> None:
    frames, labels = disc_case()
    tracker = tracker_around("exact", frames, labels, crop_size=64, motion="off")
    tracker.start(frames[:, :, 0], labels[:, :, 0], INFO)
    for t in range(1, 6):  # the window is resampled to the network grid and back
        assert dice(tracker.track(frames[:, :, t]), labels[:, :, t]) > 0.97


def test_a_stand_in_sees_only_the_window() -> None:
    frames, labels = disc_case()
    tracker = tracker_around("exact", frames, labels, crop_size=64, motion="off", margin_mm="2")
    tracker.start(frames[:, :, 0], labels[:, :, 0], INFO)
    core = tracker._core
    # Move the label far outside the small window: the stand-in must see nothing of it.
    far = np.zeros_like(labels[:, :, 1])
    far[2:6, 58:62] = True
    core._labels[:, :, 1] = far
    foreground = core.predict(None)[1].numpy()
    assert foreground.max() == 0.0


def test_jitter_moves_the_boundary_about_a_pixel_with_a_soft_edge() -> None:
    frames, labels = disc_case(radius=12.0)
    core = StandInCore("jitter", labels, frames)
    core.reset()
    first, second = core.frame_map(1), core.frame_map(1)
    assert not np.array_equal(first, second)  # a new field every frame
    assert ((first > 0.05) & (first < 0.95)).any()  # soft edge
    area = np.count_nonzero(first > 0.5)
    radius = math.sqrt(area / math.pi)
    assert abs(radius - 12.0) < 1.5
    changed = np.count_nonzero((first > 0.5) != labels[:, :, 1])
    perimeter = 2 * math.pi * 12.0
    assert 0.2 * perimeter < changed < 3 * perimeter  # about a pixel's width along the boundary


def test_creep_grows_into_similar_pixels_every_ten_frames() -> None:
    frames, labels = disc_case(step=(0.0, 0.0))
    core = StandInCore("creep", labels, frames)
    core.reset()
    assert np.array_equal(core.frame_map(CREEP_FRAMES_PER_PX - 1) > 0.5, labels[:, :, 0])
    areas = [np.count_nonzero(core.frame_map(t)) for t in (0, CREEP_FRAMES_PER_PX, 2 * CREEP_FRAMES_PER_PX)]
    assert areas[0] < areas[1] < areas[2]
    grown = core.frame_map(2 * CREEP_FRAMES_PER_PX) > 0.5
    assert grown[labels[:, :, 0]].all()  # it only grows


def test_lost_is_exact_for_a_third_then_two_radii_away() -> None:
    frames, labels = disc_case(n_frames=30)
    core = StandInCore("lost", labels, frames)
    core.reset()
    assert np.array_equal(core.frame_map(9) > 0.5, labels[:, :, 9])
    wrong = core.frame_map(10) > 0.5
    assert np.count_nonzero(wrong & labels[:, :, 10]) < 0.05 * np.count_nonzero(wrong)
    assert abs(np.count_nonzero(wrong) - np.count_nonzero(labels[:, :, 10])) <= 2
    cols = np.nonzero(wrong)[1].mean() - np.nonzero(labels[:, :, 10])[1].mean()
    assert cols == pytest.approx(2 * math.sqrt(np.count_nonzero(labels[:, :, 0]) / math.pi), abs=1.0)


def test_the_network_key_is_xmem_only_and_named() -> None:
    assert split_network(parse_spec("xmem[network=jitter,motion=off]")[1]) == ("jitter", {"motion": "off"})
    assert split_network(parse_spec("xmem")[1]) == (None, {})
    with pytest.raises(ValueError, match="network takes one of"):
        parse_spec("xmem[network=perfect]")
    with pytest.raises(ValueError, match="not a setting of optical-flow"):
        parse_spec("optical-flow[network=exact]")
