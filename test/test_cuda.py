"""The tracker on a GPU gives what it gives on the CPU. Skipped where torch sees no CUDA device.

    python -m pytest -q test/test_cuda.py

One generated phantom sequence runs through XMem alone and through the default pipeline,
with the shipped weights, on the CPU in float32 (the reference) and on CUDA in float32 and in
fp16 autocast (the default there). Float32 on CUDA differs from the CPU only by the order of
floating-point sums (and TF32 convolutions), so its masks must match almost exactly; fp16 may
move a few boundary pixels, never the tracking. Training steps on CUDA use fp16 autocast with
a gradient scaler and must still learn.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from evaluation.metrics import dice_per_frame
from model.runner import RunResult, run_tracker
from model.trackers import build_tracker
from model.weights import PROJECT_NAME, RESOURCES_DIR
from model.xmem.network.network import XMem
from sequences.synthetic import SyntheticSequence, generate_sequence
from training.config import TrainConfig
from training.data import ClipSampler
from training.loop import Trainer

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")

SHIPPED_WEIGHTS = str(RESOURCES_DIR / PROJECT_NAME)
XMEM_ALONE = {"motion": "off"}
DEFAULT = {}


@pytest.fixture(scope="module")
def sequence() -> SyntheticSequence:
    return generate_sequence(seed=907, n_frames=40, field_strength=1.5, region="abdomen")


_runs: dict[tuple[str, str, str], RunResult] = {}


def run(sequence: SyntheticSequence, pipeline: dict, device: str, precision: str) -> RunResult:
    """The run of one (pipeline, device, precision), computed once per test session."""
    key = (str(sorted(pipeline.items())), device, precision)
    if key not in _runs:
        tracker = build_tracker("xmem", weights=SHIPPED_WEIGHTS, device=device, precision=precision, **pipeline)
        result = run_tracker(tracker, sequence.frames, sequence.masks[:, :, 0], sequence.info)
        assert result.tracker_error is None, result.tracker_error
        _runs[key] = result
    return _runs[key]


def test_auto_settings_run_the_network_on_cuda_in_fp16(sequence: SyntheticSequence) -> None:
    tracker = build_tracker("xmem", weights=SHIPPED_WEIGHTS)
    tracker.start(sequence.frames[:, :, 0], sequence.masks[:, :, 0] > 0, sequence.info)
    described = tracker.describe()
    assert described["device"].startswith("cuda") and described["precision"] == "fp16", described


@pytest.mark.parametrize(("precision", "least_agreement"), [("fp32", 0.99), ("fp16", 0.95)])
@pytest.mark.parametrize("pipeline", [XMEM_ALONE, DEFAULT], ids=["xmem-alone", "default"])
def test_cuda_masks_agree_with_the_cpu_and_track_as_well(
    sequence: SyntheticSequence, pipeline: dict, precision: str, least_agreement: float
) -> None:
    cpu = run(sequence, pipeline, "cpu", "fp32").masks
    cuda = run(sequence, pipeline, "cuda", precision).masks
    agreement = dice_per_frame(cuda, cpu)[1:]
    assert agreement.min() >= least_agreement, np.round(agreement, 4).tolist()
    truth = sequence.masks
    cpu_score = np.nanmean(dice_per_frame(cpu, truth)[1:])
    cuda_score = np.nanmean(dice_per_frame(cuda, truth)[1:])
    assert cuda_score >= cpu_score - 0.01, (cuda_score, cpu_score)


def test_training_steps_on_cuda_use_fp16_autocast_and_reduce_the_loss() -> None:
    torch.manual_seed(0)
    config = TrainConfig(
        static_fraction=1.0,
        lr=1e-4,
        weight_decay=0.0,
        crop_size=32,
        num_frames=3,
        num_ref_frames=2,
        batch_size=1,
        margin_mm=(8.0, 12.0),
    )
    rng = np.random.default_rng(0)
    frames, masks = ClipSampler(config, rng).batch(0.0)
    trainer = Trainer(XMem(), config, torch.device("cuda"), rng)
    dtypes = []
    trainer.network.key_encoder.conv1.register_forward_hook(lambda module, inputs, out: dtypes.append(out.dtype))
    # Ten steps: the gradient scaler may skip the first ones while it finds its scale.
    losses = [trainer.step(frames, masks)["loss"] for _ in range(10)]
    assert dtypes[0] == torch.float16 and trainer.scaler.is_enabled()
    assert all(p.dtype == torch.float32 and p.is_cuda for p in trainer.network.parameters())
    assert np.isfinite(losses).all() and np.mean(losses[-2:]) < 0.7 * np.mean(losses[:2]), losses
