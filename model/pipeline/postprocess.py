"""Probabilities -> one never-empty mask per frame, causally.

Per frame, in the full frame's coordinates:
1. causal exponential moving average of the foreground probability,
   ema_t = w * p_t + (1 - w) * ema_{t-1}, ema_0 = the first-frame mask;
2. threshold: ema_t > threshold;
3. keep one connected component (8-connected): the one overlapping the previous output mask
   most, else (no overlap) the largest;
4. guard: an empty result, or an area outside [last / f, last * f] with `last` the area of the
   last accepted mask and f the area-jump factor, is rejected; the last accepted mask is output
   instead and the event counted. A change that persists is real (the tumour's cross-section
   does change with through-plane motion): after `patience` consecutive area-jump rejections
   whose areas agree with each other within f, the new mask is accepted, so the guard can
   never lock the output onto a stale mask for good.
"""
from __future__ import annotations

import math

import cv2
import numpy as np


def ema_weight_for_frame_rate(frame_rate: float, time_constant_s: float) -> float:
    """EMA weight of the newest frame for a smoothing time constant in seconds.

    w = 1 - exp(-1 / (frame_rate * time_constant_s)): the discrete form of a first-order low
    pass with that time constant, so the smoothing lasts the same time (not the same number of
    frames) at every cine rate: light smoothing at 8 frames/s, almost none at 1 frame/s where
    the target moves far between frames and averaging would only make the mask lag.
    """
    if frame_rate <= 0 or time_constant_s <= 0:
        return 1.0
    return 1.0 - math.exp(-1.0 / (frame_rate * time_constant_s))


def select_component(binary: np.ndarray, previous: np.ndarray) -> np.ndarray:
    """The 8-connected component of `binary` overlapping `previous` most, else the largest."""
    count, labels, stats, _ = cv2.connectedComponentsWithStats(
        binary.astype(np.uint8, copy=False), connectivity=8
    )
    if count <= 2:  # no component, or exactly one: nothing to choose
        return binary.astype(bool, copy=True)
    overlap = np.bincount(labels[previous], minlength=count)
    overlap[0] = 0  # background
    if overlap.max() > 0:
        best = int(overlap.argmax())
    else:
        best = 1 + int(stats[1:, cv2.CC_STAT_AREA].argmax())
    return labels == best


class PostProcessor:
    """The stateful per-frame post-processing of one sequence (see the module docstring)."""

    def __init__(
        self,
        first_mask: np.ndarray,
        ema_weight: float,
        threshold: float,
        area_jump_factor: float,
        patience: int,
    ) -> None:
        """Arguments as validated by XMemSettings; `first_mask` is non-empty (model.io)."""
        self._weight = ema_weight
        self._threshold = threshold
        self._factor = area_jump_factor
        self._ema = first_mask.astype(np.float32)
        self._last = first_mask.astype(bool, copy=True)
        self._last_area = int(np.count_nonzero(self._last))
        self._patience = patience
        self._streak = 0  # consecutive area-jump rejections with mutually consistent areas
        self._streak_area = 0  # area of the latest of them
        self.vanished = 0
        self.area_jumps = 0
        self.fell_back = False  # whether the latest frame repeated the last accepted mask

    def __call__(self, probability: np.ndarray) -> np.ndarray:
        """Post-process one frame's foreground probability map (frame shape, float32)."""
        # In place: ema = w * p + (1 - w) * ema.
        self._ema *= 1.0 - self._weight
        self._ema += self._weight * probability
        mask = select_component(self._ema > self._threshold, self._last)
        area = int(np.count_nonzero(mask))
        self.fell_back = True
        if area == 0:
            self.vanished += 1
            self._streak = 0
            return self._last.copy()
        if self._jumps(area, self._last_area):
            consistent = self._streak > 0 and not self._jumps(area, self._streak_area)
            self._streak = self._streak + 1 if consistent else 1
            self._streak_area = area
            if self._streak < self._patience:
                self.area_jumps += 1
                return self._last.copy()
        self._streak = 0
        self.fell_back = False
        self._last = mask
        self._last_area = area
        return mask.copy()

    def _jumps(self, area: int, reference: int) -> bool:
        return area > self._factor * reference or area * self._factor < reference

    def events(self) -> dict[str, int]:
        return {"fallback_mask_vanished": self.vanished, "fallback_area_jump": self.area_jumps}
