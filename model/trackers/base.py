"""The tracker interface every tracker implements, and what a tracker may know of a sequence.

A tracker sees the sequence strictly causally: `start` gets frame 0 and its mask, then
`track` is called once per later frame, in order, and never sees a frame before it is due.
Frames are 2-D float32 numpy arrays in the numpy axis order of the TrackRAD arrays
(`frames[:, :, t]`, i.e. shape (W, H)); masks are 2-D bool arrays of the same shape.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np


@dataclass(frozen=True)
class SequenceInfo:
    """What a tracker may know about a sequence before it starts (no pixel data)."""

    frame_shape: tuple[int, int]  # numpy shape of one frame, (W, H) in the contract's words
    n_frames: int  # length of the sequence; trackers must not use it to look ahead
    pixel_spacing_mm: tuple[float, float]  # spacing along numpy axis 0 and axis 1
    frame_rate: float  # frames per second
    field_strength: float  # tesla, 0.35 or 1.5
    scanned_region: str  # e.g. "abdomen", "thorax", "lung", "pelvis"


class Tracker(ABC):
    """One target, one sequence at a time. Build a new tracker (or call start) per sequence."""

    name: str = "tracker"
    # A dataclass whose fields (int/float/str/bool, each with a default and
    # `metadata={"help": ...}`) are the tracker's user-facing settings; inference.py turns
    # every field into a `--field-name` option. None for trackers without settings.
    Settings: ClassVar[type | None] = None

    @abstractmethod
    def start(self, first_frame: np.ndarray, first_mask: np.ndarray, info: SequenceInfo) -> None:
        """Initialise on frame 0 and its (non-empty, bool) mask."""

    @abstractmethod
    def track(self, frame: np.ndarray) -> np.ndarray:
        """Return the bool mask of the next frame (same shape as the frame)."""

    def settings(self) -> dict[str, Any]:
        """What the tracker resolved for this sequence beyond its Settings fields (e.g. the
        value an 'auto' setting took, the weights file); the run report adds it to the fields."""
        return {}

    def describe(self) -> dict[str, str]:
        """What the tracker runs on (weights file and kind, device, precision, library versions);
        every run prints it and the run report records it. Empty for trackers without a model."""
        return {}

    def events(self) -> dict[str, int]:
        """Counters of notable events during the run (e.g. fallbacks), for the run report."""
        return {}
