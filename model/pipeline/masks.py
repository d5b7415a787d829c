"""The mask helpers every part of the pipeline shares: overlap, centroid, component, shift, the
box around a mask, and the boundary agreement of two masks, where they disagree and by how
much one reaches beyond the other."""

from __future__ import annotations

import cv2
import numpy as np

_RING = np.ones((3, 3), np.uint8)


def dice(a: np.ndarray, b: np.ndarray) -> float:
    """DSC of two bool masks (1.0 when both are empty)."""
    total = int(np.count_nonzero(a)) + int(np.count_nonzero(b))
    return 2.0 * int(np.count_nonzero(a & b)) / total if total else 1.0


def mask_centroid(mask: np.ndarray) -> tuple[float, float]:
    """Centre of mass of a non-empty 2-D mask (axis 0, axis 1); pixel i covers [i, i + 1)."""
    moments = cv2.moments(mask.astype(np.uint8, copy=False), binaryImage=True)
    # cv2 reports x along numpy axis 1 and y along axis 0, at pixel centres.
    return (moments["m01"] / moments["m00"] + 0.5, moments["m10"] / moments["m00"] + 0.5)


def select_component(binary: np.ndarray, previous: np.ndarray) -> np.ndarray:
    """The 8-connected component of `binary` overlapping `previous` most, else the largest."""
    count, labels, stats, _ = cv2.connectedComponentsWithStats(binary.astype(np.uint8, copy=False), connectivity=8)
    if count <= 2:  # no component, or exactly one: nothing to choose
        return binary.astype(bool, copy=True)
    overlap = np.bincount(labels[previous], minlength=count)
    overlap[0] = 0  # background
    if overlap.max() > 0:
        best = int(overlap.argmax())
    else:
        best = 1 + int(stats[1:, cv2.CC_STAT_AREA].argmax())
    return labels == best


def box_around(mask: np.ndarray, margin: int) -> tuple[slice, slice]:
    """The slices of a non-empty mask's bounding box widened by `margin` pixels on each side,
    clipped to the image (the neighbourhood a measure of its outline needs)."""
    rows, cols = np.nonzero(mask)
    return (
        slice(max(rows.min() - margin, 0), rows.max() + margin + 1),
        slice(max(cols.min() - margin, 0), cols.max() + margin + 1),
    )


def shift_map(values: np.ndarray, shift: tuple[float, float]) -> np.ndarray:
    """Translate a float32 map by (axis 0, axis 1) pixels, bilinear; 0 comes in at the edges."""
    matrix = np.float32([[1, 0, shift[1]], [0, 1, shift[0]]])
    return cv2.warpAffine(values, matrix, values.shape[::-1], flags=cv2.INTER_LINEAR)


def shift_mask(mask: np.ndarray, shift: tuple[float, float]) -> np.ndarray:
    """Translate a bool mask by (axis 0, axis 1) pixels, sub-pixel, threshold 0.5."""
    return shift_map(mask.astype(np.float32), shift) > 0.5


def surface_agreement(a: np.ndarray, b: np.ndarray, tolerance_px: float) -> float:
    """The fraction of both masks' boundary pixels that lie within `tolerance_px` of the other
    mask's boundary (the surface DSC at that tolerance): 1 when the outlines agree to within
    the tolerance, whatever the masks' size; 0 when one is empty and the other is not."""
    if not a.any() or not b.any():
        return float(not a.any() and not b.any())
    agreeing, _, _, total = _compare_outlines(a, b, tolerance_px)
    return agreeing / total


def outline_disagreement(a: np.ndarray, b: np.ndarray, tolerance_px: float) -> tuple[float, float]:
    """Where the outlines of two non-empty masks disagree, as fractions of both masks' boundary
    pixels (what `surface_agreement` leaves out, split by direction): (beyond, short), the
    boundary pixels farther than `tolerance_px` from the other outline where `a` reaches beyond
    `b` (a's outline outside b, or b's inside a) and where it falls short of it (a's outline
    inside b, or b's outside a)."""
    _, beyond, short, total = _compare_outlines(a, b, tolerance_px)
    return beyond / total, short / total


def outward_offset(a: np.ndarray, b: np.ndarray) -> float:
    """How far mask `a` reaches beyond non-empty mask `b` on average (pixels; negative when it is
    smaller): the difference of their areas over the number of b's boundary pixels. An outline
    that moved out evenly by d pixels gives about 0.8 d on a round mask, whatever its size (its
    boundary pixels outnumber its perimeter in pixel lengths)."""
    edge = np.count_nonzero(_boundary(b[box_around(b, 1)]))
    return (int(np.count_nonzero(a)) - int(np.count_nonzero(b))) / edge


def _compare_outlines(a: np.ndarray, b: np.ndarray, tolerance_px: float) -> tuple[int, int, int, int]:
    """Boundary pixel counts of two non-empty masks: (within the tolerance of the other outline,
    beyond, short, all), in `outline_disagreement`'s terms."""
    box = box_around(a | b, int(np.ceil(tolerance_px)) + 2)
    a, b = a[box], b[box]
    edge_a, edge_b = _boundary(a), _boundary(b)
    near_a = cv2.distanceTransform((~edge_a).astype(np.uint8), cv2.DIST_L2, 5) <= tolerance_px
    near_b = cv2.distanceTransform((~edge_b).astype(np.uint8), cv2.DIST_L2, 5) <= tolerance_px
    agreeing = np.count_nonzero(near_b[edge_a]) + np.count_nonzero(near_a[edge_b])
    off_a, off_b = edge_a & ~near_b, edge_b & ~near_a
    beyond = np.count_nonzero(off_a & ~b) + np.count_nonzero(off_b & a)
    short = np.count_nonzero(off_a & b) + np.count_nonzero(off_b & ~a)
    return agreeing, beyond, short, np.count_nonzero(edge_a) + np.count_nonzero(edge_b)


def _boundary(mask: np.ndarray) -> np.ndarray:
    """The mask's pixels with a 4- or 8-neighbour outside it (a mask at the box's edge counts)."""
    inside = mask.astype(np.uint8)
    return (inside - cv2.erode(inside, _RING, borderValue=0)).astype(bool)
