"""Dense optical-flow mask propagation: what a clinic would use instead of a learned tracker.

Causal, and never returns an empty mask (it keeps the last good one and counts the event).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from model.pipeline.motion import DenseFlow, pull, to_uint8
from model.trackers.base import SequenceInfo, Tracker

FLOW_REFERENCES = ("first-frame", "previous-frame")  # the names of XMem's --motion
FLOW_METHODS = DenseFlow.METHODS


@dataclass
class OpticalFlowSettings:
    reference: str = field(
        default="first-frame",
        metadata={
            "help": "first-frame (flow from the first frame, warp its mask) or previous-frame "
            "(flow from the previous frame, warp the last mask)"
        },
    )
    method: str = field(default="dis", metadata={"help": "dense flow: dis (OpenCV DIS) or farneback"})
    refinement: int = field(
        default=DenseFlow.PRESET_REFINEMENT,
        metadata={"help": "DIS variational refinement iterations per pyramid level (0 = patch matching only)"},
    )

    def __post_init__(self) -> None:
        if self.reference not in FLOW_REFERENCES:
            raise ValueError(f"reference must be one of {FLOW_REFERENCES}, got {self.reference!r}")
        if self.method not in FLOW_METHODS:
            raise ValueError(f"method must be one of {FLOW_METHODS}, got {self.method!r}")
        if self.refinement < 0:
            raise ValueError(f"refinement must be >= 0, got {self.refinement}")


class OpticalFlowTracker(Tracker):
    """Dense optical flow from the current frame back to a reference frame; the reference mask
    is pulled along the flow. "first-frame" never accumulates drift but must bridge large
    motion; "previous-frame" sees small steps but accumulates error."""

    name = "optical-flow"
    Settings = OpticalFlowSettings

    def __init__(self, settings: OpticalFlowSettings | None = None) -> None:
        self._settings = settings or OpticalFlowSettings()
        self._flow = DenseFlow(self._settings.method, self._settings.refinement)
        self._empty = 0

    def start(self, first_frame: np.ndarray, first_mask: np.ndarray, info: SequenceInfo) -> None:
        self._reference = to_uint8(first_frame)
        self._reference_mask = first_mask.astype(np.float32)
        self._last = first_mask.copy()
        self._empty = 0

    def track(self, frame: np.ndarray) -> np.ndarray:
        current = to_uint8(frame)
        flow = self._flow(current, self._reference)  # where each current pixel sits in the reference
        mask = pull(self._reference_mask, flow) > 0.5
        if mask.any():
            self._last = mask
        else:
            self._empty += 1
        if self._settings.reference == "previous-frame":
            self._reference = current
            self._reference_mask = self._last.astype(np.float32)
        return self._last.copy()

    def events(self) -> dict[str, int]:
        return {"empty_kept_last": self._empty}
