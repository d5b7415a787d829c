"""Image motion helpers shared by the trackers: 8-bit scaling for OpenCV and sub-pixel mask shifts."""
from __future__ import annotations

import cv2
import numpy as np


def to_uint8(frame: np.ndarray) -> np.ndarray:
    """Scale a frame to 0-255 by its own 1st-99th percentiles (absorbs global intensity drift)."""
    low, high = np.percentile(frame, (1.0, 99.0))
    scaled = (frame - low) * (255.0 / max(float(high - low), 1e-6))
    return np.clip(scaled, 0, 255).astype(np.uint8)


def shift_mask(mask: np.ndarray, shift: tuple[float, float]) -> np.ndarray:
    """Translate a bool mask by (axis 0, axis 1) pixels, sub-pixel, threshold 0.5."""
    matrix = np.float32([[1, 0, shift[1]], [0, 1, shift[0]]])
    moved = cv2.warpAffine(mask.astype(np.float32), matrix, mask.shape[::-1], flags=cv2.INTER_LINEAR)
    return moved > 0.5
