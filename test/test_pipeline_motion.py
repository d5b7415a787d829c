"""The motion estimate (dense flow pulling a mask) and the fusion rule, without a network."""

from __future__ import annotations

import numpy as np
import pytest

from model.pipeline.masks import mask_centroid
from model.pipeline.motion import DenseFlow, MaskFlow, pull
from sequences.synthetic import make_translation_sequence


def _soft_centroid(values):
    rows, cols = np.indices(values.shape)
    total = values.sum()
    return np.array([(rows * values).sum() / total, (cols * values).sum() / total])


@pytest.mark.parametrize("centre", MaskFlow.CENTRES)
@pytest.mark.parametrize("reference", MaskFlow.REFERENCES)
def test_flow_recovers_a_known_sub_pixel_translation(reference, centre):
    n_frames = 10
    shifts = np.outer(np.arange(n_frames), (2.3, -1.4))  # 21 px along axis 0 at the end
    sequence = make_translation_sequence(shifts, shape=(112, 112), n_frames=n_frames, radius_px=8.0)
    first = sequence.masks[:, :, 0] > 0
    flow = MaskFlow(reference, backward_check=True, centre=centre)
    flow.start(sequence.frames[:, :, 0], first)
    previous = first
    for t in range(1, n_frames):
        motion = flow.estimate(sequence.frames[:, :, t])
        # The pulled mask moved by the flow's estimate of the motion since the reference:
        # frame 0 (first-frame), or frame t-1 whose mask is the previous output.
        since = 0 if reference == "first-frame" else t - 1
        source = first if reference == "first-frame" else previous
        moved = _soft_centroid(motion.prior) - _soft_centroid(source.astype(np.float32))
        truth = sequence.motion_px[t] - sequence.motion_px[since]
        assert np.abs(moved - truth).max() <= 0.25, (t, moved, truth)
        # The centre the alignment uses: a thresholded mask can move only by whole boundary
        # pixels (up to half a pixel off a sub-pixel shift); the two-way estimate averages that
        # with the flow over the reference target, which is not quantised.
        centre_moved = np.subtract(motion.centre, mask_centroid(source))
        tolerance = 0.25 if centre == "two-way" else 0.5
        assert np.abs(centre_moved - truth).max() <= tolerance, (t, centre_moved, truth)
        # A pure translation is followed consistently both ways: the flow is trusted on the target.
        assert motion.confidence[motion.mask].mean() > 0.8
        previous = sequence.masks[:, :, t] > 0  # the tracker's output, here the truth
        flow.advance(previous)


def test_flow_refinement_setting_smooths_the_field():
    rng = np.random.default_rng(3)
    texture = rng.normal(size=(96, 96)).astype(np.float32)
    texture = np.clip(128 + 40 * texture, 0, 255)
    reference = texture.astype(np.uint8)
    current = np.clip(np.roll(texture, (2, 1), axis=(0, 1)) + rng.normal(0, 12, texture.shape), 0, 255).astype(np.uint8)
    refined = DenseFlow()(current, reference)
    patches_only = DenseFlow(refinement=0)(current, reference)
    # Both find the shift (the current frame's pixel r sits at r - 2 in the reference).
    inner = (slice(16, -16), slice(16, -16))
    for field in (refined, patches_only):
        assert np.abs(np.median(field[inner], axis=(0, 1)) - (-1, -2)).max() < 0.1
    # The variational refinement smooths the patch-matched field: less pixel-to-pixel variation.
    roughness = [np.abs(np.diff(field[inner], axis=0)).mean() for field in (refined, patches_only)]
    assert roughness[0] < 0.8 * roughness[1], roughness
    with pytest.raises(ValueError, match="refinement"):
        DenseFlow(refinement=-1)


def test_pull_samples_the_reference_along_the_flow():
    values = np.zeros((20, 20), np.float32)
    values[5, 7] = 1.0
    flow = np.zeros((20, 20, 2), np.float32)
    flow[..., 0], flow[..., 1] = 2.0, -1.0  # each pixel sits 2 right, 1 up in the reference
    pulled = pull(values, flow)
    # Pixel (r, c) samples reference (r - 1, c + 2): (5, 7) is pixel (6, 5).
    assert pulled[6, 5] == 1.0 and pulled.sum() == 1.0


@pytest.mark.parametrize("side", [3, 8, 11])
def test_dis_flow_follows_frames_smaller_than_its_12_pixel_minimum(side):
    import cv2

    rng = np.random.default_rng(side)
    texture = cv2.GaussianBlur(rng.uniform(0, 255, (side + 4, side + 4)).astype(np.float32), (0, 0), 1.0)
    texture = cv2.normalize(texture, None, 0, 255, cv2.NORM_MINMAX).astype(np.uint8)
    reference, current = texture[2 : 2 + side, 2 : 2 + side], texture[2 : 2 + side, 3 : 3 + side]
    flow = DenseFlow()(np.ascontiguousarray(current), np.ascontiguousarray(reference), np.zeros((side, side, 2)))
    assert flow.shape == (side, side, 2) and flow.dtype == np.float32
    if side > 3:  # current(x) = reference(x + 1 column)
        assert abs(float(np.median(flow[..., 0])) - 1.0) < 0.25 and abs(float(np.median(flow[..., 1]))) < 0.25
