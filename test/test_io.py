"""model.io: layouts, geometry, the documented input decisions, atomic output."""

import json
import os
import re
import zlib
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk
from conftest import EXAMPLE_CASE, OUTPUT_RELATIVE, snapshot_tree, square_sequence, write_mha

from model.errors import InputError
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
    assert (case.info.frame_rate, case.info.field_strength, case.info.scanned_region) == (8.0, 0.35, "abdomen")
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
        DEFAULT_FRAME_RATE,
        DEFAULT_FIELD_STRENGTH,
        DEFAULT_SCANNED_REGION,
    )
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
    case = read_case(make_input(frames, masks[:, :, :1], spacing=(0.25, 1.5, 2.5), origin=(1.0, 2.0, 3.0)))
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
    with pytest.raises(InputError, match=r"output.mha: cannot write \(disk full\)"):
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


def test_output_is_0644_whatever_the_umask(make_input, tmp_path):
    case = read_case(make_input())
    previous = os.umask(0o077)
    try:
        path = write_output(tmp_path / "out", np.ones(case.frames.shape, np.uint8), case)
    finally:
        os.umask(previous)
    assert path.stat().st_mode & 0o777 == 0o644


@pytest.mark.parametrize("keep", [0, 120, -8], ids=["empty", "header only", "data cut short"])
def test_a_writer_that_fails_silently_leaves_no_output(make_input, tmp_path, monkeypatch, keep):
    """SimpleITK on a full disk raises nothing and leaves a short file: the read-back catches it."""
    case = read_case(make_input())
    real_write = sitk.WriteImage

    def short_write(image, name, useCompression=False):
        real_write(image, name, useCompression=useCompression)
        data = Path(name).read_bytes()
        Path(name).write_bytes(data[:keep] if keep >= 0 else data[:keep])

    monkeypatch.setattr(sitk, "WriteImage", short_write)
    with pytest.raises(InputError, match="output.mha: cannot write"):
        write_output(tmp_path / "out", np.ones(case.frames.shape, np.uint8), case)
    assert list((tmp_path / "out" / OUTPUT_RELATIVE.parent).iterdir()) == []


def _rewrite_header(path: Path, old: bytes, new: bytes) -> None:
    data = path.read_bytes()
    assert old in data
    path.write_bytes(data.replace(old, new, 1))


def test_upper_case_suffix_is_a_metaimage(make_input):
    root = make_input()
    image = root / "images" / "mri-linacs" / "case_frames.mha"
    image.rename(image.with_name("IMAGE.MHA"))
    assert read_case(root).frames.shape == (24, 32, 5)


def test_zero_spacing_is_named_and_negative_spacing_is_read_as_positive(make_input):
    root = make_input(spacing=(1.0, 1.5, 2.0))
    image = root / "images" / "mri-linacs" / "case_frames.mha"
    _rewrite_header(image, b"ElementSpacing = 1 1.5 2", b"ElementSpacing = 1 0 2")
    with pytest.raises(CaseError, match=r"case_frames.mha: zero pixel spacing \(ElementSpacing = 1 0 2\)"):
        read_case(root)
    _rewrite_header(image, b"ElementSpacing = 1 0 2", b"ElementSpacing = 1 -1.5 2")
    case = read_case(root)
    assert case.spacing == (1.0, 1.5, 2.0) and case.direction[4] == -1.0
    assert any("negative pixel spacing" in w and "read as 1 1.5 2" in w for w in case.warnings)


def _compressed_mha(path: Path, array: np.ndarray, stream: bytes, msb: bool = False) -> None:
    """A MetaImage of `array`'s shape and type whose data is the zlib stream given."""
    write_mha(path, array)
    data = path.read_bytes()
    split = data.index(b"ElementDataFile = LOCAL\n") + len(b"ElementDataFile = LOCAL\n")
    header = re.sub(rb"CompressedDataSize = \d+", b"CompressedDataSize = %d" % len(stream), data[:split])
    if msb:
        header = header.replace(b"BinaryDataByteOrderMSB = False", b"BinaryDataByteOrderMSB = True")
    path.write_bytes(header + stream)


def test_a_complete_but_short_compressed_stream_is_truncated(make_input):
    frames, _ = square_sequence()
    root = make_input()
    image = root / "images" / "mri-linacs" / "case_frames.mha"
    itk_order = np.ascontiguousarray(frames).tobytes()
    _compressed_mha(image, frames, zlib.compress(itk_order[: len(itk_order) // 2]))
    with pytest.raises(
        CaseError,
        match=r"case_frames.mha: truncated image data \(the compressed "
        r"data holds 7680 of the 15360 bytes",
    ):
        read_case(root)


def test_a_valid_stream_that_skips_the_quick_checksum_still_reads(make_input):
    """Big-endian data: the pixels in memory are byte-swapped, so the check inflates the stream."""
    frames, _ = square_sequence()
    root = make_input()
    image = root / "images" / "mri-linacs" / "case_frames.mha"
    _compressed_mha(image, frames, zlib.compress(frames.astype(">f4").tobytes()), msb=True)
    np.testing.assert_array_equal(read_case(root).frames, frames)


def test_json_with_a_byte_order_mark_is_read(make_input):
    root = make_input()
    (root / "scanned-region.json").write_bytes(b"\xef\xbb\xbf" + json.dumps("thorax").encode())
    assert read_case(root).info.scanned_region == "thorax"


@pytest.mark.parametrize(
    "name, value, used, unit",
    [
        ("frame-rate.json", 1e6, 100.0, "frames/s"),
        ("frame-rate.json", 0.01, 0.1, "frames/s"),
        ("b-field-strength.json", 30.0, 10.0, "T"),
        ("b-field-strength.json", 0.05, 0.1, "T"),
    ],
)
def test_implausible_metadata_is_clamped_with_a_warning(make_input, name, value, used, unit):
    case = read_case(make_input(json_values={name: value}))
    read = case.info.frame_rate if name == "frame-rate.json" else case.info.field_strength
    assert read == used
    assert any(f"{value:g} {unit} is outside the plausible" in w and f"using {used:g}" in w for w in case.warnings)


def test_frames_without_signal_are_counted(make_input):
    frames, masks = square_sequence(n_frames=5)
    frames[:, :, 2] = 0.0
    frames[:, :, 4] = 7.0
    case = read_case(make_input(frames, masks[:, :, :1]))
    assert case.blank_frames == 2
    assert any("2 of 5 frames have no signal" in w for w in case.warnings)


@pytest.mark.parametrize(
    ("origin", "spacing", "says"),
    [
        ((0.0, 20.0, -30.0), (1.0, 1.0, 1.0), "origin shifted by 20, -30 mm in the frame plane"),
        ((0.0, 0.0, 0.0), (1.0, 2.0, 2.0), "spacing 2 x 2 mm against 1 x 1 mm"),
        ((7.0, 0.04, 0.0), (9.0, 1.0005, 1.0), None),  # time axis, and within the tolerance
    ],
)
def test_a_mask_of_other_geometry_is_taken_pixel_for_pixel_with_a_warning(make_input, origin, spacing, says):
    root = make_input()
    mask_path = root / "images/mri-linac-target/case_first_label.mha"
    mask = sitk.GetArrayFromImage(sitk.ReadImage(str(mask_path)))
    write_mha(mask_path, mask, spacing=spacing, origin=origin)
    case = read_case(root)
    assert np.array_equal(case.first_mask, mask[:, :, 0] > 0)
    found = [line for line in case.warnings if "the mask's geometry differs" in line]
    if says is None:
        assert found == []
    else:
        assert len(found) == 1 and says in found[0] and "taken pixel for pixel" in found[0], found
