"""model.io: layouts, geometry, the documented input decisions, atomic output."""
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk
from conftest import EXAMPLE_CASE, OUTPUT_RELATIVE, snapshot_tree, square_sequence, write_mha

from model.io import (
    DEFAULT_FIELD_STRENGTH,
    DEFAULT_FRAME_RATE,
    DEFAULT_SCANNED_REGION,
    CaseError,
    read_case,
    read_dataset_case,
    read_labels,
    write_output,
)


def test_example_case_reads_with_time_last_and_its_json_values():
    case = read_dataset_case(EXAMPLE_CASE)
    assert case.frames.shape == (125, 125, 10) and case.frames.dtype == np.float32
    assert case.first_mask.shape == (125, 125) and case.first_mask.dtype == bool
    assert case.info.n_frames == 10
    assert (case.info.frame_rate, case.info.field_strength, case.info.scanned_region) == (
        8.0, 0.35, "abdomen")
    assert case.spacing == (5.0, 1.0, 1.0)
    labels = read_labels(EXAMPLE_CASE)
    assert labels.shape == (125, 125, 10)
    np.testing.assert_array_equal(labels[:, :, 0] > 0, case.first_mask)


def test_pixel_spacing_follows_numpy_axes(make_input):
    frames, masks = square_sequence(shape=(24, 32))
    case = read_case(make_input(frames, masks[:, :, :1], spacing=(0.25, 1.5, 2.5)))
    assert case.info.frame_shape == (24, 32)
    # ITK spacing is (time, numpy axis 1, numpy axis 0).
    assert case.info.pixel_spacing_mm == (2.5, 1.5)


def test_missing_json_files_fall_back_to_documented_defaults(make_input):
    root = make_input()
    for name in ("frame-rate.json", "b-field-strength.json", "scanned-region.json"):
        (root / name).unlink()
    case = read_case(root)
    assert (case.info.frame_rate, case.info.field_strength, case.info.scanned_region) == (
        DEFAULT_FRAME_RATE, DEFAULT_FIELD_STRENGTH, DEFAULT_SCANNED_REGION)
    assert len(case.warnings) == 3


def test_mask_values_above_zero_are_binarised(make_input):
    frames, masks = square_sequence()
    case = read_case(make_input(frames, masks[:, :, :1] * 255))
    np.testing.assert_array_equal(case.first_mask, masks[:, :, 0] > 0)
    assert any("binarised" in w for w in case.warnings)


def test_nonfinite_pixels_are_sanitised(make_input):
    frames, masks = square_sequence()
    frames[0, 0, 1], frames[1, 1, 2], frames[2, 2, 3] = np.nan, np.inf, -np.inf
    case = read_case(make_input(frames, masks[:, :, :1]))
    assert np.isfinite(case.frames).all() and case.nonfinite_pixels == 3
    assert (case.frames[0, 0, 1], case.frames[1, 1, 2], case.frames[2, 2, 3]) == (0.0, 100.0, 0.0)


def test_write_output_copies_geometry_compresses_and_leaves_no_temporary(make_input, tmp_path):
    frames, masks = square_sequence(shape=(24, 32))
    case = read_case(make_input(frames, masks[:, :, :1], spacing=(0.25, 1.5, 2.5),
                                origin=(1.0, 2.0, 3.0)))
    path = write_output(tmp_path / "out", masks, case)
    assert path == tmp_path / "out" / OUTPUT_RELATIVE
    assert [p.name for p in path.parent.iterdir()] == ["output.mha"]
    image = sitk.ReadImage(str(path))
    assert image.GetSpacing() == (0.25, 1.5, 2.5) and image.GetOrigin() == (1.0, 2.0, 3.0)
    np.testing.assert_array_equal(sitk.GetArrayFromImage(image), masks)
    assert b"CompressedData = True" in path.read_bytes()[:600]


def test_failed_write_leaves_no_output(make_input, tmp_path, monkeypatch):
    case = read_case(make_input())

    def failing_write(*args, **kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr(sitk, "WriteImage", failing_write)
    with pytest.raises(CaseError, match="cannot write output"):
        write_output(tmp_path / "out", np.ones(case.frames.shape, np.uint8), case)
    assert list((tmp_path / "out" / OUTPUT_RELATIVE.parent).iterdir()) == []


def test_reading_never_modifies_inputs(make_input):
    root = make_input()
    before = snapshot_tree(root)
    read_case(root)
    assert snapshot_tree(root) == before


def test_dataset_layout_without_first_label_is_an_error(tmp_path: Path):
    frames, _ = square_sequence()
    write_mha(tmp_path / "images" / "X_frames.mha", frames)
    with pytest.raises(CaseError, match="X_first_label.mha: first-frame mask not found"):
        read_dataset_case(tmp_path)
