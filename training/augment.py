"""Geometric and intensity augmentations on 2-D float32 frames with their bool masks."""

from __future__ import annotations

import math

import cv2
import numpy as np


def random_affine(
    rng: np.random.Generator,
    centre: tuple[float, float],
    max_rotate_deg: float,
    scale_range: tuple[float, float],
    max_shear_deg: float,
    max_shift: float = 0.0,
) -> np.ndarray:
    """A 2×3 cv2 affine (x = numpy axis 1) rotating/scaling/shearing about `centre` (axis 0, axis 1)."""
    angle = math.radians(rng.uniform(-max_rotate_deg, max_rotate_deg))
    scale = rng.uniform(*scale_range)
    shear = math.tan(math.radians(rng.uniform(-max_shear_deg, max_shear_deg)))
    rotation = np.array([[math.cos(angle), -math.sin(angle)], [math.sin(angle), math.cos(angle)]])
    linear = scale * rotation @ np.array([[1.0, shear], [0.0, 1.0]])
    c = np.array([centre[1], centre[0]])
    shift = rng.uniform(-max_shift, max_shift, size=2)
    return np.hstack([linear, (c - linear @ c + shift)[:, None]])


def glide_offsets(rng: np.random.Generator, num_frames: int, max_travel: float) -> np.ndarray:
    """Per-frame (x, y) offsets of a steady glide, num_frames × 2: zero at the first frame, then
    evenly spaced along one random direction up to a random length in [0, max_travel] at the last.

    Added to each frame's affine, it moves the whole view past a fixed window the way a
    whole-scene motion or a crop re-centring does at inference, so that matching memory by
    place in the window stops paying (docs/experiments/2026-11-25-positional-shortcut.md).
    """
    angle = rng.uniform(0.0, 2 * math.pi)
    length = rng.uniform(0.0, max_travel)
    direction = np.array([math.cos(angle), math.sin(angle)])
    return np.linspace(0.0, 1.0, num_frames)[:, None] * length * direction


def warp_affine(image: np.ndarray, mask: np.ndarray, matrix: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Apply a 2×3 affine to an image (bilinear, reflected border) and its mask (same grid)."""
    dsize = (image.shape[1], image.shape[0])
    warped = cv2.warpAffine(image, matrix, dsize, flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT_101)
    warped_mask = cv2.warpAffine(mask.astype(np.float32), matrix, dsize, flags=cv2.INTER_LINEAR)
    return warped, warped_mask > 0.5


def elastic_warp(
    image: np.ndarray, mask: np.ndarray, rng: np.random.Generator, strength: float = 0.02, grid: int = 4
) -> tuple[np.ndarray, np.ndarray]:
    """Smooth random deformation: control-point displacements (std `strength` × image size on
    a grid×grid lattice, like XMem's 12-point thin-plate spline at sigma 0.02) interpolated
    bicubically to a dense field."""
    h, w = image.shape
    coarse = rng.normal(0.0, strength * max(h, w), size=(2, grid, grid)).astype(np.float32)
    dy, dx = (cv2.resize(c, (w, h), interpolation=cv2.INTER_CUBIC) for c in coarse)
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
    map_x, map_y = xs + dx, ys + dy
    warped = cv2.remap(image, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT_101)
    warped_mask = cv2.remap(mask.astype(np.float32), map_x, map_y, cv2.INTER_LINEAR)
    return warped, warped_mask > 0.5


def random_gamma(frames: list[np.ndarray], rng: np.random.Generator, max_log_gamma: float = 0.4) -> list[np.ndarray]:
    """One gamma curve for the whole clip (contrast change between scanners/sequences).

    Applied before per-frame normalisation, on the clip's common [min, max] range.
    """
    low = min(float(f.min()) for f in frames)
    span = max(max(float(f.max()) for f in frames) - low, 1e-6)
    gamma = math.exp(rng.uniform(-max_log_gamma, max_log_gamma))
    return [np.power((f - low) / span, gamma, dtype=np.float32) for f in frames]


def add_noise(frame: np.ndarray, rng: np.random.Generator, max_std: float = 0.05) -> np.ndarray:
    """Gaussian noise relative to a normalised (unit-variance) frame."""
    return frame + np.float32(rng.uniform(0.0, max_std)) * rng.standard_normal(frame.shape, dtype=np.float32)
