"""Template matching of the first frame's tumour patch: the other non-learned peer.

Causal, and never returns an empty mask (it keeps the last position when the match is weak).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import cv2
import numpy as np

from model.pipeline.masks import shift_mask
from model.trackers.base import SequenceInfo, Tracker


@dataclass
class TemplateSettings:
    margin_mm: float = field(default=10.0, metadata={"help": "context around the tumour in the template, mm"})
    search_mm: float = field(default=30.0, metadata={"help": "search radius around the last position, mm"})
    min_score: float = field(default=0.3, metadata={"help": "below this correlation the last position is kept"})


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
        mask = shift_mask(self._first_mask, shift)
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
