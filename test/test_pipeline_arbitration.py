"""The arbitration between the network and the flow: the flow's own evidence, the network's
earned trust, the fusion and the alignment they steer, and the tracker with both sides right
and wrong in turn (stand-in networks on hand-made sequences)."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from evaluation.standins import StandInCore
from model.pipeline.arbitration import (
    EDGE_MIN_EVIDENCE,
    GROWTH_DEAD_ZONE_PX,
    STEADY_OFFSET_LEAST_RADII,
    STEADY_OFFSET_MAX_PX,
    NetworkTrust,
    SteadyOffset,
    SustainedGrowth,
    align_to_flow,
    differs_in_size,
    edge_has_moved,
    edge_shift,
    flow_is_credible,
    fuse_with_prior,
    fusion_trust,
    gap_to_flow_centre,
    grown_over_carried_tissue,
    growth_factor,
    image_contrast_ratio,
    outline_contrast,
)
from model.pipeline.masks import dice, mask_centroid, outline_disagreement, outward_offset, surface_agreement
from model.pipeline.motion import MotionEstimate
from model.runner import run_tracker
from model.trackers import SequenceInfo, build_tracker
from model.trackers.xmem import XMemSettings, XMemTracker


def _maps(network_p, prior_p, confidence):
    shape = (4, 4)
    return (
        np.full(shape, network_p, np.float32),
        np.ones(shape, bool),
        np.full(shape, prior_p, np.float32),
        np.full(shape, confidence, np.float32),
    )


def test_confident_network_wins_over_an_unreliable_flow_prior():
    network, covered, prior, confidence = _maps(0.97, 0.0, 0.05)
    fused = fuse_with_prior(network, covered, prior, confidence, prior_weight=0.5, rule="confidence")
    assert np.all(fused > 0.8)
    # The fixed rule ignores how reliable either side is: an even mix, no foreground.
    fixed = fuse_with_prior(network, covered, prior, confidence, prior_weight=0.5, rule="fixed")
    assert np.allclose(fixed, 0.485)


def test_reliable_flow_prior_wins_over_an_undecided_network():
    network, covered, prior, confidence = _maps(0.45, 1.0, 0.95)
    fused = fuse_with_prior(network, covered, prior, confidence, prior_weight=0.5, rule="confidence")
    assert np.all(fused > 0.8)
    # And a reliable prior saying "background" removes a pixel the network was unsure of.
    network, covered, prior, confidence = _maps(0.6, 0.0, 0.95)
    assert np.all(fuse_with_prior(network, covered, prior, confidence, 0.5, "confidence") < 0.2)


def test_outside_the_crop_only_the_prior_speaks():
    network, covered, prior, confidence = _maps(0.0, 1.0, 0.9)
    covered[:, 2:] = False
    for rule in ("fixed", "confidence"):
        fused = fuse_with_prior(network, covered, prior, confidence, prior_weight=0.3, rule=rule)
        assert np.allclose(fused[:, 2:], 1.0)
        assert np.all(fused[:, :2] < 0.5)  # inside, the network's sure "background" counts


def test_no_trust_leaves_the_prior_to_decide_even_against_a_confident_network():
    network, covered, prior, confidence = _maps(0.99, 0.0, 0.5)
    for rule in ("fixed", "confidence"):
        trusted = fuse_with_prior(network, covered, prior, confidence, 0.3, rule, network_trust=1.0)
        assert np.all(trusted > 0.5)
        distrusted = fuse_with_prior(network, covered, prior, confidence, 0.3, rule, network_trust=0.0)
        assert np.all(distrusted < 0.05)


def test_network_trust_maps_the_mean_outline_agreement_of_judged_frames_from_the_floor():
    flow = np.zeros((20, 20), bool)
    flow[5:15, 5:15] = True
    trust = NetworkTrust(floor=0.7, tolerance_px=1.0)
    assert trust.trust == 1.0  # nothing judged yet
    nudged = np.zeros_like(flow)
    nudged[6:16, 5:15] = True  # one pixel down: the outlines agree within the tolerance
    assert trust.update(nudged, flow, flow_credible=True) == 1.0
    spread = np.zeros_like(flow)
    spread[2:18, 2:18] = True  # three pixels out all round: no outline pixel agrees
    assert trust.update(spread, flow, flow_credible=False) == 1.0  # the flow cannot judge: not counted
    assert trust.unjudged_frames == 1
    # Mean agreement (1 + 0) / 2 = 0.5, below the floor.
    assert trust.update(spread, flow, flow_credible=True) == 0.0
    assert trust.untrusted_frames == 1
    with pytest.raises(ValueError, match="floor"):
        NetworkTrust(1.0, 1.0)


def test_a_frame_the_image_sides_with_the_network_on_can_only_raise_its_trust():
    flow = np.zeros((20, 20), bool)
    flow[5:15, 5:15] = True
    spread = np.zeros_like(flow)
    spread[2:18, 2:18] = True  # no outline pixel agrees
    nudged = np.zeros_like(flow)
    nudged[6:16, 5:15] = True  # agrees within the tolerance
    trust = NetworkTrust(floor=0.7, tolerance_px=1.0)
    trust.update(flow, flow, flow_credible=True)
    trust.update(spread, flow, flow_credible=True)  # mean (1 + 0) / 2: below the floor
    assert trust.trust == 0.0
    # The image sides with a disagreeing network: the flow cannot condemn it, the mean stays.
    assert trust.update(spread, flow, flow_credible=True, image_sides_with_network=True) == 0.0
    assert trust.unjudged_frames == 1
    # ... but an agreeing one counts: (1 + 0 + 1) / 3 = 0.67, then (1 + 0 + 1 + 1) / 4 = 0.75.
    trust.update(nudged, flow, flow_credible=True, image_sides_with_network=True)
    assert trust.update(nudged, flow, flow_credible=True, image_sides_with_network=True) == pytest.approx(1 / 6)
    # Judged by the flow, the same disagreement counts against it.
    assert trust.update(spread, flow, flow_credible=True) == 0.0


def test_a_trust_with_a_memory_forgets_a_good_start_sooner():
    flow = np.zeros((20, 20), bool)
    flow[5:15, 5:15] = True
    spread = np.zeros_like(flow)
    spread[2:18, 2:18] = True  # no outline pixel agrees
    whole, recent = NetworkTrust(0.7, 1.0), NetworkTrust(0.7, 1.0, memory=4)
    for _ in range(20):  # a network right for 20 judged frames
        whole.update(flow, flow, True), recent.update(flow, flow, True)
    for _ in range(4):  # then wrong for 4
        whole.update(spread, flow, True), recent.update(spread, flow, True)
    assert whole.trust > 0.4  # the mean of 24 frames (20 good) is 0.83, 0.44 above the floor
    assert recent.trust == 0.0  # about the last 4 frames: (3/4)^4 = 0.32 of the start is left


def _cut(right_radius: float, centre=(32.0, 32.0), shape=(64, 64), radius=10.0) -> np.ndarray:
    """A disc of `radius` whose right half has `right_radius` instead: a cut that shrank or
    grew on one side (through the plane) while its left edge stayed where it was."""
    rows, cols = np.indices(shape, dtype=np.float32)
    distance = np.hypot(rows - centre[0], cols - centre[1])
    return np.where(cols < centre[1], distance <= radius, distance <= right_radius)


def test_outline_disagreement_says_which_way_the_outlines_part():
    flow, shrunk, grown = _cut(10.0), _cut(7.0), _cut(13.0)
    beyond, short = outline_disagreement(shrunk, flow, 1.0)
    assert beyond == 0.0 and short > 0.3
    assert outline_disagreement(grown, flow, 1.0)[0] > 0.3 and outline_disagreement(grown, flow, 1.0)[1] == 0.0
    assert outline_disagreement(flow, shrunk, 1.0) == (short, beyond)  # the same pixels, seen from the flow
    assert surface_agreement(shrunk, flow, 1.0) == pytest.approx(1.0 - short)


def _trust_over(network_masks, flow_masks, own_change_allowance, image_sides_with_network=True, same_place=True):
    trust = NetworkTrust(0.7, 1.0, first_mask=flow_masks[0], own_change_allowance=own_change_allowance)
    return [
        trust.update(network, flow, True, image_sides_with_network=image_sides_with_network, same_place=same_place)
        for network, flow in zip(network_masks, flow_masks, strict=True)
    ]


def test_own_change_allowance_keeps_the_trust_of_a_network_that_follows_a_shrinking_cut():
    # The flow, carried from the first frame, keeps the cut's first size; the network follows
    # the cut as it shrinks and swells back, and the image sides with it on every frame.
    flow = [_cut(10.0)] * 6
    network = [_cut(7.0), _cut(10.0)] * 3
    assert min(_trust_over(network, flow, own_change_allowance=True)) == 1.0
    without = _trust_over(network, flow, own_change_allowance=False)
    assert without[0] == 0.0  # half its outline short of the flow's: agreement about 0.5


def test_own_change_allowance_never_excuses_growth_or_a_steady_shortfall():
    flow = [_cut(10.0)] * 4
    grown = [_cut(13.0), _cut(10.0)] * 2  # the same change, beyond the flow's outline
    assert _trust_over(grown, flow, True) == _trust_over(grown, flow, False)
    assert _trust_over(grown, flow, True)[0] == 0.0
    # Short of the flow's outline from the first frame on, and moving with the target as the
    # flow does (5 px down a frame) without changing: only frame 1, where it left the first
    # mask's outline, is excused; from then on its outline has not moved.
    moving_flow = [_cut(10.0, (20.0 + 5 * t, 32.0)) for t in range(1, 5)]
    steady = [_cut(7.0, (20.0 + 5 * t, 32.0)) for t in range(1, 5)]
    trust = NetworkTrust(0.7, 1.0, memory=1, first_mask=_cut(10.0, (20.0, 32.0)), own_change_allowance=True)
    assert trust.update(steady[0], moving_flow[0], True, image_sides_with_network=True) == 1.0
    assert trust.update(steady[1], moving_flow[1], True) == 0.0  # judged by the flow: half its outline short
    # The image sides with it again, but nothing changed: no allowance, no better than the mean.
    assert trust.update(steady[2], moving_flow[2], True, image_sides_with_network=True) == 0.0
    assert trust.unjudged_frames == 1


def test_own_change_allowance_counts_wherever_the_network_lies_within_the_flow_mask():
    # The image need not side with it: a network that follows the cut as it shrinks inside the
    # carried mask keeps its trust on frames the flow judges too.
    flow = [_cut(10.0)] * 6
    network = [_cut(7.0), _cut(10.0)] * 3
    assert min(_trust_over(network, flow, True, image_sides_with_network=False)) == 1.0
    assert _trust_over(network, flow, False, image_sides_with_network=False)[0] == 0.0
    # Beyond the flow mask's outline it is judged as before.
    grown = [_cut(13.0), _cut(10.0)] * 3
    assert _trust_over(grown, flow, True, image_sides_with_network=False)[0] == 0.0


def test_own_change_allowance_and_the_decisive_image_are_for_a_network_at_the_flows_place():
    flow = [_cut(10.0)] * 6
    network = [_cut(7.0), _cut(10.0)] * 3
    elsewhere = _trust_over(network, flow, True, same_place=False)
    assert elsewhere == _trust_over(network, flow, False) and elsewhere[0] == 0.0
    assert fusion_trust(0.4, 0.2, 0.7, same_place=True) == 1.0
    assert fusion_trust(0.4, 0.2, 0.7, same_place=False) == 0.4
    # The place: the network's centroid against the flow's centre, within the limit.
    disc = _disc_probability((32.0, 32.0)) > 0.5  # centroid (32.5, 32.5): pixel i covers [i, i + 1)
    assert gap_to_flow_centre(disc, (32.5, 32.9)) == pytest.approx(0.4, abs=1e-6)
    assert gap_to_flow_centre(disc, (35.5, 36.5)) == pytest.approx(5.0, abs=1e-6)
    assert gap_to_flow_centre(disc, None) == np.inf and gap_to_flow_centre(np.zeros_like(disc), (32.5, 32.5)) == np.inf


def test_a_size_differs_beyond_a_fifth_of_the_area():
    flow = _cut(10.0)
    assert differs_in_size(_cut(7.0), flow) and differs_in_size(_cut(14.0), flow)
    assert not differs_in_size(_cut(9.5), flow) and not differs_in_size(flow, flow)


def _offset_pair(offset_cols: float, rng: np.random.Generator):
    """A network mask `offset_cols` px right of the target and a flow mask off it by its own
    error (0.3 px standard deviation along each axis)."""
    target = (32.0, 32.0)
    flow_error = rng.normal(0.0, 0.3, 2)
    network = _disc_probability((target[0], target[1] + offset_cols)) > 0.5
    flow = _disc_probability((target[0] + flow_error[0], target[1] + flow_error[1])) > 0.5
    return network, flow


def test_a_steady_offset_from_the_flow_is_corrected_a_fluctuating_one_is_not():
    rng = np.random.default_rng(0)
    steady, fluctuating = SteadyOffset(2.0, memory=10), SteadyOffset(2.0, memory=10)
    within_alignment = SteadyOffset(2.0, memory=10, least_px=1.5)
    for _ in range(12):
        pair = _offset_pair(1.0, rng)  # a network a pixel right of the target
        steady.update(*pair)
        within_alignment.update(*pair)
        fluctuating.update(*_offset_pair(0.0, rng))  # a right network: the offset is the flow's error
    rows, cols = steady.correction()
    assert rows == 0.0 and cols == pytest.approx(-1.0, abs=0.25)
    assert fluctuating.correction() is None
    assert within_alignment.correction() is None  # the alignment's to correct
    assert SteadyOffset(2.0, memory=10).correction() is None  # nothing judged yet
    with pytest.raises(ValueError, match="steady_offset_factor"):
        XMemSettings(steady_offset_factor=-1.0)


def test_a_network_far_off_the_flow_is_a_disagreement_not_an_offset():
    # A network a pixel right of the target, then lost two radii away (as the `lost` stand-in):
    # the lost frames are the guards' business and must not drag the correction after them.
    rng = np.random.default_rng(1)
    offset = SteadyOffset(2.0, memory=10)
    for _ in range(12):
        offset.update(*_offset_pair(1.0, rng))
    for _ in range(12):
        offset.update(*_offset_pair(STEADY_OFFSET_MAX_PX + 8.0, rng))
    rows, cols = offset.correction()
    assert rows == 0.0 and cols == pytest.approx(-1.0, abs=0.25)
    lost_from_the_start = SteadyOffset(2.0, memory=10)
    for _ in range(12):
        lost_from_the_start.update(*_offset_pair(STEADY_OFFSET_MAX_PX + 8.0, rng))
    assert lost_from_the_start.correction() is None


def _disc_probability(centre, radius=9.0, shape=(64, 64)):
    rows, cols = np.indices(shape, dtype=np.float32)
    distance = np.hypot(rows - centre[0], cols - centre[1])
    return np.clip(radius + 0.5 - distance, 0.0, 1.0).astype(np.float32)  # soft 1-px edge


def test_alignment_moves_the_target_onto_the_flow_centre_within_its_limit():
    probability = _disc_probability((30.0, 34.0))
    previous = probability > 0.5
    flow_centre = (31.2, 33.3)
    aligned, moved = align_to_flow(probability, previous, flow_centre, limit_px=2.0)
    assert moved
    assert np.abs(np.subtract(mask_centroid(aligned > 0.5), flow_centre)).max() <= 0.3
    # A gap beyond the limit is a disagreement for the guards, and no estimate is no move.
    for centre in ((34.0, 34.0), None):
        unchanged, moved = align_to_flow(probability, previous, centre, limit_px=2.0)
        assert not moved and unchanged is probability


def _estimate(confidence_on_outline=1.0, residual_on_outline=1.0, residual_around=1.0):
    """A flow estimate of a disc with the given FB consistency and residual on its outline."""
    mask = _disc_probability((32.0, 32.0)) > 0.5
    kernel = np.ones((5, 5), np.uint8)
    outline = cv2.dilate(mask.astype(np.uint8), kernel).astype(bool) & ~cv2.erode(mask.astype(np.uint8), kernel).astype(
        bool
    )
    confidence = np.where(outline, confidence_on_outline, 1.0).astype(np.float32)
    residual = np.where(outline, residual_on_outline, residual_around).astype(np.float32)
    image = np.where(mask, 200, 100).astype(np.uint8)
    return MotionEstimate(mask.astype(np.float32), confidence, mask, mask_centroid(mask), residual, image)


def test_the_flow_is_credible_only_where_its_outline_holds():
    assert flow_is_credible(_estimate(), min_consistency=0.9, max_residual_ratio=1.5)
    # Forward and backward disagree along the outline (occlusion, noise, a lookalike passing).
    assert not flow_is_credible(_estimate(confidence_on_outline=0.5), 0.9, 1.5)
    # The outline leaves a residual the surroundings do not (a growing cut, a contrast change).
    assert not flow_is_credible(_estimate(residual_on_outline=8.0, residual_around=2.0), 0.9, 1.5)
    assert flow_is_credible(_estimate(residual_on_outline=8.0, residual_around=2.0), 0.9, 0.0)  # test off
    lost = _estimate()
    lost.mask[:] = False
    assert not flow_is_credible(lost, 0.9, 1.5)


def _shrunk_or_grown(radius_now, contrast=40.0, gain_now=1.0, noise=3.0, seed=0):
    """A flow estimate of a disc of radius 10 on frame 0, carried by a flow that is right about
    the texture (no motion), on a frame where the cut has radius `radius_now` and the target's
    difference from the tissue is scaled by `gain_now`, with noise of this level on each frame."""
    rng = np.random.default_rng(seed)
    texture = cv2.GaussianBlur(rng.normal(0.0, 10.0, (64, 64)), (0, 0), 2.0) + 100.0
    then = texture + contrast * _disc(10.0) + rng.normal(0.0, noise, (64, 64))
    now = texture + gain_now * contrast * _disc(radius_now) + rng.normal(0.0, noise, (64, 64))
    image = np.clip(now, 0, 255).astype(np.uint8)
    change = (image.astype(np.float32) - np.clip(then, 0, 255)).astype(np.float32)
    mask = _disc(10.0)
    confidence = np.ones(mask.shape, np.float32)
    return MotionEstimate(mask.astype(np.float32), confidence, mask, mask_centroid(mask), change, image)


def test_the_edge_shift_is_how_far_the_cut_moved_off_the_flow_outline():
    for radius, expected in ((8.0, -2.0), (12.0, 2.0), (10.0, 0.0)):
        shift, evidence = edge_shift(_shrunk_or_grown(radius))
        assert abs(shift - expected) <= 0.5, (radius, shift)
        if expected:
            assert evidence >= EDGE_MIN_EVIDENCE
    # A contrast that drifts is not a move: the gain absorbs it.
    shift, evidence = edge_shift(_shrunk_or_grown(10.0, gain_now=1.3))
    assert abs(shift) <= 0.25 or evidence < EDGE_MIN_EVIDENCE
    # Noise alone is no evidence, over many draws.
    for seed in range(10):
        shift, evidence = edge_shift(_shrunk_or_grown(10.0, contrast=15.0, noise=15.0, seed=seed))
        assert abs(shift) <= 0.5 or evidence < EDGE_MIN_EVIDENCE, (seed, shift, evidence)
    lost = _shrunk_or_grown(10.0)
    lost.mask[:] = False
    assert edge_shift(lost) == (0.0, 0.0)


def test_a_cut_that_shrank_under_noise_passes_the_residual_test_not_the_edge_test():
    # A faint target under strong noise: the residual along the outline barely rises, its mean
    # profile across the outline does.
    shrunk = _shrunk_or_grown(7.0, contrast=15.0, noise=15.0)
    assert flow_is_credible(shrunk, 0.9, 1.5)
    assert edge_has_moved(shrunk, 0.5) and not edge_has_moved(shrunk, 4.0)
    assert not edge_has_moved(_shrunk_or_grown(10.0, contrast=15.0, noise=15.0), 0.5)


def _disc(radius, centre=(32.0, 32.0), shape=(64, 64)):
    rows, cols = np.indices(shape, dtype=np.float32)
    return np.hypot(rows - centre[0], cols - centre[1]) <= radius


def _carried(flow_mask, residual_beyond, residual_band=4.0, contrast=40):
    """A flow estimate whose mask is `flow_mask`, with this residual everywhere outside the mask
    (where a grown network reaches) and `residual_band` on and inside it, on an image where the
    target is `contrast` grey levels brighter than its surroundings."""
    residual = np.where(flow_mask, residual_band, residual_beyond).astype(np.float32)
    confidence = np.ones(flow_mask.shape, np.float32)
    image = np.where(flow_mask, 100 + contrast, 100).astype(np.uint8)
    centre = mask_centroid(flow_mask)
    return MotionEstimate(flow_mask.astype(np.float32), confidence, flow_mask, centre, residual, image)


def test_the_outward_offset_is_how_far_an_outline_moved_out():
    # About 0.8 of the distance on a round mask, at any size (a small one is coarser).
    for radius in (5.0, 10.0, 20.0):
        assert 1.4 < outward_offset(_disc(radius + 2.0), _disc(radius)) < 2.0
        assert -1.7 < outward_offset(_disc(radius - 2.0), _disc(radius)) < -1.3
    assert outward_offset(_disc(10.0), _disc(10.0)) == 0.0


def test_growth_over_tissue_the_flow_explains_is_told_from_a_cut_that_grew():
    flow = _disc(10.0)
    grown = _disc(12.0)
    # The pixels the network took look as they did on the first frame: tissue it grew over.
    assert grown_over_carried_tissue(grown, _carried(flow, residual_beyond=4.0), max_residual_ratio=0.9) is False
    assert grown_over_carried_tissue(grown, _carried(flow, residual_beyond=3.0), max_residual_ratio=0.9)
    # They changed their look (a cut growing through the plane): the flow cannot explain them.
    assert not grown_over_carried_tissue(grown, _carried(flow, residual_beyond=12.0), max_residual_ratio=0.9)
    # Not told where the image barely shows the target: a changed look would not stand out.
    assert not grown_over_carried_tissue(grown, _carried(flow, residual_beyond=1.0, contrast=3), 0.9)
    # Not growth: a few pixels of outline noise, or a network that left the flow mask (lost).
    noisy = flow.copy()
    noisy[32, 42:45] = True
    assert not grown_over_carried_tissue(noisy, _carried(flow, residual_beyond=1.0), 0.9)
    assert not grown_over_carried_tissue(np.roll(grown, 12, axis=1), _carried(flow, residual_beyond=1.0), 0.9)


def test_growth_beyond_the_edge_the_image_shows_is_growth_whatever_the_residual():
    # Textured tissue the flow carries, a target 40 grey levels above it, noise on both frames:
    # the residual beyond the flow mask is the noise's, about the outline band's, so the flow
    # alone does not tell a network grown by 2 px (radius 12 on a disc of 10) from a right one.
    unchanged, grew = _shrunk_or_grown(10.0), _shrunk_or_grown(12.0)
    grown = _disc(12.0)
    assert not grown_over_carried_tissue(grown, unchanged, max_residual_ratio=0.9)
    # The image says where the edge is: still on the flow mask's outline, 2 px inside the
    # network's; or moved out with the cut, under the network's outline.
    assert grown_over_carried_tissue(grown, unchanged, max_residual_ratio=0.0, beyond_edge_px=0.75)
    assert not grown_over_carried_tissue(grown, grew, max_residual_ratio=0.0, beyond_edge_px=0.75)
    # An outline less far out than the setting is not counted, nor one the image does not show
    # (a target as faint as the noise).
    assert not grown_over_carried_tissue(grown, unchanged, max_residual_ratio=0.0, beyond_edge_px=3.0)
    faint = _shrunk_or_grown(10.0, contrast=2.0, noise=15.0)
    assert not grown_over_carried_tissue(grown, faint, max_residual_ratio=0.0, beyond_edge_px=0.75)
    # Off (0), neither kind of evidence is asked.
    assert not grown_over_carried_tissue(grown, unchanged, max_residual_ratio=0.0)


def test_growth_counts_once_it_lasts_three_credible_frames():
    flow = _disc(10.0)
    carried = _carried(flow, residual_beyond=1.0)
    growth = SustainedGrowth(max_residual_ratio=0.9)
    assert [growth.update(_disc(12.0), carried, True) for _ in range(2)] == [None, None]  # a swell, so far
    assert growth.update(_disc(12.0), carried, True) == pytest.approx(outward_offset(_disc(12.0), flow))
    # A frame where the flow is not credible, or where the network did not grow, starts the count again.
    for interruption in ((_disc(12.0), False), (_disc(10.0), True)):
        growth.update(*interruption[:1], carried, interruption[1])
        assert [growth.update(_disc(12.0), carried, True) for _ in range(3)][:2] == [None, None]
    # Growth the flow cannot explain never counts.
    changed = _carried(flow, residual_beyond=12.0)
    through_plane = SustainedGrowth(0.9)
    assert [through_plane.update(_disc(12.0), changed, True) for _ in range(4)] == [None] * 4


def test_sustained_growth_leaves_a_network_no_refuge_in_the_image():
    flow = np.zeros((20, 20), bool)
    flow[5:15, 5:15] = True
    grown = np.zeros_like(flow)
    grown[3:17, 3:17] = True  # 2 px out all round: no outline pixel agrees
    assert growth_factor(0.3) == 1.0 and growth_factor(GROWTH_DEAD_ZONE_PX + 1.0) == 0.0
    spared, judged = NetworkTrust(0.7, 1.0), NetworkTrust(0.7, 1.0)
    for _ in range(3):
        spared.update(grown, flow, flow_credible=True, image_sides_with_network=True)
        judged.update(grown, flow, flow_credible=True, image_sides_with_network=True, grown_px=2.0)
    assert spared.trust == 1.0 and spared.unjudged_frames == 3
    assert judged.trust == 0.0 and judged.grown_frames == 3
    # Grown evenly by under the dead zone, an outline within the tolerance keeps its agreement.
    nudged = np.zeros_like(flow)
    nudged[5:16, 5:15] = True
    kept = NetworkTrust(0.7, 1.0)
    assert kept.update(nudged, flow, flow_credible=True, grown_px=0.2) == 1.0
    # Grown by a pixel and a half, the same outline counts as not agreeing at all.
    assert kept.update(nudged, flow, flow_credible=True, grown_px=1.5) == 0.0


def _info(frames):
    return SequenceInfo(frames.shape[:2], frames.shape[2], (1.0, 1.0), 4.0, 1.5, "abdomen")


def _texture(shape, base, amplitude, seed):
    noise = cv2.GaussianBlur(np.random.default_rng(seed).normal(size=shape).astype(np.float32), (0, 0), 1.5)
    return base + amplitude * noise / noise.std()


def test_the_outline_on_the_true_edge_has_the_most_image_contrast():
    rng = np.random.default_rng(0)
    rows, cols = np.indices((64, 64))
    distance = np.hypot(rows - 32, cols - 30)
    image = np.where(distance <= 10, 200.0, 100.0) + rng.normal(0.0, 10.0, (64, 64))
    truth = distance <= 10
    grown, shrunk, shifted = distance <= 13, distance <= 7, np.roll(truth, 3, axis=1)
    on_edge = outline_contrast(image, truth)
    assert on_edge == pytest.approx(100.0, abs=8.0)
    for wrong in (grown, shrunk, shifted):
        assert outline_contrast(image, wrong) < 0.8 * on_edge
    assert outline_contrast(-image, truth) == pytest.approx(on_edge)  # a reversed contrast counts alike
    assert outline_contrast(image, np.zeros_like(truth)) == 0.0


def test_the_image_weighs_only_outlines_of_about_the_flow_masks_size():
    rows, cols = np.indices((64, 64))
    distance = np.hypot(rows - 32, cols - 32)
    # A sharp bright core (radius 4) inside a graded edge that fades out by radius 10.
    image = np.where(distance <= 4, 250.0, np.clip(150.0 - 10.0 * (distance - 5.0), 100.0, 150.0))
    truth, core = distance <= 8, distance <= 4
    # The core's outline has the sharper contrast, but it is a quarter of the target: not weighed.
    assert outline_contrast(image, core) > 2 * outline_contrast(image, truth)
    assert image_contrast_ratio(image, core, truth) is None
    # A network mask on the true edge against a flow mask stuck inside the target is weighed.
    stuck = distance <= 6.5
    edge = np.where(distance <= 8, 200.0, 100.0)
    assert image_contrast_ratio(edge, truth, stuck) < 1.0
    # The same network mask against a flow mask under two thirds of its size is not weighed.
    assert image_contrast_ratio(edge, truth, distance <= 5) is None
    assert image_contrast_ratio(edge, np.zeros_like(truth), stuck) is None
    # A network outline across no change of intensity at all: the flow's can only be sharper.
    assert image_contrast_ratio(np.full_like(edge, 100.0), truth, stuck) == np.inf


def test_a_decisive_image_gives_the_fusion_a_trusted_network_in_full():
    rows, cols = np.indices((48, 48))
    distance = np.hypot(rows - 24, cols - 24)
    image = np.where(distance <= 7, 200.0, 100.0)  # the target shrank to radius 7
    network, flow = distance <= 7, distance <= 9  # the flow kept the larger outline
    ratio = image_contrast_ratio(image, network, flow)
    assert ratio < 0.25  # the flow's outline lies off the edge
    probability = np.where(network, 0.98, 0.02).astype(np.float32)  # sure of its outline
    prior = np.clip(9.5 - distance, 0.0, 1.0).astype(np.float32)
    covered, confident = np.ones(image.shape, bool), np.ones(image.shape, np.float32)

    def fused_mask(weight):
        return fuse_with_prior(probability, covered, prior, confident, 0.3, "confidence", weight) > 0.5

    partly = 0.3  # a trust the flow has lowered but not spent
    assert dice(fused_mask(fusion_trust(partly, ratio, 0.0)), flow) > 0.95  # off: the prior wins
    assert dice(fused_mask(fusion_trust(partly, ratio, 0.7)), network) > 0.95
    assert fusion_trust(partly, ratio, 0.7) == 1.0
    assert fusion_trust(partly, 0.8, 0.7) == partly  # not decisive
    assert fusion_trust(partly, None, 0.7) == partly  # the image did not weigh the two
    # A network the flow has left no trust gets none: where the target does not show, any sharp
    # structure it lands on out-contrasts the flow's outline.
    assert fusion_trust(0.0, ratio, 0.7) == 0.0


def translating_scene(n_frames=18, step=(2, 1), radius=8, shape=(112, 96)):
    """A textured scene with a bright textured disc, all moving `step` px a frame: the flow is right."""
    frame = _texture(shape, 100.0, 15.0, 0)
    rows, cols = np.indices(shape)
    disc = np.hypot(rows - 40, cols - 40) <= radius
    frame = np.where(disc, _texture(shape, 300.0, 40.0, 1), frame)
    moves = [(t * step[0], t * step[1]) for t in range(n_frames)]
    frames = np.stack([np.roll(frame, m, axis=(0, 1)) for m in moves], axis=2).astype(np.float32)
    return frames, np.stack([np.roll(disc, m, axis=(0, 1)) for m in moves], axis=2)


def growing_cut(n_frames=18, shape=(96, 96)):
    """A disc cut through a rigid textured tumour that grows from radius 6 to 14 px while nothing
    moves (through-plane change): the flow sees no motion and keeps the first, small mask."""
    background, tumour = _texture(shape, 100.0, 15.0, 2), _texture(shape, 300.0, 40.0, 3)
    rows, cols = np.indices(shape)
    distance = np.hypot(rows - 48, cols - 48)
    masks = np.stack([distance <= 6 + 8 * t / (n_frames - 1) for t in range(n_frames)], axis=2)
    frames = np.where(masks, tumour[:, :, None], background[:, :, None]).astype(np.float32)
    return frames, masks


def breathing_cut(n_frames=12, shape=(96, 96)):
    """A rigid textured tumour whose cut's right half shrinks from radius 14 to 9 px on every
    other frame and swells back (through-plane change at 1 frame/s) while nothing moves: the
    flow keeps the first, full mask."""
    background, tumour = _texture(shape, 100.0, 15.0, 4), _texture(shape, 300.0, 40.0, 5)
    radii = [14.0 if t % 2 == 0 else 9.0 for t in range(n_frames)]
    masks = np.stack([_cut(right, (48.0, 48.0), shape, radius=14.0) for right in radii], axis=2)
    frames = np.where(masks, tumour[:, :, None], background[:, :, None]).astype(np.float32)
    return frames, masks


def track_with(core, frames, masks, **settings):
    """The XMem tracker around a stand-in `core` on a hand-made scene: (its result, its events)."""
    tracker = XMemTracker(XMemSettings(crop_size=64, margin_mm="12", ema_weight="1", **settings), core=core)
    core.see_through(tracker)
    return run_tracker(tracker, frames, masks[:, :, 0], _info(frames)), tracker.events()


def run_stand_in(kind, frames, masks, **settings):
    result, events = track_with(StandInCore(kind, masks, frames), frames, masks, **settings)
    scores = [dice(result.masks[:, :, t] > 0, masks[:, :, t]) for t in range(1, frames.shape[2])]
    return np.array(scores), events


def test_a_right_network_against_a_wrong_flow_goes_through():
    frames, masks = growing_cut()
    scores, events = run_stand_in("exact", frames, masks)
    assert scores.min() > 0.9 and events["flow_not_credible"] > 0
    # The flow's own answer stays near the first, small mask.
    flow = run_tracker(build_tracker("optical-flow"), frames, masks[:, :, 0], _info(frames)).masks
    assert dice(flow[:, :, -1] > 0, masks[:, :, -1]) < min(0.85, scores[-1] - 0.1)


# The flow's own credibility tests off (consistency, residual, edge): the flow judges every frame.
FLOW_TESTS_OFF = {"flow_credible": 0.0, "flow_max_residual": 0.0, "flow_max_edge_shift": 0.0}


def faint_growing_cut(n_frames=16, shape=(96, 96), seed=6):
    """A faint target (20 grey levels above its tissue, both textured) whose cut grows from radius
    8 to 12 px while nothing moves, under noise of the target's own level on every frame: the
    residual along the flow's outline stays at the noise's, the mean profile across it moves."""
    rng = np.random.default_rng(seed)
    background = _texture(shape, 100.0, 15.0, 7)
    rows, cols = np.indices(shape)
    distance = np.hypot(rows - 48, cols - 48)
    masks = np.stack([distance <= 8 + 4 * t / (n_frames - 1) for t in range(n_frames)], axis=2)
    frames = background[:, :, None] + 20.0 * masks + rng.normal(0.0, 20.0, (*shape, n_frames))
    return frames.astype(np.float32), masks


def test_a_cut_that_grows_under_noise_is_left_to_the_network():
    frames, masks = faint_growing_cut()
    # The residual does not show it: without the edge test (the default) the flow judges every
    # frame, the right network loses its trust, and the output keeps to the first, small mask.
    without, without_events = run_stand_in("exact", frames, masks)
    assert without_events["flow_not_credible"] == 0 and without_events["network_untrusted"] > 0
    assert without.min() < 0.8
    with_edge, with_events = run_stand_in("exact", frames, masks, flow_max_edge_shift=0.5)
    assert with_events["flow_edge_moved"] >= frames.shape[2] // 2 and with_events["network_untrusted"] == 0
    assert with_events["flow_not_credible"] >= with_events["flow_edge_moved"] and without_events["flow_edge_moved"] == 0
    assert with_edge.min() > 0.9


def test_the_image_keeps_a_wrong_flow_from_judging_a_right_network():
    # The flow's own tests off: the flow that keeps the first, small mask judges every frame.
    frames, masks = growing_cut()
    judged, judged_events = run_stand_in("exact", frames, masks, **FLOW_TESTS_OFF, flow_min_contrast=0.0)
    imaged, imaged_events = run_stand_in("exact", frames, masks, **FLOW_TESTS_OFF, flow_min_contrast=1.0)
    assert judged_events["aligned_to_flow"] > 0 and judged_events["fallback_output_flow_mask"] > 0
    # The growing edge is in the image: the network's outline has the contrast, the flow's not,
    # so the flow neither moves nor rejects the network's map.
    assert imaged_events["aligned_to_flow"] == 0 and imaged_events["fallback_output_flow_mask"] == 0
    assert imaged_events["flow_overruled_by_image"] > 0 and judged_events["flow_overruled_by_image"] == 0
    assert imaged.min() > 0.95 and judged.min() < imaged.min() - 0.1


def test_a_decisive_image_reaches_the_tracker_only_when_asked():
    # The flow that keeps the first, small mask judges every frame; the `jitter` stand-in's
    # outline disagrees with it a little even where the flow is right, so its trust is below 1.
    frames, masks = growing_cut()
    off, off_events = track_with(StandInCore("jitter", masks, frames), frames, masks, **FLOW_TESTS_OFF)
    decided, decided_events = track_with(
        StandInCore("jitter", masks, frames), frames, masks, **FLOW_TESTS_OFF, decisive_contrast=0.7
    )
    assert off_events["network_weighed_in_full_by_image"] == 0
    assert decided_events["network_weighed_in_full_by_image"] > 0
    # Where the image decides, the output takes the network's size (the grown cut's) ...
    cut = np.count_nonzero(masks[:, :, -1])
    assert abs(np.count_nonzero(decided.masks[:, :, -1]) - cut) < abs(np.count_nonzero(off.masks[:, :, -1]) - cut)
    # ... at the flow's place: the size differs from the flow mask's, so the output is aligned.
    assert decided_events["aligned_to_flow"] > off_events["aligned_to_flow"]
    with pytest.raises(ValueError, match="decisive_contrast"):
        XMemSettings(decisive_contrast=0.7, flow_min_contrast=0.0)  # a decisive case of no test


def test_on_a_small_target_a_decisive_network_keeps_its_own_place(monkeypatch):
    # The growing cut's first radius is 6 px: counted as small, its decided frames are not aligned.
    monkeypatch.setattr("model.trackers.xmem.SMALL_TARGET_RADIUS_PX", 7.0)
    frames, masks = growing_cut()
    off, off_events = run_stand_in("jitter", frames, masks, **FLOW_TESTS_OFF)
    decided, decided_events = run_stand_in("jitter", frames, masks, **FLOW_TESTS_OFF, decisive_contrast=0.7)
    assert decided_events["network_weighed_in_full_by_image"] > 0
    assert decided_events["aligned_to_flow"] == off_events["aligned_to_flow"]


def test_the_own_change_allowance_reaches_the_tracker():
    # The flow's own tests off: the flow judges every frame. It follows the shrinking edge only
    # part of the way, so on the shrunk frames the network's outline falls a little short of the
    # flow mask's and its trust dips below 1; with the allowance it stays at 1 and the output
    # keeps to the network's outline.
    frames, masks = breathing_cut()
    shrunk = slice(0, None, 2)  # frames 1, 3, 5, ...: the scores' index is the frame's minus 1
    without, without_events = run_stand_in("exact", frames, masks, **FLOW_TESTS_OFF)
    allowed, _ = run_stand_in("exact", frames, masks, **FLOW_TESTS_OFF, own_change_allowance=True)
    assert without_events["flow_overruled_by_image"] > 0
    assert np.all(allowed[shrunk] >= without[shrunk]) and allowed[0] > without[0] + 0.004


class _OffsetStandIn(StandInCore):
    """The `exact` stand-in a pixel right of the target on every frame: within the trust's
    tolerance of a right flow's outline."""

    def frame_map(self, t):
        return np.roll(super().frame_map(t), 1, axis=1)


def test_a_network_that_sits_off_the_target_is_moved_back():
    # A pixel right of a target of radius 5 (0.2 radii). The alignment off: on its own it would
    # move this map onto the flow's centre, as the gap is within its limit here; on a small
    # target it is not (0.1 radii).
    frames, masks = translating_scene(radius=5)
    centre_error = {}
    for factor in (0.0, 2.0):
        core = _OffsetStandIn("exact", masks, frames)
        result, events = track_with(core, frames, masks, align_max_px=0.0, steady_offset_factor=factor)
        out = result.masks
        gaps = [np.subtract(mask_centroid(out[:, :, t] > 0), mask_centroid(masks[:, :, t])) for t in range(6, 18)]
        centre_error[factor] = float(np.mean(np.hypot(*np.transpose(gaps))))
        assert (events["network_moved_by_steady_offset"] > 0) == bool(factor)
    assert centre_error[2.0] < centre_error[0.0] - 0.3, centre_error


def test_an_offset_as_small_as_a_flows_own_error_is_left_alone():
    # The same pixel is 0.2 radii of a target of radius 5 but 0.125 of one of radius 8: below
    # STEADY_OFFSET_LEAST_RADII a credible flow is steadily that far off a right network.
    moved = {}
    for radius in (5, 8):
        frames, masks = translating_scene(radius=radius)
        core = _OffsetStandIn("exact", masks, frames)
        _, events = track_with(core, frames, masks, align_max_px=0.0, steady_offset_factor=2.0)
        moved[radius] = events["network_moved_by_steady_offset"]
    assert 1 / 8 < STEADY_OFFSET_LEAST_RADII < 1 / 5
    assert moved[5] > 0 and moved[8] == 0, moved


def test_an_offset_within_the_alignments_limit_is_left_to_the_alignment():
    # A pixel right of a target of radius 5: beyond the alignment's limit at 0.1 radii (0.5 px),
    # within it at 0.3 radii (1.5 px), where the alignment moves the map on the frames it may.
    frames, masks = translating_scene(radius=5)
    moved = {}
    for max_flow_shift in (0.1, 0.3):
        core = _OffsetStandIn("exact", masks, frames)
        _, events = track_with(core, frames, masks, max_flow_shift=max_flow_shift, steady_offset_factor=2.0)
        moved[max_flow_shift] = events["network_moved_by_steady_offset"]
    assert moved[0.1] > 0 and moved[0.3] == 0, moved


def test_a_wrong_network_against_a_right_flow_is_kept_out():
    frames, masks = translating_scene()
    scores, events = run_stand_in("lost", frames, masks)
    assert scores.min() > 0.85, scores  # it never follows the wrong region
    assert events["fallback_flow_disagreed"] > 0
    alone, _ = run_stand_in("lost", frames, masks, motion="off")
    assert alone[-1] < 0.2


def test_both_right_the_network_keeps_its_own_outline():
    frames, masks = translating_scene()
    scores, events = run_stand_in("exact", frames, masks)
    assert scores.min() > 0.95
    assert events["network_untrusted"] == 0 and events["fallback_flow_disagreed"] == 0


def jumping_target(n_frames=24, jump_at=8, jump=(0, 36), radius=7, shape=(96, 112)):
    """A bright textured disc moving 1 px a frame over a static textured background, that jumps
    `jump` px at `jump_at` (beyond the crop window); the flow, following the background, loses it."""
    background, tumour = _texture(shape, 100.0, 15.0, 4), _texture(shape, 300.0, 40.0, 5)
    rows, cols = np.indices(shape)
    masks, frames = [], []
    for t in range(n_frames):
        centre = (40 + t, 30 + (jump[1] if t >= jump_at else 0))
        centre = (centre[0] + (jump[0] if t >= jump_at else 0), centre[1])
        disc = np.hypot(rows - centre[0], cols - centre[1]) <= radius
        masks.append(disc)
        frames.append(np.where(disc, np.roll(tumour, (t, centre[1] - 30), axis=(0, 1)), background))
    return np.stack(frames, axis=2).astype(np.float32), np.stack(masks, axis=2)


def test_a_target_that_left_the_window_is_found_again_within_a_few_frames():
    frames, masks = jumping_target()
    scores, events = run_stand_in("exact", frames, masks)
    assert events["target_searched"] >= 1
    jump_at = 8
    assert scores[: jump_at - 1].min() > 0.9  # scores[t - 1] is frame t
    assert scores[jump_at - 1 + 5 :].min() > 0.9, scores  # back within 5 frames, and kept


def haloed_scene(n_frames=16, radius=14, halo=17, step=(1, 1), shape=(112, 96)):
    """A textured disc inside a ring of brighter tissue, all moving `step` px a frame over a
    darker textured background, with noise: the flow is right, and the ring's outer edge has
    more contrast than the target's own."""
    rows, cols = np.indices(shape)
    distance = np.hypot(rows - 48, cols - 44)
    frame = np.where(distance <= halo, _texture(shape, 230.0, 15.0, 6), _texture(shape, 100.0, 15.0, 7))
    frame = np.where(distance <= radius, _texture(shape, 160.0, 15.0, 8), frame)
    moves = [(t * step[0], t * step[1]) for t in range(n_frames)]
    frames = np.stack([np.roll(frame, m, axis=(0, 1)) for m in moves], axis=2)
    frames += np.random.default_rng(9).normal(0.0, 8.0, frames.shape)
    return frames.astype(np.float32), np.stack([np.roll(distance <= radius, m, axis=(0, 1)) for m in moves], axis=2)


class _GrownStandIn(StandInCore):
    """From frame 2 on, the label grown by 3 px over the ring around it (a network that crept)."""

    def frame_map(self, t):
        label = super().frame_map(t)
        if t < 2:
            return label
        return cv2.dilate(label, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (7, 7)))


def _grown_on_haloed_scene(**settings):
    """The tracker around `_GrownStandIn` on `haloed_scene`: (its mean DSC once the growth has
    lasted a few frames, its events)."""
    frames, masks = haloed_scene()
    result, events = track_with(_GrownStandIn("exact", masks, frames), frames, masks, **settings)
    scores = [dice(result.masks[:, :, t] > 0, masks[:, :, t]) for t in range(1, frames.shape[2])]
    return np.mean(scores[4:]), events


def test_a_network_grown_over_the_tissue_around_the_target_loses_its_trust():
    # The image's evidence of growth off: only the flow's residual can tell the grown outline.
    spared, spared_events = _grown_on_haloed_scene(growth_max_residual=0.0, growth_beyond_edge=0.0)
    judged, judged_events = _grown_on_haloed_scene(growth_max_residual=0.9, growth_beyond_edge=0.0)
    # The ring's edge out-contrasts the target's: the image sides with the grown outline.
    assert spared_events["flow_overruled_by_image"] > 0 and spared_events["network_grown_over_tissue"] == 0
    assert judged_events["network_grown_over_tissue"] > 0 and judged_events["network_untrusted"] > 0
    assert judged > spared + 0.05, (judged, spared)


def test_a_cut_that_grows_through_the_plane_is_not_taken_for_creep():
    # The flow's own tests off: the flow that keeps the first, small mask judges every frame,
    # and the right network reaches beyond it over pixels whose look changed.
    frames, masks = growing_cut()
    scores, events = run_stand_in("exact", frames, masks, **FLOW_TESTS_OFF)
    assert events["network_grown_over_tissue"] == 0
    off, _ = run_stand_in("exact", frames, masks, **FLOW_TESTS_OFF, growth_max_residual=0.0)
    assert np.array_equal(scores, off)
    # Nor by the image: the target's edge moved out with the network's outline.
    edged, edged_events = run_stand_in("exact", frames, masks, **FLOW_TESTS_OFF, growth_beyond_edge=0.75)
    assert edged_events["network_grown_over_tissue"] == 0 and np.array_equal(edged, scores)


def test_a_network_grown_beyond_the_edge_loses_its_trust_by_the_image_alone():
    # The flow's evidence of growth off: only the image can tell the grown outline.
    spared, spared_events = _grown_on_haloed_scene(growth_max_residual=0.0, growth_beyond_edge=0.0)
    judged, judged_events = _grown_on_haloed_scene(growth_max_residual=0.0, growth_beyond_edge=0.75)
    assert spared_events["network_grown_over_tissue"] == 0 and spared_events["network_untrusted"] == 0
    assert judged_events["network_grown_over_tissue"] > 0 and judged_events["network_untrusted"] > 0
    assert judged > spared + 0.05, (judged, spared)
