"""Probabilities -> one never-empty mask per frame, causally, in full-frame coordinates:
smoothing (causal EMA), threshold, one connected component, the area-jump and slow-failure
guards, and the fallback for a rejected frame (the flow mask, else the last accepted mask).

Entry points: PostProcessor, GuardSettings, ema_weight_for_frame_rate. See
docs/pipeline.md, "Per frame" (step 5) and "Motion parts".
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from model.pipeline.masks import dice, mask_centroid, select_component


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


@dataclass(frozen=True)
class GuardSettings:
    """The slow-failure guards (0 switches one off) and what a frame they reject outputs."""

    first_area_factor: float = field(
        default=0.0,
        metadata={"help": "reject a mask whose area is more than this factor away from the first mask's (0 = off)"},
    )
    min_flow_dice: float = field(
        default=0.0,
        metadata={"help": "reject a mask whose DSC with the flow-propagated mask is below this (0 = off)"},
    )
    max_flow_shift: float = field(
        default=0.1,
        metadata={
            "help": "reject a mask whose centroid is farther from the flow-propagated "
            "mask's than this many first-mask equivalent radii (0 = off)"
        },
    )
    flow_fallback: bool = field(
        default=True,
        metadata={
            "help": "a rejected frame outputs the flow-propagated mask (moves with the "
            "target) instead of repeating the last accepted mask"
        },
    )

    def __post_init__(self) -> None:
        if self.first_area_factor and self.first_area_factor <= 1.0:
            raise ValueError(f"first_area_factor must be 0 (off) or > 1, got {self.first_area_factor}")
        if not 0.0 <= self.min_flow_dice <= 1.0:
            raise ValueError(f"min_flow_dice must be in [0, 1], got {self.min_flow_dice}")
        if self.max_flow_shift < 0:
            raise ValueError(f"max_flow_shift must be >= 0, got {self.max_flow_shift}")

    @property
    def off(self) -> bool:
        """Whether no guard judges (the fallback has nothing to replace then)."""
        return not (self.first_area_factor or self.min_flow_dice or self.max_flow_shift)


NO_GUARDS = GuardSettings(max_flow_shift=0.0, flow_fallback=False)


class PostProcessor:
    """The stateful per-frame post-processing of one sequence (see the module docstring)."""

    def __init__(
        self,
        first_mask: np.ndarray,
        ema_weight: float,
        threshold: float,
        area_jump_factor: float,
        patience: int,
        guards: GuardSettings = NO_GUARDS,
    ) -> None:
        """Arguments as validated by XMemSettings; `first_mask` is non-empty (model.io)."""
        self._guards = guards
        self._first_area = int(np.count_nonzero(first_mask))
        self._first_radius = math.sqrt(self._first_area / math.pi)
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
        self.first_area = 0
        self.flow_disagreed = 0
        self.flow_fallbacks = 0
        self.fell_back = False  # whether the latest frame repeated the last accepted mask

    def __call__(
        self, probability: np.ndarray, flow_mask: np.ndarray | None = None, leeway_radii: float = 0.0
    ) -> np.ndarray:
        """Post-process one frame's foreground probability map (frame shape, float32).

        `flow_mask`: the flow-propagated mask of this frame, if any; the guards of step 5 judge
        against it and, with the guards' `flow_fallback`, a rejected frame outputs it (step 6).
        `leeway_radii`: first-mask radii the centroid guard allows this frame beyond its limit
        (the network's earned trust, model.pipeline.arbitration).
        """
        # In place: ema = w * p + (1 - w) * ema.
        self._ema *= 1.0 - self._weight
        self._ema += self._weight * probability
        mask = select_component(self._ema > self._threshold, self._last)
        area = int(np.count_nonzero(mask))
        self.fell_back = True
        if flow_mask is not None and not flow_mask.any():
            flow_mask = None  # the flow lost the target: nothing to judge by or fall back to
        if area == 0:
            self.vanished += 1
            self._streak = 0
            return self._fallback(flow_mask)
        if self._jumps(area, self._last_area):
            consistent = self._streak > 0 and not self._jumps(area, self._streak_area)
            self._streak = self._streak + 1 if consistent else 1
            self._streak_area = area
            if self._streak < self._patience:
                self.area_jumps += 1
                return self._fallback(flow_mask)
        else:
            self._streak = 0
        if self._slow_failure(mask, area, flow_mask, leeway_radii):
            return self._fallback(flow_mask)
        self._streak = 0
        self.fell_back = False
        self._last = mask
        self._last_area = area
        return mask.copy()

    def _slow_failure(self, mask: np.ndarray, area: int, flow_mask: np.ndarray | None, leeway: float) -> bool:
        """Step 5: whether the mask has drifted from the first frame or from the flow (counted)."""
        reason = self._drift(mask, area, flow_mask, leeway)
        if reason == "first_area":
            self.first_area += 1
        elif reason == "flow":
            self.flow_disagreed += 1
        return reason is not None

    def _drift(self, mask: np.ndarray, area: int, flow_mask: np.ndarray | None, leeway: float) -> str | None:
        """Which slow-failure guard the mask fails ("first_area", "flow"), or None."""
        guards = self._guards
        if guards.first_area_factor and (
            area > guards.first_area_factor * self._first_area or area * guards.first_area_factor < self._first_area
        ):
            return "first_area"
        if flow_mask is None or not flow_mask.any():
            return None
        if guards.min_flow_dice and dice(mask, flow_mask) < guards.min_flow_dice:
            return "flow"
        if guards.max_flow_shift:
            gap = np.subtract(mask_centroid(mask), mask_centroid(flow_mask))
            if float(np.hypot(*gap)) > (guards.max_flow_shift + leeway) * self._first_radius:
                return "flow"
        return None

    def passes_guards(self, binary: np.ndarray, flow_mask: np.ndarray | None, leeway_radii: float = 0.0) -> bool:
        """Whether another thresholded map of this frame (the network's own, before the fusion
        with the flow prior) passes steps 3-5, judged against this frame's accepted output and
        without smoothing; nothing is counted or kept.

        The memory is written from the network's own prediction, so it is that prediction, not
        the fused output, which must pass the guards to be memorised.
        """
        mask = select_component(binary, self._last)
        area = int(np.count_nonzero(mask))
        if area == 0 or self._jumps(area, self._last_area):
            return False
        return self._drift(mask, area, flow_mask, leeway_radii) is None

    def _fallback(self, flow_mask: np.ndarray | None) -> np.ndarray:
        """The output of a rejected frame: the flow-propagated mask, else the last accepted."""
        if flow_mask is None or not self._guards.flow_fallback:
            return self._last.copy()
        self.flow_fallbacks += 1
        return flow_mask.copy()

    @property
    def last_mask(self) -> np.ndarray:
        """The last accepted mask (the component choice of the next frame prefers it)."""
        return self._last

    def _jumps(self, area: int, reference: int) -> bool:
        return area > self._factor * reference or area * self._factor < reference

    def events(self) -> dict[str, int]:
        return {
            "fallback_mask_vanished": self.vanished,
            "fallback_area_jump": self.area_jumps,
            "fallback_first_area": self.first_area,
            "fallback_flow_disagreed": self.flow_disagreed,
            "fallback_output_flow_mask": self.flow_fallbacks,
        }
