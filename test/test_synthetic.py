"""The synthetic cine-MRI generator: determinism, ground truth, motion ranges, dataset layout."""

from __future__ import annotations

import json

import numpy as np
import pytest
import SimpleITK as sitk

from model.io import find_case_dirs, read_dataset_case, read_labels
from sequences.synthetic import MotionRanges, generate_sequence, make_translation_sequence
from sequences.synthetic.__main__ import main as synthetic_main
from sequences.synthetic.generator import Difficulty
from sequences.synthetic.motion import respiratory_trace
from sequences.synthetic.translation import random_shifts

SMALL = (96, 96)


def test_same_seed_same_sequence_other_seed_differs():
    first = generate_sequence(7, 12, 0.35, "lung", shape=SMALL)
    again = generate_sequence(7, 12, 0.35, "lung", shape=SMALL)
    other = generate_sequence(8, 12, 0.35, "lung", shape=SMALL)
    np.testing.assert_array_equal(first.frames, again.frames)
    np.testing.assert_array_equal(first.masks, again.masks)
    assert first.metadata == again.metadata
    assert not np.array_equal(first.frames, other.frames)


@pytest.mark.parametrize("field", [0.35, 1.5])
@pytest.mark.parametrize("region", ["lung", "thorax", "abdomen"])
def test_masks_never_empty_and_frames_realistic(field, region):
    sequence = generate_sequence(3, 12, field, region, shape=(128, 128))
    assert sequence.frames.shape == (128, 128, 12) and sequence.frames.dtype == np.float32
    assert sequence.masks.any(axis=(0, 1)).all()
    assert set(np.unique(sequence.masks)) == {0, 1}
    # Textured anatomy, not flat blobs: many distinct grey levels and noise everywhere.
    assert np.unique(sequence.frames[:, :, 0].round(2)).size > 50
    assert (sequence.frames >= 0).all()  # Rician magnitudes


def test_field_looks_differ_in_spacing_and_noise():
    low = generate_sequence(1, 12, 0.35, "abdomen")
    high = generate_sequence(1, 12, 1.5, "abdomen")
    assert 2.0 <= low.info.pixel_spacing_mm[0] <= 2.5
    assert 1.0 <= high.info.pixel_spacing_mm[0] <= 1.6
    assert low.metadata["snr"] < high.metadata["snr"]
    assert low.info.frame_rate in (4.0, 8.0) and 1.0 <= high.info.frame_rate <= 5.0


def test_trace_cycles_stay_in_requested_ranges():
    rng = np.random.default_rng(0)
    for _ in range(20):
        trace = respiratory_trace(200, 4.0, rng, si_range_mm=(5, 25), ap_range_mm=(1, 5))
        assert np.all((trace.cycle_si_amplitudes_mm >= 5) & (trace.cycle_si_amplitudes_mm <= 25))
        assert np.all((trace.cycle_ap_amplitudes_mm >= 1) & (trace.cycle_ap_amplitudes_mm <= 5))
        assert np.ptp(trace.breathing_si_mm) <= 25 + 1e-9
        assert np.ptp(trace.ap_mm) <= 5 + 1e-9
        # Irregular breathing: amplitudes differ between cycles.
        assert np.std(trace.cycle_si_amplitudes_mm) > 0


def test_tumour_motion_in_masks_matches_requested_amplitude():
    motion = MotionRanges(si_mm=(10.0, 12.0), ap_mm=(2.0, 3.0), max_drift_mm_per_min=0.0)
    sequence = generate_sequence(5, 96, 0.35, "abdomen", motion=motion, frame_rate=8.0)
    rows = [np.nonzero(sequence.masks[:, :, t])[0].mean() for t in range(96)]
    cols = [np.nonzero(sequence.masks[:, :, t])[1].mean() for t in range(96)]
    spacing = sequence.info.pixel_spacing_mm
    si_mm, ap_mm = np.ptp(rows) * spacing[0], np.ptp(cols) * spacing[1]
    # 12 s at 8 fps covers at least two cycles; the slow baseline wobble adds up to 1 mm.
    assert 9.0 <= si_mm <= 13.5, si_mm
    assert 1.0 <= ap_mm <= 4.0, ap_mm
    # The truth moves with the recorded trace (to within a pixel, through-plane changes aside).
    expected = sequence.motion_px[:, 0] + rows[0]
    assert np.abs(np.asarray(rows) - expected).max() < 1.0


def test_through_plane_area_changes():
    sequence = generate_sequence(2, 60, 1.5, "lung", frame_rate=8.0)
    areas = sequence.masks.sum(axis=(0, 1))
    assert areas.max() / areas.min() > 1.05


def test_difficulty_lowers_snr_widens_area_swing_drifts_contrast_and_sets_frame_rates():
    plain = generate_sequence(5, 30, 1.5, "abdomen")
    hard = generate_sequence(
        5,
        30,
        1.5,
        "abdomen",
        difficulty=Difficulty(snr=(4.0, 5.0), area_swing=(0.4, 0.45), contrast_drift=0.5, frame_rates=(8.0,)),
    )
    assert 4.0 <= hard.metadata["snr"] <= 5.0 < 20.0 <= plain.metadata["snr"]
    assert hard.info.frame_rate == 8.0 and hard.metadata["contrast_drift"] == 0.5
    swing = lambda s: np.ptp(s.masks.sum(axis=(0, 1))) / s.masks[:, :, 0].sum()  # noqa: E731
    assert swing(hard) > 1.5 * swing(plain)

    # The tumour brightens by half over the sequence: its mean intensity over its own mask
    # (relative to the frame's median, which the tumour barely moves) rises accordingly.
    def tumour_level(sequence, t):
        frame, mask = sequence.frames[:, :, t], sequence.masks[:, :, t] > 0
        return frame[mask].mean() / np.median(frame)

    assert tumour_level(hard, 29) / tumour_level(hard, 0) > 1.25
    # Without the settings nothing changes: existing datasets stay reproducible.
    again = generate_sequence(5, 30, 1.5, "abdomen", difficulty=Difficulty())
    np.testing.assert_array_equal(again.frames, plain.frames)


def test_cli_difficulty_options_reach_the_cases(tmp_path):
    synthetic_main(
        [
            str(tmp_path),
            "--cases",
            "2",
            "--seed",
            "9",
            "--frames",
            "12:12",
            "--snr",
            "4:6",
            "--area-swing",
            "0.3:0.4",
            "--contrast-drift",
            "0.4",
            "--frame-rates",
            "1,8",
        ]
    )
    for case_dir in find_case_dirs(tmp_path):
        made = json.loads((case_dir / "synthetic.json").read_text())
        assert 4.0 <= made["snr"] <= 6.0 and made["frame_rate"] in (1.0, 8.0)
        assert made["contrast_drift"] == 0.4


def test_cli_writes_a_dataset_the_harness_reads(tmp_path):
    synthetic_main([str(tmp_path), "--cases", "2", "--seed", "4", "--frames", "12:14"])
    cases = find_case_dirs(tmp_path)
    assert [c.name for c in cases] == ["S_001", "S_002"]
    fields = set()
    for case_dir in cases:
        case = read_dataset_case(case_dir)
        labels = read_labels(case_dir)
        assert case.warnings == []
        assert labels.shape == case.frames.shape and 12 <= case.frames.shape[2] <= 14
        np.testing.assert_array_equal(labels[:, :, 0] > 0, case.first_mask)
        assert labels.any(axis=(0, 1)).all()
        # ITK geometry as the example case: time first, in-plane spacing for numpy axes 1, 0.
        image = sitk.ReadImage(str(case_dir / "images" / f"{case_dir.name}_frames.mha"))
        assert image.GetSize()[0] == case.frames.shape[2]
        assert image.GetSpacing()[0] == 5.0
        assert case.info.pixel_spacing_mm == (image.GetSpacing()[2], image.GetSpacing()[1])
        assert isinstance(json.loads((case_dir / "scanned-region.json").read_text()), str)
        fields.add(case.info.field_strength)
    assert fields == {0.35, 1.5}
    # Same command, same seed: identical files.
    again = tmp_path / "again"
    synthetic_main([str(again), "--cases", "1", "--seed", "4", "--frames", "12:14"])
    np.testing.assert_array_equal(
        read_dataset_case(again / "S_001").frames, read_dataset_case(tmp_path / "S_001").frames
    )


def test_translation_sequence_moves_by_the_given_shifts():
    shifts = np.array([[0, 0], [3, -2], [-4.5, 1.5], [7, 4]], float)
    sequence = make_translation_sequence(shifts, n_frames=4)
    np.testing.assert_array_equal(sequence.motion_px, shifts)
    start = np.array(np.nonzero(sequence.masks[:, :, 0])).mean(axis=1)
    for t in range(4):
        centre = np.array(np.nonzero(sequence.masks[:, :, t])).mean(axis=1)
        assert np.abs(centre - start - shifts[t]).max() <= 0.5
    # The content itself moves: frame 3 shifted back matches frame 0 away from the borders.
    back = np.roll(sequence.frames[:, :, 3], (-7, -4), axis=(0, 1))[10:-10, 10:-10]
    original = sequence.frames[:, :, 0][10:-10, 10:-10]
    assert np.corrcoef(back.ravel(), original.ravel())[0, 1] > 0.95
    with pytest.raises(ValueError):
        make_translation_sequence(np.ones((4, 2)), n_frames=4)


def test_random_shifts_are_smooth_bounded_and_travel():
    rng = np.random.default_rng(5)
    shifts = random_shifts(200, rng, max_step_px=3.0, max_offset_px=20.0)
    assert shifts.shape == (200, 2) and np.all(shifts[0] == 0)
    steps = np.abs(np.diff(shifts, axis=0))
    assert steps.max() <= 3.0 + 1e-9
    assert np.abs(shifts).max() <= 20.0 + 1e-9
    assert np.abs(shifts).max() > 10.0  # it travels, not only jitters


def test_cli_writes_translation_cases_whose_masks_follow_the_scene(tmp_path):
    synthetic_main([str(tmp_path), "--kind", "translation", "--cases", "2", "--seed", "9", "--frames", "10:12"])
    cases = find_case_dirs(tmp_path)
    assert [c.name for c in cases] == ["T_001", "T_002"]
    shapes = set()
    for case_dir in cases:
        case = read_dataset_case(case_dir)
        labels = read_labels(case_dir) > 0
        assert case.warnings == [] and 10 <= case.frames.shape[2] <= 12
        np.testing.assert_array_equal(labels[:, :, 0], case.first_mask)
        areas = labels.sum(axis=(0, 1))
        assert areas.min() > 0.85 * areas[0]  # the whole tumour stays in the frame
        shifts = np.array(json.loads((case_dir / "synthetic.json").read_text())["shifts_px"])
        centres = np.array([np.argwhere(labels[:, :, t]).mean(axis=0) for t in range(labels.shape[2])])
        assert np.abs(centres - centres[0] - shifts).max() <= 0.5
        assert np.abs(np.diff(shifts, axis=0)).max() <= 4.0 + 1e-3
        shapes.add(case.frames.shape[:2])
    assert len(shapes) == 2  # frame shapes are drawn per case
