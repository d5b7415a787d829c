"""Arbitration between XMem's map and the flow, each judged on its own evidence, frame by frame.

The flow is a judge only on frames where it is credible by its own evidence: its forward and
backward fields agree along the target's outline and it explains the image there
(`flow_is_credible`). The network earns trust on those frames by how closely its outline
follows the flow's (`NetworkTrust`: the surface agreement at a pixel's tolerance, which a right
network keeps whatever the flow's sub-pixel error, and a creeping or lost one does not). Frames
where the flow is not credible (contrast change, through-plane change, a lookalike passing,
noise) neither cost nor earn the network anything; on frames where the image's contrast sides
with the network's outline against a credible flow's (`image_contrast_ratio`), the flow can
only confirm the network's trust. The trust then decides how far the fusion and the centroid
guard defer to the flow: the fusion's weights, and how far the guard lets the output stray from
the flow mask; where the image's verdict is decisive, the fusion may weigh the network in full
(`fusion_trust`, a setting, off by default). docs/pipeline.md, "Arbitration"."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import cv2
import numpy as np

from model.pipeline.masks import (
    box_around,
    mask_centroid,
    outline_disagreement,
    outward_offset,
    select_component,
    shift_map,
    shift_mask,
    surface_agreement,
)
from model.pipeline.motion import MotionEstimate

FUSION_RULES = ("fixed", "confidence")
# Added to both weights of the confidence rule, so where neither side is confident the two
# probabilities are averaged instead of divided by zero.
FUSION_FLOOR = 1e-3
# Half-width (pixels) of the band around the flow mask's outline whose forward-backward
# consistency says whether the flow is credible this frame.
CREDIBILITY_BAND_PX = 2
# The ring 4-10 px outside the outline whose residual is the flow's own level of error there.
_RING_INNER = np.ones((9, 9), np.uint8)
_RING_OUTER = np.ones((21, 21), np.uint8)
# A residual floor (8-bit grey levels) so that a noiseless ring does not make every outline suspect.
RESIDUAL_FLOOR = 1.0
# Width of the bands inside and outside an outline whose mean intensities `outline_contrast` compares.
CONTRAST_BAND_PX = 2
# The image compares two outlines of about the same target only: a network mask outside this
# range of the flow mask's area is not weighed against it. Below, a mask on a small target's
# bright core, whose outline out-contrasts the target's graded edge; above, a mask grown over
# tissue that ends at another edge (docs/results.md, "The image's test of the flow").
IMAGE_TEST_AREA_RATIOS = (0.5, 1.5)
# The target's edge against the flow mask's outline (`edge_shift`): the mean intensity at each
# whole pixel of distance from the outline, within EDGE_PROFILE_PX on either side, ...
EDGE_PROFILE_PX = 5
# ... against the first frame's, moved outward or inward by up to EDGE_SEARCH_PX in steps of
# EDGE_STEP_PX, ...
EDGE_SEARCH_PX = 6.0
EDGE_STEP_PX = 0.25
# ... up to an offset and a gain within this range (a contrast that drifts, not one that reverses).
EDGE_GAIN_RANGE = (0.5, 2.0)
# A move counts when it explains the profile better than none by at least this much: the drop in
# the squared misfit of the profile's means, in units of their noise (a chi-square).
EDGE_MIN_EVIDENCE = 10.0
# A network mask whose centroid lies farther than this (pixels) from a credible flow mask's is in
# disagreement with the flow (one of them lost the target), not placed a little off it: such a
# frame is the trust's and the guards' business and stays out of the steady offset's mean.
STEADY_OFFSET_MAX_PX = 2.0
# A credible flow's own steady error from a right network: up to 0.14 first-mask radii on the
# generated and real sets (a target of radius 4.7 px at SNR 2.4), where weights that sit off a
# small target do so by 0.17 radii and more (docs/results.md, "A steady offset, kept above the
# flow's own error"). A correction no larger than this many radii is the flow's error, not the
# network's.
STEADY_OFFSET_LEAST_RADII = 0.15
# A network whose mask's centroid lies within this many first-mask radii of a credible flow's
# centre agrees with the flow on where the target is; what they dispute is its size and shape,
# which a flow carried from the first frame cannot follow (a cut that changes through the plane).
# Only such a dispute earns the own-change allowance and the decisive image's full weight: a
# network off the target by a few pixels on a faint one can out-contrast the flow's outline
# (docs/results.md, "A change of size, told from a change of place").
SAME_PLACE_RADII = 0.15
# A network mask whose area is outside 1/x to x times the flow mask's differs from it in size.
SIZE_CHANGE_AREA_RATIO = 1.2
# On a target of a first-mask radius below this (pixels), the flow's centre is no better than a
# right network's (docs/experiments/2026-12-07-evidence-probes.md, "Small targets"): there a
# network the image decides for keeps its own place.
SMALL_TARGET_RADIUS_PX = 4.0
# Growth over carried tissue (`grown_over_carried_tissue`): fewer pixels than this beyond the flow
# mask are an outline's noise, not growth ...
GROWTH_MIN_PX = 10
# ... and a network mask holding less than this share of the flow mask has left it (a lost
# network), not grown out of it.
GROWTH_MIN_COVER = 0.8
# ... and it is told only where the target's contrast across the flow mask's outline is at least
# this times the residual along it: below, a pixel whose look changed would not stand out of the
# noise (a small target at low SNR).
GROWTH_MIN_CONTRAST = 1.0
# A network grown over carried tissue by at most this mean outward offset (pixels) keeps its
# agreement; its agreement then falls to 0 one pixel farther out (`growth_factor`).
GROWTH_DEAD_ZONE_PX = 0.5


@dataclass(frozen=True)
class ArbitrationSettings:
    """When the flow may judge a frame, and how far the network's trust lets it stray."""

    trust_floor: float = field(
        default=0.7,
        metadata={
            "help": "the network's trust: the running mean agreement of its outline with the "
            "flow mask's (surface DSC within --agreement-tolerance-px) on the frames where the "
            "flow is credible, mapped from [floor, 1] to [0, 1]; it scales the network's weight "
            "in the fusion, how far the alignment defers to the flow and the centroid guard's "
            "leeway (0 = off: full weight, full alignment, no leeway)"
        },
    )
    agreement_tolerance_px: float = field(
        default=1.0, metadata={"help": "outlines of the network's and the flow's masks closer than this agree"}
    )
    trust_memory: int = field(
        default=10,
        metadata={
            "help": "the trust's mean reaches back about this many frames where the flow is "
            "credible (an exponential mean; 0 = every such frame so far)"
        },
    )
    flow_credible: float = field(
        default=0.9,
        metadata={
            "help": "the flow judges a frame (trust, guards, fallback, crop) only when its forward-"
            "backward consistency around the flow mask's outline reaches this (0 = always)"
        },
    )
    flow_max_residual: float = field(
        default=1.5,
        metadata={
            "help": "... and when the image residual it leaves around that outline is at most this "
            "many times the residual a few pixels farther out (0 = no residual test)"
        },
    )
    flow_max_edge_shift: float = field(
        default=0.0,
        metadata={
            "help": "... and when the target's edge has not moved off its mask's outline by more than this "
            "many pixels since the first frame: this frame's intensity profile across the outline against "
            "the first frame's, pulled along the flow (a cut that grows or shrinks through the plane under "
            'noise; 0 = no edge test, the default; docs/pipeline.md, "The edge test")'
        },
    )
    guard_leeway: float = field(
        default=0.3,
        metadata={"help": "first-mask radii added to --max-flow-shift at full trust"},
    )
    flow_min_contrast: float = field(
        default=1.0,
        metadata={
            "help": "a credible flow judges the network (trust, alignment, the guard's leeway) only "
            "when the image contrast across its mask's outline is at least this times the contrast "
            "across the network mask's outline, where the network mask is "
            f"{IMAGE_TEST_AREA_RATIOS[0]} to {IMAGE_TEST_AREA_RATIOS[1]} times the flow mask's area "
            "(0 = no image test)"
        },
    )
    decisive_contrast: float = field(
        default=0.0,
        metadata={
            "help": "on a frame where the contrast across the flow mask's outline is below this times "
            "the contrast across the network mask's (a decisive case of --flow-min-contrast), the "
            "fusion weighs a network centred where the flow puts the target in full, unless the flow "
            "has left it no trust, and a network mask of another size than the flow mask's is still "
            "aligned to the flow's centre (0 = off; at most --flow-min-contrast)"
        },
    )

    own_change_allowance: bool = field(
        default=False,
        metadata={
            "help": "for a network centred where a credible flow puts the target, on a frame where the "
            "image sides with it or where it reaches nowhere beyond the flow mask, the part of its "
            "outline that falls short of the flow's counts as agreeing, up to how far the network's "
            "outline changed since the last frame (moved by the flow): a cut that shrinks through the "
            "plane, which the flow carried from the first frame cannot follow (docs/pipeline.md, "
            '"An allowance for the network\'s own change")'
        },
    )

    growth_max_residual: float = field(
        default=0.9,
        metadata={
            "help": "a network mask that holds a credible flow's mask and reaches beyond it over pixels "
            "the flow explains (their image residual at most this times that along the rest of the flow "
            "mask's outline), on three credible frames running, has grown over tissue that lay outside the "
            "target on the first frame and looks as it did: the image's siding with its outline no longer "
            "spares it in the trust, and its agreement falls with its outward offset beyond "
            f'{GROWTH_DEAD_ZONE_PX:g} px (0 = off; docs/pipeline.md, "Growth over carried tissue")'
        },
    )

    growth_beyond_edge: float = field(
        default=0.75,
        metadata={
            "help": "... or over pixels beyond the target's edge: its outline at least this many pixels "
            "farther out than the edge the image shows (this frame's intensity profile across the flow "
            "mask's outline against the first frame's, pulled along the flow; 0 = off; docs/pipeline.md, "
            '"Growth over carried tissue")'
        },
    )

    steady_offset_factor: float = field(
        default=1.5,
        metadata={
            "help": "move the network's map back by its steady offset from a credible flow: the "
            "running mean, over about --trust-memory credible frames, of its mask's centroid minus "
            "the flow mask's, per axis, where that mean is more than this many times its running "
            "spread (the flow's own error fluctuates around zero; a network that sits off the "
            f"target does not); frames more than {STEADY_OFFSET_MAX_PX:g} px apart are not counted, and a "
            "correction within the alignment's limit or within "
            f"{STEADY_OFFSET_LEAST_RADII:g} first-mask radii (a flow's own steady error) is left alone (0 = off)"
        },
    )

    def __post_init__(self) -> None:
        if not 0.0 <= self.trust_floor < 1.0:
            raise ValueError(f"trust_floor must be in [0, 1), got {self.trust_floor}")
        if self.agreement_tolerance_px <= 0:
            raise ValueError(f"agreement_tolerance_px must be > 0, got {self.agreement_tolerance_px}")
        if self.trust_memory < 0:
            raise ValueError(f"trust_memory must be >= 0, got {self.trust_memory}")
        if not 0.0 <= self.flow_credible <= 1.0:
            raise ValueError(f"flow_credible must be in [0, 1], got {self.flow_credible}")
        if self.flow_max_residual < 0:
            raise ValueError(f"flow_max_residual must be >= 0, got {self.flow_max_residual}")
        if self.flow_max_edge_shift < 0:
            raise ValueError(f"flow_max_edge_shift must be >= 0, got {self.flow_max_edge_shift}")
        if self.guard_leeway < 0:
            raise ValueError(f"guard_leeway must be >= 0, got {self.guard_leeway}")
        if self.flow_min_contrast < 0:
            raise ValueError(f"flow_min_contrast must be >= 0, got {self.flow_min_contrast}")
        if self.growth_max_residual < 0:
            raise ValueError(f"growth_max_residual must be >= 0, got {self.growth_max_residual}")
        if self.growth_beyond_edge < 0:
            raise ValueError(f"growth_beyond_edge must be >= 0, got {self.growth_beyond_edge}")
        if self.steady_offset_factor < 0:
            raise ValueError(f"steady_offset_factor must be >= 0, got {self.steady_offset_factor}")
        if not 0.0 <= self.decisive_contrast <= self.flow_min_contrast:
            raise ValueError(
                f"decisive_contrast must be in [0, flow_min_contrast = {self.flow_min_contrast}], "
                f"got {self.decisive_contrast}"
            )


def flow_is_credible(motion: MotionEstimate, min_consistency: float, max_residual_ratio: float) -> bool:
    """Whether the flow may judge this frame, from its own evidence around its mask's outline,
    where it must be right for the mask to be: its forward and backward fields agree there
    (mean consistency at least `min_consistency`), and it explains the image there about as
    well as a little farther out (the mean residual on the outline at most `max_residual_ratio`
    times that of a ring 4-10 px outside it: a cut that grows or a contrast that changes leaves
    its trace on the outline, texture the flow follows does not). 0 switches a test off. A cut
    that grows or shrinks under noise can pass both: `edge_has_moved`."""
    if not motion.mask.any():
        return False
    # Only the neighbourhood of the outline matters: work in the mask's box widened by the ring.
    box = box_around(motion.mask, _RING_OUTER.shape[0] // 2 + 1)
    mask = motion.mask[box].astype(np.uint8)
    confidence, residual = motion.confidence[box], np.abs(motion.change[box])
    band = _outline_band(mask)
    if min_consistency and confidence[band].mean() < min_consistency:
        return False
    if max_residual_ratio:
        ring = cv2.dilate(mask, _RING_OUTER).astype(bool) & ~cv2.dilate(mask, _RING_INNER).astype(bool)
        if ring.any():
            outside = float(residual[ring].mean())
            if float(residual[band].mean()) > max_residual_ratio * max(outside, RESIDUAL_FLOOR):
                return False
    return True


def edge_has_moved(motion: MotionEstimate, max_shift_px: float) -> bool:
    """Whether the target's edge has clearly moved off the flow mask's outline by more than
    `max_shift_px` since the first frame (`edge_shift`, with at least EDGE_MIN_EVIDENCE): a cut
    that grew or shrank through the plane, which the flow carried from the first frame cannot
    follow. The residual misses it where the target differs from its tissue by about the
    noise's level."""
    shift, evidence = edge_shift(motion)
    return abs(shift) > max_shift_px and evidence >= EDGE_MIN_EVIDENCE


def edge_shift(motion: MotionEstimate) -> tuple[float, float]:
    """How far the target's edge has moved off the flow mask's outline since the first frame, and
    how clearly: (pixels, outward positive; evidence against no move, `EdgeFit`). (0, 0) for a
    flow that lost the target."""
    fit = EdgeFit.of(motion)
    if fit is None:
        return 0.0, 0.0
    return fit.shift, fit.evidence_against(0.0)


@dataclass(frozen=True)
class EdgeFit:
    """Where the target's edge lies against the flow mask's outline, by the image alone.

    The flow carries the first frame's mask with the texture, so on the first frame pulled along
    the flow the target's edge lies on the mask's outline. The mean intensity at each whole pixel
    of signed distance from the outline (EDGE_PROFILE_PX either side) is this frame's profile
    across the edge; the same profile of the pulled first frame, moved by a shift s, predicts it
    up to an offset and a gain (EDGE_GAIN_RANGE, for a contrast that drifts). `misfit[k]`: how
    badly it predicts it moved by `shifts[k]` (searched to EDGE_SEARCH_PX in steps of
    EDGE_STEP_PX): the squared misfit of the profile's means, each weighed by its pixel count, over
    the noise's variance (half that of the change over the profile's pixels, which holds the noise
    of two frames), a chi-square."""

    shifts: np.ndarray
    misfit: np.ndarray

    @classmethod
    def of(cls, motion: MotionEstimate) -> EdgeFit | None:
        """The fit on this frame; None for a flow that lost the target."""
        if not motion.mask.any():
            return None
        reach = EDGE_PROFILE_PX + math.ceil(EDGE_SEARCH_PX)  # the first frame's profile must cover every shift
        box = box_around(motion.mask, reach + 1)
        mask = motion.mask[box].astype(np.uint8)
        inside = cv2.distanceTransform(mask, cv2.DIST_L2, 3)
        outside = cv2.distanceTransform(1 - mask, cv2.DIST_L2, 3)
        # Pixel centres' signed distance from the outline: -0.5 just inside it, +0.5 just outside.
        distance = np.where(mask.astype(bool), 0.5 - inside, outside - 0.5)
        near = np.abs(distance) < reach
        bins = np.floor(distance[near] + reach).astype(np.intp)
        n_bins = 2 * reach
        counts = np.bincount(bins, minlength=n_bins).astype(np.float64)
        change = motion.change[box]
        now = motion.image[box].astype(np.float32)
        then = now - change  # the first frame pulled along the flow
        centres = np.arange(n_bins) - reach + 0.5
        filled = counts > 0  # a small target has no pixels far inside
        then_profile = np.bincount(bins, then[near], minlength=n_bins)[filled] / counts[filled]
        then_centres = centres[filled]
        profiled = filled & (np.abs(centres) < EDGE_PROFILE_PX)
        weights = counts[profiled]
        now_profile = np.bincount(bins, now[near], minlength=n_bins)[profiled] / weights
        shifts = np.arange(-EDGE_SEARCH_PX, EDGE_SEARCH_PX + EDGE_STEP_PX / 2, EDGE_STEP_PX)
        # Row k: the first frame's profile moved outward by shifts[k], read at this frame's distances.
        predicted = np.interp(centres[profiled][None, :] - shifts[:, None], then_centres, then_profile)
        noise_variance = float(change[near & (np.abs(distance) < EDGE_PROFILE_PX)].var()) / 2.0
        misfit = _affine_misfit(predicted, now_profile, weights) / max(noise_variance, 1e-6)
        return cls(shifts, misfit)

    @property
    def shift(self) -> float:
        """How far the edge moved off the outline (pixels, outward positive): the best move."""
        return float(self.shifts[int(np.argmin(self.misfit))])

    def evidence_against(self, shift_px: float) -> float:
        """How much worse a move of `shift_px` predicts this frame's profile than the best move."""
        return float(np.interp(shift_px, self.shifts, self.misfit) - self.misfit.min())


def _affine_misfit(predicted: np.ndarray, observed: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Per row of `predicted`, the weighted squared misfit of `observed` after the best offset and
    a gain clipped to EDGE_GAIN_RANGE (weighted least squares)."""
    total = weights.sum()
    predicted_mean = (predicted * weights).sum(axis=1, keepdims=True) / total
    observed_mean = float((observed * weights).sum() / total)
    centred = predicted - predicted_mean
    spread = (weights * centred**2).sum(axis=1)
    covariance = (weights * centred * (observed - observed_mean)).sum(axis=1)
    gain = np.divide(covariance, spread, out=np.ones_like(spread), where=spread > 0)
    gain = np.clip(gain, *EDGE_GAIN_RANGE)[:, None]
    residual = observed - observed_mean - gain * centred
    return (weights * residual**2).sum(axis=1)


def _outline_band(mask: np.ndarray) -> np.ndarray:
    """The pixels within CREDIBILITY_BAND_PX of a uint8 mask's outline, on either side."""
    kernel = np.ones((2 * CREDIBILITY_BAND_PX + 1,) * 2, np.uint8)
    return cv2.dilate(mask, kernel).astype(bool) & ~cv2.erode(mask, kernel).astype(bool)


def outline_contrast(image: np.ndarray, mask: np.ndarray) -> float:
    """How sharply the image changes across the mask's outline: the absolute difference between
    the mean intensity of the band just inside it and of the band just outside it
    (CONTRAST_BAND_PX each). A mask on the target's true edge has the most; one that has grown
    into the tissue around it, or stayed where the edge was, has less. On a target a few bands
    across with a graded edge, a mask on its bright core can have more (docs/results.md, "The
    image's test of the flow"). 0 for an empty mask."""
    if not mask.any():
        return 0.0
    box = box_around(mask, CONTRAST_BAND_PX + 1)
    inside = mask[box].astype(np.uint8)
    kernel = np.ones((2 * CONTRAST_BAND_PX + 1,) * 2, np.uint8)
    inner = inside.astype(bool) & ~cv2.erode(inside, kernel, borderType=cv2.BORDER_REPLICATE).astype(bool)
    outer = cv2.dilate(inside, kernel).astype(bool) & ~inside.astype(bool)
    if not inner.any() or not outer.any():
        return 0.0
    window = image[box]
    return abs(float(window[inner].mean()) - float(window[outer].mean()))


def image_contrast_ratio(image: np.ndarray, network_mask: np.ndarray, flow_mask: np.ndarray) -> float | None:
    """How the image weighs a credible flow's outline against the network's: the contrast across
    the flow mask's outline over the contrast across the network mask's (`outline_contrast`;
    below 1, the image sides with the network). None when the image does not weigh the two: no
    network mask, or one outside IMAGE_TEST_AREA_RATIOS of the flow mask's area; infinite when
    the network's outline has no contrast at all."""
    network_area = int(np.count_nonzero(network_mask))
    if not network_area:
        return None
    low, high = IMAGE_TEST_AREA_RATIOS
    flow_area = int(np.count_nonzero(flow_mask))
    if not low * flow_area <= network_area <= high * flow_area:
        return None
    network_contrast = outline_contrast(image, network_mask)
    if network_contrast == 0.0:
        return math.inf
    return outline_contrast(image, flow_mask) / network_contrast


def grown_over_carried_tissue(
    network_mask: np.ndarray, motion: MotionEstimate, max_residual_ratio: float, beyond_edge_px: float = 0.0
) -> bool:
    """Whether the network's mask has grown over tissue the flow carries unchanged from the first
    frame: it holds most of the flow mask (GROWTH_MIN_COVER) and reaches beyond it by at least
    GROWTH_MIN_PX pixels, and either of two kinds of evidence says those pixels are not the
    target's:
    - the image: its outline lies at least `beyond_edge_px` farther out than the target's edge
      (its outward offset from the flow mask less the edge's move, `EdgeFit`), and that edge
      predicts the profile across the outline clearly better than one where the network puts it
      (by EDGE_MIN_EVIDENCE);
    - the flow: it explains those pixels about as well as the rest of the flow mask's outline
      band (their mean residual at most `max_residual_ratio` times the band's). Such pixels lay
      outside the target on the first frame and look as they did then; a cut that grows through
      the plane changes the look of what it takes, so the flow cannot explain it. Not told where
      the image barely shows the target (GROWTH_MIN_CONTRAST).
    0 switches a kind of evidence off."""
    # Both masks lie within this box: everything below works on it alone.
    box = box_around(network_mask | motion.mask, CREDIBILITY_BAND_PX + 1)
    network, flow = network_mask[box], motion.mask[box]
    beyond = network & ~flow
    if np.count_nonzero(beyond) < GROWTH_MIN_PX:
        return False
    if np.count_nonzero(network & flow) < GROWTH_MIN_COVER * np.count_nonzero(flow):
        return False
    if beyond_edge_px and _beyond_the_edge(outward_offset(network, flow), EdgeFit.of(motion), beyond_edge_px):
        return True
    rest = _outline_band(flow.astype(np.uint8)) & ~(network ^ flow)
    if not max_residual_ratio or not rest.any():
        return False
    residual = np.abs(motion.change[box])
    level = max(float(residual[rest].mean()), RESIDUAL_FLOOR)
    if outline_contrast(motion.image[box], flow) < GROWTH_MIN_CONTRAST * level:
        return False
    return float(residual[beyond].mean()) <= max_residual_ratio * level


def _beyond_the_edge(offset_px: float, fit: EdgeFit | None, min_px: float) -> bool:
    """Whether an outline `offset_px` out from the flow mask's lies at least `min_px` beyond the
    target's edge, and the image clearly says so."""
    if fit is None:
        return False
    return offset_px - fit.shift >= min_px and fit.evidence_against(offset_px) >= EDGE_MIN_EVIDENCE


class SustainedGrowth:
    """Whether the network keeps growing over tissue the flow carries (`grown_over_carried_tissue`),
    and by how much, over the frames where the flow is credible.

    A growth counts once it has been seen on RUN credible frames running; a frame where the flow
    is not credible, or where the network has not grown so, starts the count again. A network
    that creeps keeps what it took, frame after frame; a noisy outline on a small target swells
    over a frame or two now and then (docs/pipeline.md, "Growth over carried tissue").
    """

    RUN = 3

    def __init__(self, max_residual_ratio: float, beyond_edge_px: float = 0.0) -> None:
        self._ratio = max_residual_ratio
        self._beyond_edge = beyond_edge_px
        self._run = 0

    def update(self, network_mask: np.ndarray, motion: MotionEstimate, flow_credible: bool) -> float | None:
        """This frame's evidence: the network's outward offset from the flow mask (pixels) when
        its growth over carried tissue has lasted RUN credible frames, else None."""
        if flow_credible and grown_over_carried_tissue(network_mask, motion, self._ratio, self._beyond_edge):
            self._run += 1
        else:
            self._run = 0
        return outward_offset(network_mask, motion.mask) if self._run >= self.RUN else None


def growth_factor(offset_px: float) -> float:
    """What is left of the agreement of a network grown over carried tissue by `offset_px` on
    average: all of it up to GROWTH_DEAD_ZONE_PX, nothing one pixel farther out."""
    return float(np.clip(1.0 - (offset_px - GROWTH_DEAD_ZONE_PX), 0.0, 1.0))


def fusion_trust(trust: float, contrast_ratio: float | None, decisive: float, same_place: bool = True) -> float:
    """The network's trust as the fusion weighs it this frame: in full where the image's verdict
    against the flow's outline is decisive (`contrast_ratio` below `decisive`) on a network at
    the flow's place (`same_place`), unless the flow has left the network no trust: an image
    that shows no target (a faint one under noise) makes any sharp structure the network lands
    on out-contrast the flow's outline. Otherwise the trust as it is. `decisive` 0 is off."""
    if decisive and same_place and trust > 0.0 and contrast_ratio is not None and contrast_ratio < decisive:
        return 1.0
    return trust


def gap_to_flow_centre(network_mask: np.ndarray, flow_centre: tuple[float, float] | None) -> float:
    """How far (pixels) the network mask's centroid lies from the flow's centre of the target;
    infinite without either. Within SAME_PLACE_RADII first-mask radii the network is centred
    where the flow puts the target, and a disagreement between the two is one of size and shape."""
    if flow_centre is None or not network_mask.any():
        return math.inf
    return float(np.hypot(*np.subtract(mask_centroid(network_mask), flow_centre)))


def differs_in_size(network_mask: np.ndarray, flow_mask: np.ndarray) -> bool:
    """Whether the network mask's area is outside 1/SIZE_CHANGE_AREA_RATIO to
    SIZE_CHANGE_AREA_RATIO times the (non-empty) flow mask's."""
    ratio = np.count_nonzero(network_mask) / np.count_nonzero(flow_mask)
    return not 1.0 / SIZE_CHANGE_AREA_RATIO <= ratio <= SIZE_CHANGE_AREA_RATIO


class NetworkTrust:
    """How far this sequence's network outputs have earned the output: the running mean of their
    outlines' agreement with the flow's on credible frames, mapped from [floor, 1] to [0, 1]; 1
    until the flow has judged a frame (docs/pipeline.md, "Network trust").
    """

    def __init__(
        self,
        floor: float,
        tolerance_px: float,
        memory: int = 0,
        first_mask: np.ndarray | None = None,
        own_change_allowance: bool = False,
    ) -> None:
        """`first_mask`: the mask the network was given on frame 0, its outline before frame 1
        (for `own_change_allowance`, ArbitrationSettings)."""
        if not 0.0 <= floor < 1.0:
            raise ValueError(f"floor must be in [0, 1), got {floor}")
        self._floor = floor
        self._tolerance = tolerance_px
        self._memory = memory
        self._own_change_allowance = own_change_allowance
        # The last frame's network mask and flow mask: where the network's outline was, and
        # the flow's estimate of the target then (its move to this frame carries the outline).
        self._last: tuple[np.ndarray, np.ndarray] | None = None
        if first_mask is not None:
            self._last = (first_mask, first_mask)
        self._mean = 0.0
        self._frames = 0
        self.untrusted_frames = 0  # frames whose trust was 0: the flow decided them
        self.unjudged_frames = 0  # frames left out of the mean (flow not credible, or overruled and no better)
        self.grown_frames = 0  # frames judged as grown over carried tissue

    def update(
        self,
        network_mask: np.ndarray,
        flow_mask: np.ndarray,
        flow_credible: bool,
        image_sides_with_network: bool = False,
        grown_px: float | None = None,
        same_place: bool = True,
    ) -> float:
        """Add this frame's agreement when the flow is credible; the trust now.

        On a frame where the image sides with the network's outline (`image_contrast_ratio`),
        the flow's disagreement is no evidence against the network, its agreement still is for
        it: the frame counts only when its agreement is above the mean so far (above 0 while none
        has counted). Left out altogether, those frames would leave the trust to the frames
        where the network is plainly wrong. With the own-change allowance, the network's outline
        falling short of the flow's counts as agreeing there, and on any frame where it reaches
        nowhere beyond the flow's, up to how far the network's outline moved since the last
        frame; only for a network at the flow's place (`same_place`, `gap_to_flow_centre`): a dispute
        of size, not of where the target is (docs/pipeline.md, "An allowance for the network's
        own change").

        `grown_px`: the network's sustained growth over tissue the flow carries, when there is
        one (`SustainedGrowth`). Then the image's siding spares it nothing, and its agreement is
        scaled by `growth_factor`: an outline grown evenly by under a pixel still agrees at the
        tolerance."""
        last, self._last = self._last, (network_mask, flow_mask)
        if grown_px is not None:
            image_sides_with_network = False
            self.grown_frames += 1
        if flow_credible:
            agreement = surface_agreement(network_mask, flow_mask, self._tolerance)
            if grown_px is not None:
                agreement *= growth_factor(grown_px)
            if self._own_change_allowance and same_place:
                agreement += self._own_change(network_mask, flow_mask, last, image_sides_with_network)
            if image_sides_with_network and agreement <= self._mean:
                self.unjudged_frames += 1
            else:
                self._frames += 1
                # The mean of all counted frames, or with a memory an exponential mean of about
                # the last `memory` of them: a network that goes wrong late loses its trust sooner.
                step = 1.0 / (min(self._frames, self._memory) if self._memory else self._frames)
                self._mean += step * (agreement - self._mean)
        else:
            self.unjudged_frames += 1
        trust = self.trust
        self.untrusted_frames += trust == 0.0
        return trust

    def _own_change(
        self,
        network_mask: np.ndarray,
        flow_mask: np.ndarray,
        last: tuple[np.ndarray, np.ndarray] | None,
        image_sides_with_network: bool,
    ) -> float:
        """The part of the network's disagreement with the flow that its own change accounts
        for: where its outline falls short of the flow's (a cut shrinking through the plane,
        which a flow carried from the first frame cannot follow), at most the share of its
        outline that moved since the last frame, once carried along by the flow's move of the
        target. Never where it reaches beyond (growth over the tissue around the target is how
        a network fails), nothing for a network that stays where it was, and, unless the image
        sides with it, nothing for one that reaches beyond the flow mask anywhere."""
        if last is None or not (network_mask.any() and flow_mask.any() and last[0].any() and last[1].any()):
            return 0.0
        beyond, short = outline_disagreement(network_mask, flow_mask, self._tolerance)
        if beyond and not image_sides_with_network:
            return 0.0
        last_network, last_flow = last
        moved = shift_mask(last_network, tuple(np.subtract(mask_centroid(flow_mask), mask_centroid(last_flow))))
        changed = 1.0 - surface_agreement(network_mask, moved, self._tolerance)
        return min(short, changed)

    @property
    def trust(self) -> float:
        if not self._frames:
            return 1.0
        return float(np.clip((self._mean - self._floor) / (1.0 - self._floor), 0.0, 1.0))


class SteadyOffset:
    """The network's steady offset from a credible flow, and the correction it calls for.

    On each frame the flow is credible, the offset of the network mask's centroid from the flow
    mask's joins an exponential mean and mean square over about the last `memory` such frames
    (0: all of them). A right network's offset is the flow's own error, which fluctuates around
    zero; a network that sits a steady fraction of a pixel off the target keeps one sign. Along
    an axis where the mean is more than `factor` times the spread, after MIN_FRAMES credible
    frames, the network's map is moved back by the mean (docs/pipeline.md, "Steady offset").
    Offsets beyond STEADY_OFFSET_MAX_PX are disagreements, not placement, and are not counted; a
    correction of at most `least_px` is left alone (a flow steadily off a right network by a
    fraction of a pixel makes one that large: the tracker passes the larger of the alignment's
    limit and STEADY_OFFSET_LEAST_RADII first-mask radii).
    """

    MIN_FRAMES = 3

    def __init__(self, factor: float, memory: int, least_px: float = 0.0) -> None:
        self._factor = factor
        self._memory = memory
        self._least = least_px
        self._mean = np.zeros(2)
        self._mean_square = np.zeros(2)
        self._frames = 0

    def correction(self) -> tuple[float, float] | None:
        """(rows, columns) to move the network's map by now, or None."""
        if self._frames < self.MIN_FRAMES:
            return None
        spread = np.sqrt(np.maximum(self._mean_square - self._mean**2, 0.0))
        steady = np.abs(self._mean) > self._factor * spread
        correction = -self._mean * steady
        if float(np.hypot(*correction)) <= self._least:
            return None
        return (float(correction[0]), float(correction[1]))

    def update(self, network_mask: np.ndarray, flow_mask: np.ndarray) -> None:
        """Add a credible frame's offset (both masks non-empty), unless it is a disagreement."""
        offset = np.subtract(mask_centroid(network_mask), mask_centroid(flow_mask))
        if float(np.hypot(*offset)) > STEADY_OFFSET_MAX_PX:
            return
        self._frames += 1
        step = 1.0 / (min(self._frames, self._memory) if self._memory else self._frames)
        self._mean += step * (offset - self._mean)
        self._mean_square += step * (offset**2 - self._mean_square)


def fuse_with_prior(
    network: np.ndarray,
    covered: np.ndarray,
    prior: np.ndarray,
    flow_confidence: np.ndarray,
    prior_weight: float,
    rule: str,
    network_trust: float = 1.0,
) -> np.ndarray:
    """The network's foreground probability fused with the flow prior, per pixel (float32).

    fused = (wn * p_net + wf * p_prior) / (wn + wf), where
    - rule "fixed": wn = (1 - prior_weight) * trust, wf = prior_weight;
    - rule "confidence": wn = (1 - prior_weight) * trust * |2 p_net - 1| (the network's
      probability margin) and wf = prior_weight * the flow's forward-backward confidence, each
      plus a small floor. The prior weight sets which side wins a tie.
    `covered` marks the pixels the network saw (its crop window); elsewhere it has no weight.
    """
    if rule not in FUSION_RULES:
        raise ValueError(f"rule must be one of {FUSION_RULES}, got {rule!r}")
    if rule == "fixed":
        network_weight = np.full(network.shape, (1.0 - prior_weight) * network_trust, np.float32)
        prior_weight_map = np.full(network.shape, prior_weight, np.float32)
    else:
        network_weight = (1.0 - prior_weight) * network_trust * np.abs(2.0 * network - 1.0) + FUSION_FLOOR
        prior_weight_map = prior_weight * flow_confidence + FUSION_FLOOR
    network_weight = np.where(covered, network_weight, 0.0)
    total = network_weight + prior_weight_map
    return ((network_weight * network + prior_weight_map * prior) / total).astype(np.float32)


def align_to_flow(
    probability: np.ndarray, previous: np.ndarray, flow_centre: tuple[float, float] | None, limit_px: float
) -> tuple[np.ndarray, bool]:
    """Translate the probability map so that its target's centroid is the flow's estimate of it.

    The target is the 8-connected component of `probability > 0.5` that overlaps the previous
    output most (as the post-processing will choose it). A gap larger than `limit_px` is a
    disagreement, not a placement error, left to the guards; the map is then returned as it
    is. Returns the map and whether it was moved.
    """
    target = select_component(probability > 0.5, previous)
    if not target.any() or flow_centre is None:
        return probability, False
    gap = np.subtract(flow_centre, mask_centroid(target))
    if float(np.hypot(*gap)) > limit_px:
        return probability, False
    return shift_map(probability, (float(gap[0]), float(gap[1]))), True


class WindowSearch:
    """Where the network looks while the target is lost (re-detection).

    When the network sees no target in its window and the flow cannot say where it went, the
    window visits, one frame each, the positions around where the target was last seen: the
    8 neighbours at half the box's size, then the 8 at the box's size, and round again. The
    network's memory, not the flow, recognises the target when the window covers it.
    """

    RINGS = (0.5, 1.0)  # distances from the last position, in box sides
    _DIRECTIONS = ((-1, 0), (1, 0), (0, -1), (0, 1), (-1, -1), (-1, 1), (1, -1), (1, 1))

    def __init__(self, box_size: tuple[int, int]) -> None:
        self._box = box_size
        self._centre: tuple[float, float] | None = None
        self._visited = 0
        self.searches = 0  # how many times the target was lost and searched for

    @property
    def active(self) -> bool:
        return self._centre is not None

    def start(self, last_seen: tuple[float, float]) -> None:
        self._centre, self._visited = last_seen, 0
        self.searches += 1

    def stop(self) -> None:
        self._centre = None

    def next_centre(self) -> tuple[float, float]:
        """The window's centre for this frame's look."""
        if self._centre is None:
            raise RuntimeError("WindowSearch.next_centre called while not searching")
        ring = self.RINGS[(self._visited // len(self._DIRECTIONS)) % len(self.RINGS)]
        rows, cols = self._DIRECTIONS[self._visited % len(self._DIRECTIONS)]
        self._visited += 1
        return (self._centre[0] + rows * ring * self._box[0], self._centre[1] + cols * ring * self._box[1])
