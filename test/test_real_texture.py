"""Real-texture training data: the sources inside installed packages, the split, the clip makers."""

import importlib.util
import json
import socket

import numpy as np
import pytest

from model.io import read_dataset_case, read_labels
from sequences.real_texture.__main__ import main as real_texture_main
from sequences.real_texture.cine import RealTextureSettings, make_real_sequence
from sequences.real_texture.dataset import write_quick_case
from sequences.real_texture.sources import (
    SOURCES,
    RealTextureError,
    load_slice,
    require_sources,
    slices_of,
)
from training.config import TrainConfig
from training.data import ClipSampler
from training.real_static import real_static_frames

SMALL = [ref for ref in slices_of("train") if ref.source.name == "pydicom-mr"][0]  # a 64 x 64 MR slice


@pytest.fixture
def no_network(monkeypatch):
    """Any attempt to open a connection fails the test."""

    def refuse(*args, **kwargs):
        raise AssertionError("a real-texture source tried to use the network")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)


@pytest.fixture
def fresh_cache():
    load_slice.cache_clear()
    yield
    load_slice.cache_clear()


def test_every_source_loads_offline_from_its_installed_package(no_network, fresh_cache):
    # Fails with RealTextureError naming the package (and requirements-train.txt) when one is missing.
    for split in ("train", "val"):
        for ref in slices_of(split):
            picture = load_slice(ref)
            assert picture.image.ndim == 2 and min(picture.image.shape) >= 64, ref.label
            assert picture.image.dtype == np.float32 and np.isfinite(picture.image).all()
            assert picture.image.min() == 0.0 and picture.image.max() == 1.0
            assert picture.image.std() > 0.1, f"{ref.label} is nearly flat"
            assert all(s > 0 for s in picture.spacing_mm)


def test_a_missing_package_is_named_in_one_line(monkeypatch, fresh_cache, tmp_path, capsys):
    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "dipy" else real_find_spec(name, *a)
    )
    dipy_slice = next(ref for ref in slices_of("train") if ref.source.package == "dipy")
    with pytest.raises(RealTextureError, match=r"'dipy'.*not installed.*requirements-train\.txt") as caught:
        load_slice(dipy_slice)
    assert "\n" not in str(caught.value)
    with pytest.raises(RealTextureError, match="'dipy'"):
        require_sources("train")
    # The command: exit 2, one error line, nothing written.
    assert real_texture_main([str(tmp_path / "out"), "--cases", "3", "--split", "val"]) == 2
    error = capsys.readouterr().err.strip()
    assert error.startswith("error:") and "'dipy'" in error and "\n" not in error
    assert not (tmp_path / "out").exists()


def test_validation_sources_never_feed_training():
    train, val = slices_of("train"), slices_of("val")
    assert train and val
    train_files = {(ref.source.package, ref.source.path) for ref in train}
    val_files = {(ref.source.package, ref.source.path) for ref in val}
    assert not train_files & val_files  # no shared file, so no shared subject, slice or scanner
    assert {s.split for s in SOURCES} == {"train", "val"}
    for seed in range(12):  # every train-split draw, cine and static, stays on training sources
        sequence = make_real_sequence(seed, 3, split="train")
        assert (sequence.metadata["package"], sequence.metadata["file"]) in train_files
    with pytest.raises(RealTextureError, match="unknown split"):
        slices_of("test")


def test_real_cine_sequence_on_a_small_slice():
    sequence = make_real_sequence(3, 12, ref=SMALL, contrast="weak", frame_rate=8.0, field_strength=1.5)
    side = sequence.info.frame_shape[0]
    assert sequence.frames.shape == sequence.masks.shape == (side, side, 12)
    assert sequence.frames.dtype == np.float32 and np.isfinite(sequence.frames).all()
    for t in range(12):
        mask = sequence.masks[:, :, t].astype(bool)
        assert mask.any(), f"no target at frame {t}"
        # Inside the frame: the target never touches the border.
        assert not (mask[0].any() or mask[-1].any() or mask[:, 0].any() or mask[:, -1].any())
    # It moves (breathing) and changes size (through-plane).
    centres = np.array([np.argwhere(sequence.masks[:, :, t]).mean(0) for t in range(12)])
    assert np.ptp(centres[:, 0]) > 1.0
    areas = sequence.masks.sum(axis=(0, 1))
    assert areas.max() > areas.min()
    assert sequence.metadata["source"] == "pydicom-mr" and sequence.metadata["contrast"] in ("weak", "structure")
    again = make_real_sequence(3, 12, ref=SMALL, contrast="weak", frame_rate=8.0, field_strength=1.5)
    np.testing.assert_array_equal(again.frames, sequence.frames)
    np.testing.assert_array_equal(again.masks, sequence.masks)
    other = make_real_sequence(4, 12, ref=SMALL, contrast="weak", frame_rate=8.0, field_strength=1.5)
    assert other.frames.shape != sequence.frames.shape or not np.array_equal(other.frames, sequence.frames)


def test_painted_lesion_contrast_changes_the_slice_where_the_target_is():
    sequence = make_real_sequence(
        1, 2, ref=SMALL, contrast="strong", field_strength=1.5, settings=RealTextureSettings(structure_probability=0.0)
    )
    assert sequence.metadata["target"] == "painted"
    assert 0.4 <= abs(sequence.metadata["relative_contrast"]) <= 0.8


def test_real_static_clip_on_real_slices_is_reproducible():
    frames, masks = real_static_frames(np.random.default_rng(5), 4)
    assert len(frames) == len(masks) == 4
    assert all(
        f.shape == m.shape == frames[0].shape and f.dtype == np.float32 for f, m in zip(frames, masks, strict=True)
    )
    assert all(m.any() for m in masks), "target missing from a frame"
    assert not all(np.array_equal(frames[0], f) for f in frames[1:])  # deformed, not copied
    again, again_masks = real_static_frames(np.random.default_rng(5), 4)
    for a, b, ma, mb in zip(frames, again, masks, again_masks, strict=True):
        np.testing.assert_array_equal(a, b)
        np.testing.assert_array_equal(ma, mb)


def test_command_writes_readable_cases_with_metadata(tmp_path):
    out = tmp_path / "realval"
    assert (
        real_texture_main(
            [str(out), "--cases", "3", "--seed", "4", "--split", "val", "--frames", "6:8", "--frame-rates", "1,8"]
        )
        == 0
    )
    cases = sorted(p.name for p in out.iterdir())
    assert cases == ["R_001", "R_002", "R_003"]
    rates, sources = [], set()
    for name in cases:
        case = read_dataset_case(out / name)
        labels = read_labels(out / name)
        assert labels.shape == case.frames.shape and 6 <= case.frames.shape[2] <= 8
        assert labels.any(axis=(0, 1)).all()
        meta = json.loads((out / name / "synthetic.json").read_text())
        assert meta["split"] == "val"
        rates.append(case.info.frame_rate)
        sources.add(meta["source"])
    assert rates == [1.0, 8.0, 1.0]
    assert len(sources) == 3  # the cases take the split's sources in turn


def test_quick_case_for_a_weights_check(tmp_path):
    case_dir = write_quick_case(tmp_path / "R_001", n_frames=8)
    case = read_dataset_case(case_dir)
    labels = read_labels(case_dir)
    assert case.frames.shape[2] == 8 and labels.any(axis=(0, 1)).all()
    meta = json.loads((case_dir / "synthetic.json").read_text())
    assert meta["split"] == "val" and meta["contrast"] == "strong"


def test_training_mix_draws_every_kind_of_clip(tmp_path):
    write_quick_case(tmp_path / "real" / "R_001", n_frames=6)
    config = TrainConfig(
        static_fraction=0.0,
        real_static_fraction=0.5,
        real_cine_fraction=0.5,
        real_data=(str(tmp_path / "real"),),
        crop_size=64,
        num_frames=3,
        num_ref_frames=2,
        batch_size=4,
        margin_mm=(8.0, 12.0),
    )
    sampler = ClipSampler(config, np.random.default_rng(0))
    frames, masks = sampler.batch(0.0)
    assert frames.shape == (4, 3, 3, 64, 64) and masks.shape == (4, 3, 1, 64, 64)
    assert (masks[:, 0].sum(dim=(1, 2, 3)) > 0).all()


def test_mix_shares_are_checked():
    with pytest.raises(ValueError, match="must not exceed 1"):
        TrainConfig(static_fraction=0.5, real_static_fraction=0.4, real_cine_fraction=0.2, real_data=("x",))
    with pytest.raises(ValueError, match="needs --real-data"):
        TrainConfig(static_fraction=0.5, real_cine_fraction=0.5)
    with pytest.raises(ValueError, match="no --data"):
        TrainConfig(static_fraction=0.2, real_static_fraction=0.3)
    assert TrainConfig(static_fraction=0.5, real_static_fraction=0.5).phantom_fraction == 0.0
