"""What a clinic would use instead of a learned tracker: dense optical-flow mask propagation
and template matching. Both are causal and never return an empty mask (they keep the last
good one and count the event).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import cv2
import numpy as np

from model.tracker import SequenceInfo, Tracker

FLOW_REFERENCES = ("first-frame", "frame-to-frame")
FLOW_METHODS = ("dis", "farneback")


def to_uint8(frame: np.ndarray) -> np.ndarray:
    """Scale a frame to 0-255 by its own 1st-99th percentiles (absorbs global intensity drift)."""
    low, high = np.percentile(frame, (1.0, 99.0))
    scaled = (frame - low) * (255.0 / max(float(high - low), 1e-6))
    return np.clip(scaled, 0, 255).astype(np.uint8)


def _shift_mask(mask: np.ndarray, shift: tuple[float, float]) -> np.ndarray:
    """Translate a bool mask by (axis 0, axis 1) pixels, sub-pixel, threshold 0.5."""
    matrix = np.float32([[1, 0, shift[1]], [0, 1, shift[0]]])
    moved = cv2.warpAffine(mask.astype(np.float32), matrix, mask.shape[::-1], flags=cv2.INTER_LINEAR)
    return moved > 0.5


@dataclass
class OpticalFlowSettings:
    reference: str = field(
        default="first-frame",
        metadata={"help": "flow from the first frame (warp its mask) or from the previous frame (warp the last mask)"},
    )
    method: str = field(default="dis", metadata={"help": "dense flow: dis (OpenCV DIS) or farneback"})

    def __post_init__(self) -> None:
        if self.reference not in FLOW_REFERENCES:
            raise ValueError(f"reference must be one of {FLOW_REFERENCES}, got {self.reference!r}")
        if self.method not in FLOW_METHODS:
            raise ValueError(f"method must be one of {FLOW_METHODS}, got {self.method!r}")


class OpticalFlowTracker(Tracker):
    """Dense optical flow from the current frame back to a reference frame; the reference mask
    is pulled along the flow. "first-frame" never accumulates drift but must bridge large
    motion; "frame-to-frame" sees small steps but accumulates error."""

    name = "optical-flow"
    Settings = OpticalFlowSettings

    def __init__(self, settings: OpticalFlowSettings | None = None) -> None:
        self._settings = settings or OpticalFlowSettings()
        self._dis = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_MEDIUM)
        self._empty = 0

    def start(self, first_frame: np.ndarray, first_mask: np.ndarray, info: SequenceInfo) -> None:
        self._reference = to_uint8(first_frame)
        self._reference_mask = first_mask.astype(np.float32)
        self._last = first_mask.copy()
        self._grid = np.indices(first_frame.shape, dtype=np.float32)
        self._empty = 0

    def track(self, frame: np.ndarray) -> np.ndarray:
        current = to_uint8(frame)
        flow = self._flow(current, self._reference)  # where each current pixel sits in the reference
        pulled = cv2.remap(
            self._reference_mask,
            self._grid[1] + flow[..., 0],
            self._grid[0] + flow[..., 1],
            cv2.INTER_LINEAR,
            borderMode=cv2.BORDER_CONSTANT,
        )
        mask = pulled > 0.5
        if mask.any():
            self._last = mask
        else:
            self._empty += 1
        if self._settings.reference == "frame-to-frame":
            self._reference = current
            self._reference_mask = self._last.astype(np.float32)
        return self._last.copy()

    def _flow(self, source: np.ndarray, target: np.ndarray) -> np.ndarray:
        if self._settings.method == "dis":
            return self._dis.calc(source, target, None)
        return cv2.calcOpticalFlowFarneback(source, target, None, 0.5, 4, 21, 5, 7, 1.5, 0)

    def events(self) -> dict[str, int]:
        return {"empty_kept_last": self._empty}


@dataclass
class TemplateSettings:
    margin_mm: float = field(default=10.0, metadata={"help": "context around the tumour in the template, mm"})
    search_mm: float = field(default=30.0, metadata={"help": "search radius around the last position, mm"})
    min_score: float = field(
        default=0.3, metadata={"help": "below this correlation the last position is kept"}
    )


class TemplateTracker(Tracker):
    """Normalised cross-correlation of the first frame's tumour patch in a window around the
    last position; the first mask is translated by the best (sub-pixel) match."""

    name = "template"
    Settings = TemplateSettings

    def __init__(self, settings: TemplateSettings | None = None) -> None:
        self._settings = settings or TemplateSettings()
        self._low_score = 0

    def start(self, first_frame: np.ndarray, first_mask: np.ndarray, info: SequenceInfo) -> None:
        rows, cols = np.nonzero(first_mask)
        margin = [int(np.ceil(self._settings.margin_mm / s)) for s in info.pixel_spacing_mm]
        self._search = [int(np.ceil(self._settings.search_mm / s)) for s in info.pixel_spacing_mm]
        top = max(rows.min() - margin[0], 0)
        left = max(cols.min() - margin[1], 0)
        bottom = min(rows.max() + margin[0] + 1, first_frame.shape[0])
        right = min(cols.max() + margin[1] + 1, first_frame.shape[1])
        self._template = first_frame[top:bottom, left:right].astype(np.float32)
        self._origin = (top, left)
        self._first_mask = first_mask.copy()
        self._shift = (0.0, 0.0)
        self._last = first_mask.copy()
        self._low_score = 0

    def track(self, frame: np.ndarray) -> np.ndarray:
        height, width = self._template.shape
        # Search window: template positions within `search` of the last match.
        r0 = int(round(self._origin[0] + self._shift[0])) - self._search[0]
        c0 = int(round(self._origin[1] + self._shift[1])) - self._search[1]
        top, left = max(r0, 0), max(c0, 0)
        bottom = min(r0 + 2 * self._search[0] + height, frame.shape[0])
        right = min(c0 + 2 * self._search[1] + width, frame.shape[1])
        window = frame[top:bottom, left:right].astype(np.float32)
        if window.shape[0] < height or window.shape[1] < width:
            self._low_score += 1
            return self._last.copy()
        scores = cv2.matchTemplate(window, self._template, cv2.TM_CCOEFF_NORMED)
        _, best, _, (peak_c, peak_r) = cv2.minMaxLoc(scores)
        if best < self._settings.min_score:
            self._low_score += 1
            return self._last.copy()
        row = top + peak_r + _parabola_offset(scores[:, peak_c], peak_r)
        col = left + peak_c + _parabola_offset(scores[peak_r, :], peak_c)
        shift = (row - self._origin[0], col - self._origin[1])
        mask = _shift_mask(self._first_mask, shift)
        if mask.any():
            self._shift, self._last = shift, mask
        else:
            self._low_score += 1
        return self._last.copy()

    def events(self) -> dict[str, int]:
        return {"kept_last": self._low_score}


def _parabola_offset(profile: np.ndarray, peak: int) -> float:
    """Sub-pixel offset of a correlation peak from a parabola through it and its neighbours."""
    if peak == 0 or peak == len(profile) - 1:
        return 0.0
    left, centre, right = profile[peak - 1], profile[peak], profile[peak + 1]
    curvature = left - 2 * centre + right
    return float(0.5 * (left - right) / curvature) if curvature < 0 else 0.0
