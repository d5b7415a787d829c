"""The no-tracking baseline: every frame gets the first mask (the challenge's reference)."""

from __future__ import annotations

import numpy as np

from model.trackers import SequenceInfo, Tracker


class CopyTracker(Tracker):
    """Repeats the first-frame mask; a method must beat it to be ranked."""

    name = "copy"

    def __init__(self) -> None:
        self._mask: np.ndarray | None = None

    def start(self, first_frame: np.ndarray, first_mask: np.ndarray, info: SequenceInfo) -> None:
        self._mask = np.asarray(first_mask, dtype=bool).copy()

    def track(self, frame: np.ndarray) -> np.ndarray:
        if self._mask is None:
            raise RuntimeError("CopyTracker.track called before start")
        return self._mask.copy()
