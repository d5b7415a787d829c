"""XMem's static-image stage on real slices (the issue's clips of kind a): one real slice with
a target (a real structure, or a painted lesion of weak or strong contrast that keeps the
slice's texture), deformed into several frames by training.static.deformed_copies."""

from __future__ import annotations

import cv2
import numpy as np

from sequences.real_texture.cine import pick_slice
from sequences.real_texture.sources import load_slice
from sequences.real_texture.targets import lesion_contrast, paint, place_target
from training.static import RADIUS_PX, deformed_copies

SIDE_PX = (192, 320)  # the slice's shorter side is scaled to a draw from this range


def real_static_frames(
    rng: np.random.Generator,
    num_frames: int,
    structure_probability: float = 0.3,
    weak_fraction: float = 0.5,
    split: str = "train",
) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """`num_frames` deformed copies of one real slice of `split` with its target (frame and mask
    lists); painted lesions are weak with probability `weak_fraction`, else strong."""
    image = load_slice(pick_slice(split, rng)).image
    zoom = rng.uniform(*SIDE_PX) / min(image.shape)
    image = cv2.resize(image, None, fx=zoom, fy=zoom, interpolation=cv2.INTER_CUBIC if zoom > 1 else cv2.INTER_AREA)
    radius = float(rng.uniform(*RADIUS_PX))
    border = int(np.ceil(1.5 * radius)) + 2
    allowed = np.zeros(image.shape, bool)
    allowed[border:-border, border:-border] = True
    strength = "weak" if rng.random() < weak_fraction else "strong"
    target = place_target(image, radius, allowed, lesion_contrast(strength, rng), structure_probability, rng)
    return deformed_copies(paint(image, target.cover, target.contrast), target.mask, rng, num_frames)
