"""Image motion shared by the trackers: 8-bit scaling for OpenCV, sub-pixel mask shifts, and
the dense optical flow (OpenCV DIS) that pulls a reference mask to the current frame.

Flow convention: `flow[r, c] = (dx, dy)` says where the current frame's pixel (r, c) lies in
the reference frame (x along numpy axis 1, y along axis 0, OpenCV's order), so a reference
map is carried to the current frame by sampling it at (c + dx, r + dy) (`pull`).
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from model.pipeline.masks import dice, mask_centroid, select_component

# Forward-backward disagreement (pixels) at which a flow vector's confidence is exp(-1/2).
FB_SIGMA_PX = 1.0


def to_uint8(frame: np.ndarray) -> np.ndarray:
    """Scale a frame to 0-255 by its own 1st-99th percentiles (absorbs global intensity drift)."""
    low, high = np.percentile(frame, (1.0, 99.0))
    return scale_to_uint8(frame, float(low), float(high))


def scale_to_uint8(frame: np.ndarray, low: float, high: float) -> np.ndarray:
    """Map [low, high] linearly to 0-255, clipped."""
    scaled = (frame - low) * (255.0 / max(high - low, 1e-6))
    return np.clip(scaled, 0, 255).astype(np.uint8)


MIN_DIS_SIDE = 16  # smaller images are padded for DIS, which needs 12 px a side (its patch and pyramid)


class DenseFlow:
    """OpenCV DIS optical flow (medium preset) or Farnebäck, one instance per sequence.

    `refinement` (DIS only): the variational refinement iterations on each pyramid level, which
    smooth the patch-matched field; the medium preset's 5 unless given (0: patch matching only).
    """

    METHODS = ("dis", "farneback")
    PRESET_REFINEMENT = 5  # cv2.DISOPTICAL_FLOW_PRESET_MEDIUM's variational refinement iterations

    def __init__(self, method: str = "dis", refinement: int = PRESET_REFINEMENT) -> None:
        if method not in self.METHODS:
            raise ValueError(f"method must be one of {self.METHODS}, got {method!r}")
        if refinement < 0:
            raise ValueError(f"refinement must be >= 0, got {refinement}")
        self._method = method
        self._dis = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_MEDIUM)
        self._dis.setVariationalRefinementIterations(refinement)

    def __call__(self, current: np.ndarray, reference: np.ndarray, initial: np.ndarray | None = None) -> np.ndarray:
        """Flow (H, W, 2) float32 from `current` to `reference` (uint8 images of one shape).

        `initial` (DIS only): a guess the search starts from, which bridges a displacement
        larger than the pyramid finds from zero.
        """
        if self._method == "farneback":
            return cv2.calcOpticalFlowFarneback(current, reference, None, 0.5, 4, 21, 5, 7, 1.5, 0)
        # DIS starts from the flow argument when it has the images' size (and refines in place).
        start = None if initial is None else np.array(initial, np.float32, copy=True)
        height, width = current.shape[:2]
        if min(height, width) >= MIN_DIS_SIDE:
            return self._dis.calc(current, reference, start)
        # DIS refuses images under 12 px a side: edge-replicated up to 16, the flow cropped back.
        bottom, right = max(MIN_DIS_SIDE - height, 0), max(MIN_DIS_SIDE - width, 0)
        current, reference = (
            cv2.copyMakeBorder(i, 0, bottom, 0, right, cv2.BORDER_REPLICATE) for i in (current, reference)
        )
        if start is not None:
            start = cv2.copyMakeBorder(start, 0, bottom, 0, right, cv2.BORDER_REPLICATE)
        return np.ascontiguousarray(self._dis.calc(current, reference, start)[:height, :width])


def pull(values: np.ndarray, flow: np.ndarray) -> np.ndarray:
    """Sample the float32 map `values` (reference frame) along `flow` (same size), bilinear.

    Outside `values` counts as 0.
    """
    rows, cols = np.indices(flow.shape[:2], dtype=np.float32)
    return cv2.remap(values, cols + flow[..., 0], rows + flow[..., 1], cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)


def forward_backward_confidence(forward: np.ndarray, backward: np.ndarray) -> np.ndarray:
    """Per current pixel, exp(-e^2 / (2 sigma^2)) with e the forward-backward disagreement.

    `forward` goes current -> reference, `backward` reference -> current (same region). Where
    the flow is right, following it to the reference and back returns to the start (e = 0);
    occlusion, noise or an appearance change break that loop.
    """
    rows, cols = np.indices(forward.shape[:2], dtype=np.float32)
    back = cv2.remap(
        backward,
        cols + forward[..., 0],
        rows + forward[..., 1],
        cv2.INTER_LINEAR,
        borderMode=cv2.BORDER_REPLICATE,
    )
    error_sq = ((forward + back) ** 2).sum(axis=2)
    return np.exp(-error_sq / (2.0 * FB_SIGMA_PX**2)).astype(np.float32)


@dataclass
class MotionEstimate:
    """One frame's motion, in full-frame coordinates."""

    prior: np.ndarray  # float32: the reference mask pulled to this frame, in [0, 1]
    confidence: np.ndarray  # float32 in [0, 1]: forward-backward consistency of the flow
    mask: np.ndarray  # bool: prior > 0.5 (may be empty when the flow lost the target)
    # The flow's estimate of the target's centroid (axis 0, axis 1); None when it lost it.
    centre: tuple[float, float] | None


class MaskFlow:
    """Carries a reference mask to each new frame by dense flow, once per frame.

    reference "first-frame": the flow goes from frame t to frame 0 and pulls the first mask
    (no accumulated drift, but must bridge the whole displacement); "previous-frame": from t
    to t-1, pulling the previous output (small steps, drift accumulates). The flow covers the
    whole frame and each frame is scaled to 8 bits by its own percentiles (`to_uint8`), exactly
    as the optical-flow tracker does: a cine frame costs DIS a few milliseconds, and flow
    computed on a window around the target placed it less precisely (docs/pipeline.md).
    With the first-frame reference the search starts from the target's last displacement
    (one vector for the whole frame): DIS alone does not find a displacement much larger than
    its coarsest pyramid level, a target that has moved far from frame 0 is reached step by
    step, and a single vector carries no last-frame noise into the new flow.
    """

    REFERENCES = ("first-frame", "previous-frame")

    CENTRES = ("pulled", "two-way")

    def __init__(self, reference: str, backward_check: bool, centre: str) -> None:
        if reference not in self.REFERENCES:
            raise ValueError(f"reference must be one of {self.REFERENCES}, got {reference!r}")
        if centre not in self.CENTRES:
            raise ValueError(f"centre must be one of {self.CENTRES}, got {centre!r}")
        self._reference_kind = reference
        self._backward_check = backward_check
        self._centre = centre
        self._flow = DenseFlow("dis")

    def start(self, first_frame: np.ndarray, first_mask: np.ndarray) -> None:
        self._set_reference(to_uint8(first_frame), first_mask)
        # The flow over the target on the last frame (x, y), the next search's start.
        self._displacement = np.zeros(2, np.float32)

    def estimate(self, frame: np.ndarray) -> MotionEstimate:
        """Motion of the reference mask to `frame` (a raw frame, like the first)."""
        current = to_uint8(frame)
        first_frame = self._reference_kind == "first-frame"
        start = np.full((*current.shape, 2), self._displacement, np.float32) if first_frame else None
        forward = self._flow(current, self._reference, start)
        prior = pull(self._reference_mask, forward)
        mask = prior > 0.5
        centre = mask_centroid(mask) if mask.any() else None
        if first_frame and centre is not None:
            self._displacement = forward[mask].mean(axis=0)
        confidence = np.ones(frame.shape, np.float32)
        if self._backward_check or self._centre == "two-way":
            # The reverse of the forward flow is the guess: the backward search then only
            # refines it, however far the target has moved.
            backward = self._flow(self._reference, current, -forward)
            if self._backward_check:
                confidence = forward_backward_confidence(forward, backward)
            if self._centre == "two-way" and centre is not None:
                centre = self._two_way_centre(centre, backward)
        self._current = current
        return MotionEstimate(prior, confidence, mask, centre)

    def _two_way_centre(self, pulled: tuple[float, float], backward: np.ndarray) -> tuple[float, float]:
        """The mean of two estimates of the target's centroid with partly independent errors:
        the pulled mask's (where the forward flow sends current pixels into the reference mask)
        and the reference mask's centroid pushed along the backward flow (where the reference
        target's pixels went, on average)."""
        pushed = np.add(self._reference_centre, backward[self._reference_target].mean(axis=0)[::-1])
        return (float((pulled[0] + pushed[0]) / 2), float((pulled[1] + pushed[1]) / 2))

    def advance(self, output_mask: np.ndarray) -> None:
        """After a frame's output is final: the previous-frame reference moves on to it."""
        if self._reference_kind == "previous-frame":
            self._set_reference(self._current, output_mask)

    def _set_reference(self, image: np.ndarray, mask: np.ndarray) -> None:
        self._reference = image
        self._reference_mask = mask.astype(np.float32)
        self._reference_target = mask.astype(bool)  # never empty: a first mask or an output
        self._reference_centre = mask_centroid(self._reference_target)


FUSION_RULES = ("fixed", "confidence")
# Added to both weights of the confidence rule, so where neither side is confident the two
# probabilities are averaged instead of divided by zero.
FUSION_FLOOR = 1e-3


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
      probability margin: 0 where it cannot decide, 1 where it is sure) and wf = prior_weight *
      the flow's forward-backward confidence (0 where the flow cannot be trusted), each plus a
      small floor. The prior weight sets which side wins a tie.
    `network_trust` in [0, 1] scales the network's weight by how far this sequence's network
    outputs have earned it (NetworkTrust); 1 leaves the rules as they are.
    `covered` marks the pixels the network saw (its crop window); elsewhere its probability
    is no evidence, so there it has no weight (the prior decides, or 0 where neither saw).
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


class NetworkTrust:
    """How far the fusion may trust this sequence's network outputs, from their agreement with
    the flow so far.

    Per frame, the agreement is the DSC between the network's mask (thresholded) and the flow
    mask; the trust is the running mean of the agreements up to this frame, mapped linearly
    from [floor, 1] to [0, 1]. A network that has kept to the flow (weights that work on this
    kind of image) keeps its weight; one that has kept straying from it (weights that do not
    know these images: their masks creep over neighbouring tissue) loses it, and the fusion
    becomes the flow prior. A mean over the whole sequence, not the latest frame: one
    frame's disagreement is the guards' business, a lasting one is the network's.
    """

    def __init__(self, floor: float) -> None:
        if not 0.0 <= floor < 1.0:
            raise ValueError(f"floor must be in [0, 1), got {floor}")
        self._floor = floor
        self._total = 0.0
        self._frames = 0
        self.untrusted_frames = 0  # frames whose trust was 0: the fusion was the flow prior

    def update(self, network_mask: np.ndarray, flow_mask: np.ndarray) -> float:
        """Add this frame's agreement (skipped when the flow mask is empty); the trust now."""
        if flow_mask.any():
            self._total += dice(network_mask, flow_mask)
            self._frames += 1
        trust = self.trust
        self.untrusted_frames += trust == 0.0
        return trust

    @property
    def trust(self) -> float:
        if not self._frames:
            return 1.0
        mean = self._total / self._frames
        return float(np.clip((mean - self._floor) / (1.0 - self._floor), 0.0, 1.0))


def align_to_flow(
    probability: np.ndarray, previous: np.ndarray, flow_centre: tuple[float, float] | None, limit_px: float
) -> tuple[np.ndarray, bool]:
    """Translate the probability map so that its target's centroid is the flow's estimate.

    The target is the 8-connected component of `probability > 0.5` that overlaps the previous
    output most (as the post-processing will choose it). The flow places the target more
    precisely than the network does, the network knows its shape (the cross-section changes
    with through-plane motion, which a pulled first mask does not show): the aligned map has
    the network's shape at the flow's position. A gap larger than `limit_px` is not a
    placement error but a disagreement, left to the guards; the map is then returned as it is.
    Returns the map and whether it was moved.
    """
    target = select_component(probability > 0.5, previous)
    if not target.any() or flow_centre is None:
        return probability, False
    gap = np.subtract(flow_centre, mask_centroid(target))
    if float(np.hypot(*gap)) > limit_px:
        return probability, False
    matrix = np.float32([[1, 0, gap[1]], [0, 1, gap[0]]])
    moved = cv2.warpAffine(probability, matrix, probability.shape[::-1], flags=cv2.INTER_LINEAR)
    return moved, True
