"""Training: clip sampling, losses, the forward pass and the CPU loop (tiny inputs)."""

import copy
import csv

import numpy as np
import pytest
import SimpleITK as sitk
import torch
import torch.nn.functional as F

import training.loop
from model.io import dataset_case_id
from model.xmem.network.network import XMem
from sequences.synthetic.translation import write_translation_case
from training.__main__ import main
from training.augment import glide_offsets
from training.config import TrainConfig, parse_config
from training.data import ClipSampler, load_sequences, max_skip_at, patch_slices, sample_positions
from training.forward import clip_forward, reference_frames
from training.loop import CHECKPOINT, Trainer, build_trainer, train
from training.losses import bootstrapped_ce, clip_loss, dice_loss, top_fraction
from training.validate import main as validate_main

TINY = dict(crop_size=64, num_frames=3, num_ref_frames=2, batch_size=1, margin_mm=(8.0, 12.0))
# The smallest view the config allows, for the tests that only take optimiser steps on one batch.
STEP_TEST = {**TINY, "crop_size": 32}


def _keep_labels(case_dir, keep):
    """Blank the ground truth of every frame not in `keep` (a partially labelled case)."""
    path = case_dir / "targets" / f"{dataset_case_id(case_dir)}_labels.mha"
    image = sitk.ReadImage(str(path))
    labels = sitk.GetArrayFromImage(image)
    labels[:, :, [t for t in range(labels.shape[2]) if t not in keep]] = 0
    out = sitk.GetImageFromArray(labels)
    out.CopyInformation(image)
    sitk.WriteImage(out, str(path))


@pytest.fixture(scope="module")
def initial_network():
    """A randomly initialised XMem (seed 0) that the step tests copy: building one takes a second
    or two, copying it a fraction of that."""
    torch.manual_seed(0)
    return XMem()


def forward_loss(trainer: Trainer, frames: torch.Tensor, masks: torch.Tensor) -> float:
    """The loss that trainer.step would report on this batch, from the forward pass alone (its
    backward pass is the slow part), with the step's precision."""
    config = trainer.config
    with torch.no_grad(), torch.autocast("cpu", dtype=trainer.amp_dtype, enabled=trainer.amp):
        logits, probs = clip_forward(
            trainer.network, frames, masks[:, 0], config.num_ref_frames, config.deep_update_prob, trainer.rng
        )
    fraction = top_fraction(trainer.iteration, config.start_warm, config.end_warm)
    return clip_loss(logits, probs, masks, fraction)["loss"].item()


@pytest.fixture(scope="module")
def cases(tmp_path_factory):
    root = tmp_path_factory.mktemp("cases")
    write_translation_case(root / "full", "A_001", n_frames=8, shape=(64, 64), radius_px=7.0)
    write_translation_case(root / "partial", "A_002", n_frames=10, shape=(64, 64), seed=1, radius_px=7.0)
    _keep_labels(root / "partial", {0, 3, 7, 9})
    write_translation_case(root / "first_only", "A_003", n_frames=6, shape=(64, 64), seed=2)
    _keep_labels(root / "first_only", {0})
    val = tmp_path_factory.mktemp("val")
    write_translation_case(val / "v", "V_001", n_frames=5, shape=(64, 64), seed=3, radius_px=7.0)
    return root, val


def test_sample_positions_grow_a_window_of_max_skip():
    rng = np.random.default_rng(0)
    for _ in range(50):
        positions = sample_positions(40, 6, 3, rng)
        assert positions == sorted(set(positions)) and 0 <= positions[0] and positions[-1] < 40
        assert max(np.diff(positions)) <= 3
    assert len(sample_positions(2, 5, 3, rng)) == 5  # short sequences repeat frames
    assert [max_skip_at(p) for p in (0.0, 0.1, 0.5, 0.95)] == [5, 10, 15, 5]


def test_partially_labelled_cases_use_labelled_frames_only(cases):
    root, _ = cases
    sequences, skipped = load_sequences((str(root),))
    by_name = {s.name: s for s in sequences}
    assert by_name["partial"].labelled.tolist() == [0, 3, 7, 9]
    assert by_name["full"].labelled.tolist() == list(range(8))
    assert "first_only" not in by_name and any("first_only" in note for note in skipped)

    config = TrainConfig(data=(str(root / "partial"),), static_fraction=0.0, **TINY)
    sampler = ClipSampler(config, np.random.default_rng(0))
    frames, masks = sampler.batch(0.0)
    assert frames.shape == (1, 3, 3, 64, 64) and masks.shape == (1, 3, 1, 64, 64)
    assert torch.equal(frames[:, :, 0], frames[:, :, 2])  # grey replicated into 3 channels
    assert all(masks[0, t].any() for t in range(3))  # every sampled frame carries a target


def test_patches_hold_the_first_target_at_the_crop_view_scale(cases):
    mask = np.zeros((96, 96), bool)
    mask[50:70, 10:25] = True
    rng = np.random.default_rng(0)
    origins = set()
    for _ in range(40):
        rows, cols = patch_slices(mask, 32, rng)
        assert rows.stop - rows.start == 32 == cols.stop - cols.start
        assert mask[rows, cols].sum() == mask.sum()  # the whole box, unscaled
        origins.add((rows.start, cols.start))
    assert len(origins) > 5  # a random window, not a fixed one
    big = np.zeros((96, 96), bool)
    big[10:80, 20:90] = True  # larger than the patch: centred on it
    assert patch_slices(big, 32, rng) == (slice(29, 61), slice(39, 71))

    root, _ = cases
    config = TrainConfig(data=(str(root / "full"),), static_fraction=0.0, patch_size=32, **TINY)
    frames, masks = ClipSampler(config, np.random.default_rng(0)).batch(0.0)
    assert frames.shape == (1, 3, 3, 32, 32) and masks.shape == (1, 3, 1, 32, 32)
    assert masks[0, 0].any()
    with pytest.raises(ValueError, match="patch_size"):
        TrainConfig(static_fraction=1.0, crop_size=64, patch_size=80)


def _first_target_areas(root, **overrides) -> np.ndarray:
    base = {**TINY, "margin_mm": (10.0, 10.0), "jitter": 0.0, "glide": 0.0}
    config = TrainConfig(data=(str(root / "full"),), static_fraction=0.0, **{**base, **overrides})
    sampler = ClipSampler(config, np.random.default_rng(0))
    return np.array([sampler.clip(0.0)[1][0].sum() for _ in range(30)], dtype=float)


def test_view_sides_vary_the_target_scale_within_fixed_patches(cases):
    root, _ = cases
    fixed = _first_target_areas(root, crop_size=128, patch_size=64)
    varied = _first_target_areas(root, crop_size=128, patch_size=64, min_crop_size=64)
    assert fixed.max() / fixed.min() < 1.5  # one scale: only the per-frame affine changes it
    assert varied.max() / varied.min() > 2.5  # views of 64..128 px: areas over up to 4x
    with pytest.raises(ValueError, match="min_crop_size"):
        TrainConfig(static_fraction=1.0, crop_size=128, min_crop_size=64)  # no patch size
    with pytest.raises(ValueError, match="min_crop_size"):
        TrainConfig(static_fraction=1.0, crop_size=128, patch_size=96, min_crop_size=64)


def test_static_clips_are_deformed_copies_with_a_target():
    config = TrainConfig(static_fraction=1.0, crop_size=64, num_frames=4, num_ref_frames=2, batch_size=2)
    frames, masks = ClipSampler(config, np.random.default_rng(1)).batch(0.0)
    assert frames.shape == (2, 4, 3, 64, 64)
    assert set(masks.unique().tolist()) == {0.0, 1.0}
    assert masks[:, 0].flatten(1).sum(1).min() > 0
    assert not torch.equal(frames[:, 0], frames[:, 1])  # each frame deformed independently
    assert abs(frames.mean().item()) < 1.0 and 0.3 < frames.std().item() < 2.0  # normalised


def test_glide_moves_the_view_steadily_in_one_random_direction():
    rng = np.random.default_rng(0)
    ends = []
    for _ in range(40):
        path = glide_offsets(rng, 5, 20.0)
        assert path.shape == (5, 2) and np.allclose(path[0], 0.0)
        assert np.allclose(np.diff(path, axis=0), path[1])  # even steps along one line
        assert np.linalg.norm(path[-1]) <= 20.0
        ends.append(path[-1])
    ends = np.array(ends)
    assert np.linalg.norm(ends, axis=1).max() > 15.0  # long glides happen
    assert (ends[:, 0] > 0).any() and (ends[:, 0] < 0).any() and (ends[:, 1] < 0).any()  # any direction


def _target_travel(glide: float) -> float:
    """Median distance between the target's centroids in the first and last frame of a clip."""
    config = TrainConfig(static_fraction=1.0, crop_size=64, num_frames=4, num_ref_frames=2, batch_size=1, glide=glide)
    sampler = ClipSampler(config, np.random.default_rng(0))
    travel = []
    for _ in range(30):
        _, masks = sampler.clip(0.0)
        first, last = (np.argwhere(m).mean(axis=0) for m in (masks[0], masks[-1]))
        travel.append(np.hypot(*(last - first)))
    return float(np.median(travel))


def test_clips_glide_across_the_crop_view():
    # Without the glide the target stays near its first place (per-frame affine only); with
    # it the target travels, so memory matched by place in the window would be wrong.
    still, gliding = _target_travel(0.0), _target_travel(0.5)
    assert still < 8.0 and gliding > still + 5.0
    with pytest.raises(ValueError, match="glide"):
        TrainConfig(static_fraction=1.0, glide=1.5)


def test_bootstrapped_ce_schedule_and_dice():
    assert [top_fraction(i, 10, 20) for i in (0, 9, 10, 15, 20, 99)] == pytest.approx([1, 1, 1, 0.575, 0.15, 0.15])
    logits = torch.randn(2, 2, 8, 8)
    target = torch.randint(0, 2, (2, 8, 8))
    assert bootstrapped_ce(logits, target, 1.0) == pytest.approx(F.cross_entropy(logits, target).item())
    losses = F.cross_entropy(logits, target, reduction="none").flatten()
    assert bootstrapped_ce(logits, target, 0.25) == pytest.approx(losses.sort().values[-32:].mean().item())
    mask = (torch.rand(2, 1, 8, 8) > 0.5).float()
    assert dice_loss(mask, mask) < 0.02 and dice_loss(1 - mask, mask) > 0.9


def test_reference_frames_keep_frame_zero_and_are_distinct():
    rng = np.random.default_rng(0)
    assert reference_frames(2, 3, 2, rng).tolist() == [[0, 1], [0, 1]]
    refs = reference_frames(6, 3, 4, rng)
    assert refs.shape == (4, 3) and (refs[:, 0] == 0).all() and (refs < 6).all()
    assert all(len(set(row)) == 3 for row in refs.tolist())


def test_training_steps_reduce_the_loss_with_batchnorm_frozen(initial_network):
    torch.manual_seed(0)
    config = TrainConfig(static_fraction=1.0, lr=1e-4, weight_decay=0.0, **STEP_TEST)
    rng = np.random.default_rng(0)
    frames, masks = ClipSampler(config, rng).batch(0.0)
    trainer = Trainer(copy.deepcopy(initial_network), config, torch.device("cpu"), rng)
    bn = trainer.network.key_encoder.bn1
    running_mean, weight = bn.running_mean.clone(), bn.weight.detach().clone()
    # Four steps on one batch at a high rate: the loss falls at every step (2.97, 2.70, 2.47,
    # 2.21 here).
    losses = [trainer.step(frames, masks)["loss"] for _ in range(4)]
    assert np.all(np.diff(losses) < 0), losses
    assert losses[-1] < 0.8 * losses[0], losses
    assert torch.equal(bn.running_mean, running_mean)  # statistics frozen (eval mode)
    assert not torch.equal(bn.weight, weight)  # affine parameters still learn
    assert trainer.iteration == 4


def test_cpu_bf16_autocasts_the_forward_and_keeps_fp32_weights(initial_network):
    torch.manual_seed(0)
    config = TrainConfig(static_fraction=1.0, lr=1e-4, weight_decay=0.0, cpu_bf16=True, **STEP_TEST)
    rng = np.random.default_rng(0)
    frames, masks = ClipSampler(config, rng).batch(0.0)
    trainer = Trainer(copy.deepcopy(initial_network), config, torch.device("cpu"), rng)
    dtypes = []
    trainer.network.key_encoder.conv1.register_forward_hook(lambda m, i, out: dtypes.append(out.dtype))
    # bf16 steps are slow on CPUs without native bf16 kernels (5 s here, most of it the backward
    # pass); one update already lowers the loss on the same batch (2.97 to 2.70), which the
    # forward pass alone shows.
    losses = [trainer.step(frames, masks)["loss"], forward_loss(trainer, frames, masks)]
    assert dtypes == [torch.bfloat16, torch.bfloat16]
    assert all(p.dtype == torch.float32 for p in trainer.network.parameters())
    assert np.isfinite(losses).all() and losses[1] < 0.97 * losses[0]


@pytest.mark.slow
def test_train_logs_validates_checkpoints_and_resumes(cases, tmp_path, capsys, monkeypatch):
    root, val = cases
    out = tmp_path / "run"
    common = dict(
        data=(str(root),),
        static_fraction=0.5,
        scratch=True,
        out=str(out),
        log_every=2,
        save_every=2,
        val_data=str(val),
        val_every=2,
        **TINY,
    )
    lines = []
    trained = train(TrainConfig(iterations=2, **common), log=lines.append).network.state_dict()
    assert any("it/s" in line and "ETA" in line for line in lines)
    assert (out / CHECKPOINT).is_file()
    rows = list(csv.DictReader(open(out / "log.csv")))
    assert [r["iteration"] for r in rows] == ["2"]
    val_rows = list(csv.DictReader(open(out / "val.csv")))
    assert [r["iteration"] for r in val_rows] == ["2"] and 0.0 <= float(val_rows[0]["dsc"]) <= 1.0

    # The stand-alone validation of the saved network-only file (what inference loads)
    # reproduces the loop's, case by case.
    assert validate_main([str(out / "network_0000002.pth"), str(val), "--crop-size", "64"]) == 0
    printed = capsys.readouterr().out.splitlines()
    assert printed[0].startswith(f"{val / 'v'}: dsc ") and printed[1].startswith("mean of 1 cases: dsc ")
    assert float(printed[1].split("dsc ")[1].split(",")[0]) == pytest.approx(float(val_rows[0]["dsc"]), abs=1e-3)
    assert validate_main([str(tmp_path / "none.pth"), str(val)]) == 1
    assert capsys.readouterr().err.strip() == f"error: {tmp_path / 'none.pth'}: no such file"
    # Every pipeline setting is an option, checked before any case runs.
    assert validate_main([str(out / "network_0000002.pth"), str(val), "--threshold", "1.5"]) == 1
    assert capsys.readouterr().err.strip() == "error: threshold must be in (0, 1), got 1.5"

    # The trainer that train() resumes with starts where the first run stopped: its iteration
    # and its weights, as built (recorded before its first step, instead of building another).
    resumed = {}

    def build_and_record(config, log):
        trainer = build_trainer(config, log)
        resumed.update(iteration=trainer.iteration, weights=copy.deepcopy(trainer.network.state_dict()))
        return trainer

    monkeypatch.setattr(training.loop, "build_trainer", build_and_record)
    resume = TrainConfig(iterations=3, resume=str(out / CHECKPOINT), **{**common, "scratch": False})
    train(resume, log=lines.append)
    assert resumed["iteration"] == 2
    for name, value in trained.items():
        assert torch.equal(resumed["weights"][name], value)
    assert [r["iteration"] for r in csv.DictReader(open(out / "log.csv"))] == ["2", "3"]
    assert (out / "network_0000003.pth").is_file()


def test_time_limit_stops_with_a_resumable_checkpoint(cases, tmp_path):
    root, _ = cases
    out = tmp_path / "run"
    common = dict(
        data=(str(root),),
        static_fraction=0.5,
        scratch=True,
        out=str(out),
        log_every=10,
        save_every=10,
        iterations=2,
        **TINY,
    )
    lines = []
    # A limit already passed after the first iteration: that iteration is logged and saved.
    trainer = train(TrainConfig(max_minutes=1e-9, **common), log=lines.append)
    assert trainer.iteration == 1
    assert (out / "network_0000001.pth").is_file() and (out / CHECKPOINT).is_file()
    assert [r["iteration"] for r in csv.DictReader(open(out / "log.csv"))] == ["1"]
    assert lines[-1] == f"stopped at iteration 1: 1e-09 min passed; continue with --resume {out / CHECKPOINT}"
    # The checkpoint holds that iteration; it is written as every checkpoint is (Trainer.save),
    # and training on from one is test_train_logs_validates_checkpoints_and_resumes.
    assert torch.load(out / CHECKPOINT, mmap=True, weights_only=True)["iteration"] == 1  # mmap: no tensor read
    with pytest.raises(ValueError, match="max_minutes must be >= 0"):
        TrainConfig(max_minutes=-1.0, **common)


def test_cli_errors_are_one_line(tmp_path, capsys):
    assert main(["--scratch", "--weights", "x.pth", "--static-fraction", "1"]) == 1
    assert capsys.readouterr().err.strip() == "error: --weights and --scratch exclude each other"
    assert main(["--weights", str(tmp_path / "none.pth"), "--static-fraction", "1", "--out", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "does not exist" in err and "python -m tools.download_weights" in err
    config = parse_config(
        [
            "--data",
            "a",
            "b",
            "--lr-steps",
            "5",
            "7",
            "--no-amp",
            "--crop-size",
            "128",
            "--margin-mm",
            "10",
            "20",
            "--weights",
            "w.pth",
        ]
    )
    assert config.data == ("a", "b") and config.lr_steps == (5, 7) and not config.amp and config.crop_size == 128
    assert config.margin_mm == (10.0, 20.0) and config.weights == "w.pth"
    assert parse_config(["--data", "a"]).weights is None
