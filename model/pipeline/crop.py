"""The crop window: which part of the frame the network sees, and the way back to the frame.
A box of fixed size in frame pixels, square in millimetres, placed around the first-frame mask
and afterwards only translated, so XMem's memory stays valid across a re-centring.

Entry points: CropWindow, CropBox, initial_box, margin_for_region. See docs/pipeline.md,
"The crop window".
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

from model.pipeline.masks import mask_centroid

# Margin (mm) around the first mask's bounding box, per scanned region. Thoracic and abdominal
# tumours move with breathing by up to about 20-30 mm peak to peak (lung lower lobe, liver,
# pancreas); at the slowest cine rates (about 1 frame/s) nearly all of that can happen between
# two frames, before the window can follow. Pelvic targets (prostate) move a few mm, so their
# margin is mostly background context for the network.
REGION_MARGIN_MM = {"pelvis": 20.0, "prostate": 20.0}
DEFAULT_MARGIN_MM = 30.0
# A box side never exceeds this many frame sides: beyond the frame it only holds padding, and
# a header with 0.001 mm pixels would otherwise ask for a 60000-pixel (14 GB) crop buffer.
MAX_BOX_FRAME_SIDES = 4


def margin_for_region(scanned_region: str) -> float:
    """The default margin (mm) for a scanned region; unknown regions get the breathing margin."""
    return REGION_MARGIN_MM.get(scanned_region.strip().lower(), DEFAULT_MARGIN_MM)


@dataclass(frozen=True)
class CropBox:
    """A box in frame pixels: rows/cols [origin, origin + size) along numpy axes 0 and 1."""

    origin: tuple[int, int]
    size: tuple[int, int]

    @property
    def centre(self) -> tuple[float, float]:
        return (self.origin[0] + self.size[0] / 2, self.origin[1] + self.size[1] / 2)


def initial_box(mask: np.ndarray, spacing_mm: tuple[float, float], margin_mm: float) -> CropBox:
    """The mask's bounding box widened by `margin_mm` on every side and made square in mm
    (`mask` is the whole first frame's mask; each side is capped at MAX_BOX_FRAME_SIDES x the
    frame's longer side)."""
    rows, cols = np.nonzero(mask)
    if rows.size == 0:
        raise ValueError("the first-frame mask is empty")
    lo = (int(rows.min()), int(cols.min()))
    hi = (int(rows.max()) + 1, int(cols.max()) + 1)
    extent_mm = max((hi[axis] - lo[axis]) * spacing_mm[axis] for axis in (0, 1))
    side_mm = extent_mm + 2.0 * margin_mm
    largest = MAX_BOX_FRAME_SIDES * max(mask.shape)
    size = tuple(min(largest, max(1, math.ceil(side_mm / spacing_mm[axis]))) for axis in (0, 1))
    origin = tuple(round((lo[axis] + hi[axis]) / 2 - size[axis] / 2) for axis in (0, 1))
    return CropBox(origin=origin, size=size)


class CropWindow:
    """Crops frames to the network grid, pastes network-grid maps back, and follows the target.

    The box size, the resize targets and the interpolation are fixed at construction; the
    frame/box slices are recomputed only when the box moves.
    """

    def __init__(self, box: CropBox, frame_shape: tuple[int, int], out_size: int) -> None:
        self._size = box.size
        self._frame_shape = frame_shape
        self._out_size = out_size
        self._buffer = np.empty(box.size, dtype=np.float32)
        # cv2 sizes are (width, height) = (numpy axis 1, numpy axis 0).
        self._to_net_dsize = (out_size, out_size)
        self._to_frame_dsize = (box.size[1], box.size[0])
        # Area averaging when shrinking (no aliasing), bilinear when enlarging.
        self._to_net_interp = cv2.INTER_AREA if min(box.size) > out_size else cv2.INTER_LINEAR
        self._to_frame_interp = cv2.INTER_AREA if max(box.size) < out_size else cv2.INTER_LINEAR
        self._place(box.origin)

    @property
    def box(self) -> CropBox:
        return CropBox(origin=self._origin, size=self._size)

    @property
    def frame_slices(self) -> tuple[slice, slice]:
        """The part of the frame the box covers."""
        return self._frame_slices

    def _place(self, origin: tuple[int, int]) -> None:
        self._origin = origin
        frame_slices, box_slices = [], []
        for axis in (0, 1):
            start = max(origin[axis], 0)
            stop = min(origin[axis] + self._size[axis], self._frame_shape[axis])
            stop = max(stop, start)  # a box wholly outside the frame gets empty slices
            frame_slices.append(slice(start, stop))
            box_slices.append(slice(start - origin[axis], stop - origin[axis]))
        self._frame_slices = tuple(frame_slices)
        self._box_slices = tuple(box_slices)
        covered = [s.stop - s.start for s in frame_slices]
        self._inside = covered[0] == self._size[0] and covered[1] == self._size[1]

    def crop(self, frame: np.ndarray, pad_value: float = 0.0) -> np.ndarray:
        """The box's content resized to out_size x out_size float32; outside the frame = pad_value."""
        if not self._inside:
            self._buffer.fill(pad_value)
        self._buffer[self._box_slices] = frame[self._frame_slices]
        return cv2.resize(self._buffer, self._to_net_dsize, interpolation=self._to_net_interp)

    def crop_mask(self, mask: np.ndarray) -> np.ndarray:
        """A bool mask on the network grid; never empty when the mask has pixels inside the box."""
        resized = self.crop(mask.astype(np.float32), 0.0)
        peak = float(resized.max())
        if peak == 0.0:
            return resized > 0.0
        # A target smaller than a network pixel (area-averaged below 0.5) keeps its peak.
        return resized >= min(0.5, peak)

    def paste(self, values: np.ndarray, out: np.ndarray) -> None:
        """Resize a network-grid map back to the box and write it into `out` (frame shape).

        Only the part of the box inside the frame is written; the rest of `out` is untouched.
        """
        back = cv2.resize(values, self._to_frame_dsize, interpolation=self._to_frame_interp)
        out[self._frame_slices] = back[self._box_slices]

    def follow(self, mask: np.ndarray, recentre_fraction: float) -> tuple[float, float] | None:
        """Re-centre on the mask's centroid if it is off centre by more than `recentre_fraction`
        of the box's half-size along either axis.

        Returns None when the box stays, else how far the content moved on the network grid
        (rows, columns, in network pixels): the box's move in frame pixels, scaled to the
        network grid, with the opposite sign (the box moving down moves the content up).
        """
        if not mask.any():
            return None
        centroid = mask_centroid(mask)
        centre = self.box.centre
        off = any(abs(centroid[axis] - centre[axis]) > recentre_fraction * self._size[axis] / 2 for axis in (0, 1))
        if not off:
            return None
        return self.centre_on(centroid)

    def centre_on(self, centre: tuple[float, float]) -> tuple[float, float]:
        """Move the box so that its centre is `centre` (frame pixels); returns how far the
        content moved on the network grid (rows, columns; see `follow`)."""
        before = self._origin
        self._place(tuple(round(centre[axis] - self._size[axis] / 2) for axis in (0, 1)))
        rows, cols = ((before[axis] - self._origin[axis]) * self._out_size / self._size[axis] for axis in (0, 1))
        return rows, cols
