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

from model.pipeline.masks import mask_centroid

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
    # float32: this frame minus the reference frame pulled along the flow, 8-bit scale: where the
    # flow explains the image, only noise is left. Its magnitude is the flow's residual.
    change: np.ndarray
    image: np.ndarray  # uint8: this frame on the change's scale (to_uint8)


class MaskFlow:
    """Carries a reference mask to each new frame by dense flow, once per frame: from frame t to
    frame 0 ("first-frame", searched from the last displacement) or to t-1 ("previous-frame"),
    over the whole frame as the optical-flow tracker does (flow on a window around the target
    placed it less precisely). Why: docs/pipeline.md, "One flow per frame".
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
        change = current.astype(np.float32) - pull(self._reference.astype(np.float32), forward)
        return MotionEstimate(prior, confidence, mask, centre, change, current)

    def _two_way_centre(self, pulled: tuple[float, float], backward: np.ndarray) -> tuple[float, float]:
        """The mean of two estimates of the target's centroid with partly independent errors:
        the pulled mask's (where the forward flow sends current pixels into the reference mask)
        and the reference mask's centroid pushed along the backward flow (where the reference
        target's pixels went, on average)."""
        pushed = np.add(self._reference_centre, backward[self._reference_target].mean(axis=0)[::-1])
        return (float((pulled[0] + pushed[0]) / 2), float((pulled[1] + pushed[1]) / 2))

    def search_from(self, found_mask: np.ndarray) -> None:
        """The target was found away from where the flow put it (re-detection): the next
        first-frame search starts from its displacement there."""
        if self._reference_kind == "first-frame" and found_mask.any():
            moved = np.subtract(mask_centroid(found_mask), self._reference_centre)
            self._displacement = -moved[::-1].astype(np.float32)  # current -> reference, (x, y)

    def advance(self, output_mask: np.ndarray) -> None:
        """After a frame's output is final: the previous-frame reference moves on to it."""
        if self._reference_kind == "previous-frame":
            self._set_reference(self._current, output_mask)

    def _set_reference(self, image: np.ndarray, mask: np.ndarray) -> None:
        self._reference = image
        self._reference_mask = mask.astype(np.float32)
        self._reference_target = mask.astype(bool)  # never empty: a first mask or an output
        self._reference_centre = mask_centroid(self._reference_target)
