"""Stand-in networks: the XMem tracker's pipeline around a network of known quality (exact,
jitter, creep, lost) that predicts from a case's labels, seen through the tracker's own crop
window and network grid. For evaluation only (the benchmark's `xmem[network=KIND]`): a real
run has no labels.

Entry points: stand_in_tracker, StandInCore, STAND_INS. See docs/benchmark.md, "Where the
flow is wrong: flowfail, and stand-in networks".
"""

from __future__ import annotations

import math
from typing import Protocol

import cv2
import numpy as np
import torch

from model.pipeline.crop import CropWindow
from model.trackers.xmem import XMemSettings, XMemTracker

STAND_INS = ("exact", "jitter", "creep", "lost")
JITTER_SMOOTHING_PX = 3.0
JITTER_STD_PX = 1.0
JITTER_EDGE_PX = 0.5
CREEP_FRAMES_PER_PX = 10
LOST_SHIFT_RADII = 2.0


def stand_in_tracker(kind: str, settings: dict[str, object], labels: np.ndarray, frames: np.ndarray) -> XMemTracker:
    """The XMem tracker with `settings` around stand-in `kind` built from a sequence's labels
    and frames, both (W, H, T)."""
    core = StandInCore(kind, labels, frames)
    tracker = XMemTracker(XMemSettings(**settings), core=core)
    core.see_through(tracker)
    return tracker


class SeesThroughWindow(Protocol):
    """The tracker the stand-in sits in: where its window is now."""

    @property
    def window(self) -> CropWindow: ...


class StandInCore:
    """A VideoCore (model.trackers.xmem) that predicts a stand-in's map from the labels.

    `labels` (W, H, T) and `frames` (W, H, T) are the case's; `see_through` gives it the
    tracker whose window it looks through (call before the tracker starts). The frame index
    advances on `commit`, which the tracker calls once per frame.
    """

    precision = "fp32"
    path = "stand-in from the labels"

    def __init__(self, kind: str, labels: np.ndarray, frames: np.ndarray, seed: int = 0) -> None:
        if kind not in STAND_INS:
            raise ValueError(f"stand-in network must be one of {STAND_INS}, got {kind!r}")
        self.kind = kind
        self.device = torch.device("cpu")
        self._labels = labels.astype(bool)
        self._frames = frames
        self._seed = seed
        self._tracker: SeesThroughWindow | None = None
        self._index = 0

    def see_through(self, tracker: SeesThroughWindow) -> None:
        self._tracker = tracker

    def reset(self, expected_frames: int | None = None) -> None:
        self._index = 0
        self._rng = np.random.default_rng(self._seed)
        first = self._labels[:, :, 0]
        self._radius = math.sqrt(np.count_nonzero(first) / math.pi)
        self._target_intensity = float(np.median(self._frames[:, :, 0][first]))

    def step(self, image: torch.Tensor, mask: torch.Tensor | None = None, end: bool = False) -> torch.Tensor:
        """Frame 0 (the tracker gives it the first mask): its map is the first label."""
        return self._through_window(self._labels[:, :, 0].astype(np.float32))

    def predict(self, image: torch.Tensor) -> torch.Tensor:
        """The stand-in's (background, foreground) probabilities for the next frame, on the grid."""
        return self._through_window(self.frame_map(self._index + 1))

    def commit(self, accept: bool = True) -> None:
        self._index += 1

    def shift_sensory(self, rows: float, cols: float) -> None:
        """Nothing to shift: a stand-in has no hidden state."""

    def frame_map(self, t: int) -> np.ndarray:
        """The stand-in's foreground probability for frame t on the whole frame (float32)."""
        label = self._labels[:, :, t]
        if self.kind == "exact":
            return label.astype(np.float32)
        if self.kind == "jitter":
            return self._jittered(label)
        if self.kind == "creep":
            return self._crept(label, self._frames[:, :, t], t // CREEP_FRAMES_PER_PX).astype(np.float32)
        if t < self._labels.shape[2] // 3:
            return label.astype(np.float32)
        shift = LOST_SHIFT_RADII * self._radius
        matrix = np.float32([[1, 0, shift], [0, 1, 0]])  # along numpy axis 1
        return cv2.warpAffine(label.astype(np.float32), matrix, label.shape[::-1], flags=cv2.INTER_NEAREST)

    def _jittered(self, label: np.ndarray) -> np.ndarray:
        """A logistic edge around the label's boundary moved by a smooth random field."""
        inside = cv2.distanceTransform(label.astype(np.uint8), cv2.DIST_L2, 5)
        outside = cv2.distanceTransform((~label).astype(np.uint8), cv2.DIST_L2, 5)
        signed = inside - outside  # > 0 inside, pixels from the boundary
        noise = cv2.GaussianBlur(self._rng.standard_normal(label.shape).astype(np.float32), (0, 0), JITTER_SMOOTHING_PX)
        noise *= JITTER_STD_PX / max(float(noise.std()), 1e-6)
        logit = np.clip((signed + noise) / JITTER_EDGE_PX, -50.0, 50.0)
        return (1.0 / (1.0 + np.exp(-logit))).astype(np.float32)

    def _crept(self, label: np.ndarray, frame: np.ndarray, pixels: int) -> np.ndarray:
        """The label grown `pixels` times by the more target-like half of its one-pixel ring."""
        grown = label.copy()
        cross = cv2.getStructuringElement(cv2.MORPH_CROSS, (3, 3))
        for _ in range(pixels):
            ring = cv2.dilate(grown.astype(np.uint8), cross).astype(bool) & ~grown
            if not ring.any():
                break
            difference = np.abs(frame[ring] - self._target_intensity)
            similar = np.zeros_like(ring)
            similar[ring] = difference <= np.median(difference)
            grown |= similar
        return grown

    def _through_window(self, full_frame_map: np.ndarray) -> torch.Tensor:
        if self._tracker is None:
            raise RuntimeError("StandInCore.see_through must be called before the tracker starts")
        foreground = torch.from_numpy(self._tracker.window.crop(full_frame_map, 0.0))
        return torch.stack([1.0 - foreground, foreground])
