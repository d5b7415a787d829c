"""The flow-failure generator: each kind changes what it says and nothing else, seeded."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest

from sequences.synthetic.__main__ import main as synthetic_main
from sequences.synthetic.dataset import FLOW_FAILURE_KINDS
from sequences.synthetic.generator import FlowFailures, generate_sequence

SHAPE = (128, 128)
FRAMES = 12


def sequence(failures: FlowFailures = FlowFailures()):
    return generate_sequence(5, FRAMES, 0.35, "lung", shape=SHAPE, failures=failures)


@pytest.fixture(scope="module")
def plain():
    return sequence()


def near(masks: np.ndarray, pixels: int) -> np.ndarray:
    """Every pixel within `pixels` of a mask pixel on any frame."""
    union = masks.any(axis=2).astype(np.uint8)
    return cv2.dilate(union, np.ones((2 * pixels + 1, 2 * pixels + 1), np.uint8)).astype(bool)


def test_contrast_reversal_changes_the_tumour_only(plain) -> None:
    reversed_ = sequence(FlowFailures(contrast_reversal=True))
    assert np.array_equal(reversed_.masks, plain.masks)
    changed = np.abs(reversed_.frames - plain.frames).max(axis=2) > 1e-3
    assert changed.any() and not (changed & ~near(plain.masks, 6)).any()
    assert np.allclose(reversed_.frames[:, :, 0], plain.frames[:, :, 0], atol=1e-3)  # +1 at the start


def test_area_growth_grows_the_cut_only(plain) -> None:
    grown = sequence(FlowFailures(area_growth=0.5))
    ratio = np.count_nonzero(grown.masks[:, :, -1]) / np.count_nonzero(plain.masks[:, :, -1])
    assert ratio == pytest.approx(1.5**2, rel=0.15)
    assert np.array_equal(grown.masks[:, :, 0], plain.masks[:, :, 0])
    changed = np.abs(grown.frames - plain.frames).max(axis=2) > 1e-3
    assert not (changed & ~near(grown.masks, 6)).any()
    assert np.array_equal(grown.motion_px, plain.motion_px)


def test_baseline_shift_moves_everything_from_a_third_on(plain) -> None:
    shifted = sequence(FlowFailures(baseline_shift_mm=20.0))
    described = shifted.metadata["flow_failures"]
    at = described["baseline_shift_frame"]
    assert at == FRAMES // 3 and abs(described["baseline_shift_mm"]) > 0
    step = described["baseline_shift_mm"] / shifted.info.pixel_spacing_mm[0]
    assert np.allclose(shifted.motion_px[:at], plain.motion_px[:at])
    assert np.allclose(shifted.motion_px[at:, 0] - plain.motion_px[at:, 0], step)
    assert np.array_equal(shifted.frames[:, :, :at], plain.frames[:, :, :at])
    rows_moved = np.nonzero(shifted.masks[:, :, at])[0].mean() - np.nonzero(plain.masks[:, :, at])[0].mean()
    assert rows_moved == pytest.approx(step, abs=1.0)


def test_distractor_adds_a_lookalike_beside_the_target_only(plain) -> None:
    crowded = sequence(FlowFailures(distractor=True))
    assert np.array_equal(crowded.masks, plain.masks)
    changed = np.abs(crowded.frames - plain.frames).max(axis=2) > 1e-3
    assert changed.any()
    assert not (changed & ~near(plain.masks, 40)).any()  # it passes close by


def test_same_seed_same_failures() -> None:
    failures = FlowFailures(contrast_reversal=True, area_growth=0.3, baseline_shift_mm=10.0, distractor=True)
    assert np.array_equal(sequence(failures).frames, sequence(failures).frames)


def test_the_flowfail_kind_writes_one_kind_per_case(tmp_path) -> None:
    assert synthetic_main([str(tmp_path), "--kind", "flowfail", "--cases", "2", "--seed", "3"]) == 0
    kinds = [json.loads((tmp_path / f"F_00{i}" / "synthetic.json").read_text())["flow_failure_kind"] for i in (1, 2)]
    assert kinds == [FLOW_FAILURE_KINDS[0][0], FLOW_FAILURE_KINDS[1][0]]
