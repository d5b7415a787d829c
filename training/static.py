"""Static-image clips (XMem's first training stage): one image deformed into several frames.

The images are real photographs/micrographs that ship inside scikit-image (`skimage.data`,
no download). `skimage.data.brain()` would be the natural MR choice but needs the optional
`pooch` download, so only bundled images are used. Each clip gets a synthetic target: the
project's lesion shape (sequences.synthetic.tumour) whose intensity is shifted a little from its
surroundings.
"""

from __future__ import annotations

import functools

import cv2
import numpy as np
import skimage.color
import skimage.data

from sequences.synthetic.tumour import random_tumour, tumour_mask
from training.augment import elastic_warp, random_affine, warp_affine

# Bundled with the scikit-image wheel (checked for 0.26); greyscale or converted to grey.
STATIC_IMAGES = (
    "camera",
    "moon",
    "coins",
    "cell",
    "brick",
    "grass",
    "gravel",
    "clock",
    "page",
    "text",
    "shepp_logan_phantom",
    "retina",
    "astronaut",
    "chelsea",
    "coffee",
    "rocket",
    "immunohistochemistry",
    "hubble_deep_field",
)
MAX_SIDE = 512  # larger sources are shrunk: targets are tens of pixels across
RADIUS_PX = (6.0, 30.0)
# Only this window around the lesion is deformed (saves time); it holds any crop box of the
# default margins (2·30 + 2·40 mm at 1 mm/px, plus jitter and the affine's scale).
WINDOW = 320
ELASTIC_PROBABILITY = 0.33  # XMem's static stage


@functools.cache
def static_image(name: str) -> np.ndarray:
    """A bundled image as float32 grey in [0, 1], longest side at most MAX_SIDE."""
    image = getattr(skimage.data, name)()
    if image.ndim == 3:
        image = skimage.color.rgb2gray(image[..., :3])
    image = image.astype(np.float32)
    image = (image - image.min()) / max(float(image.max() - image.min()), 1e-6)
    scale = MAX_SIDE / max(image.shape)
    if scale < 1:
        image = cv2.resize(image, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
    return image


def with_lesion(image: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Paint a synthetic lesion (soft-edged intensity change) at a random place; returns (image, mask)."""
    radius = rng.uniform(*RADIUS_PX)
    border = 2 * radius
    centre = tuple(rng.uniform(border, max(border + 1, s - border)) for s in image.shape)
    mask = tumour_mask(random_tumour(centre, radius, (1.0, 1.0), 0.0, rng), image.shape)
    weight = cv2.GaussianBlur(mask.astype(np.float32), (0, 0), sigmaX=max(radius / 6, 1.0))
    inside = rng.uniform(0.0, 1.0)  # the lesion's own grey level, mixed in with its texture
    mix = rng.uniform(0.2, 0.6)
    painted = image * (1 - mix * weight) + inside * mix * weight
    return painted.astype(np.float32), mask


def static_frames(rng: np.random.Generator, num_frames: int) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """`num_frames` independently deformed copies of one bundled picture with a painted lesion."""
    image, mask = with_lesion(static_image(STATIC_IMAGES[rng.integers(len(STATIC_IMAGES))]), rng)
    return deformed_copies(image, mask, rng, num_frames)


def deformed_copies(
    image: np.ndarray, mask: np.ndarray, rng: np.random.Generator, num_frames: int
) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """`num_frames` independently deformed copies of one image and its target mask (lists).

    Affine: ±20°, scale 0.9–1.1, shear 10° about the target plus a small shift (XMem's static
    stage, centred on the target so it stays inside a target-centred crop); elastic warp p = 0.33.
    """
    rows, cols = np.nonzero(mask)
    starts = [
        int(np.clip(c.mean() - WINDOW / 2, 0, max(size - WINDOW, 0)))
        for c, size in zip((rows, cols), mask.shape, strict=True)
    ]
    window = tuple(slice(start, start + WINDOW) for start in starts)
    image, mask = image[window], mask[window]
    centre = (float(rows.mean()) - starts[0], float(cols.mean()) - starts[1])
    frames, masks = [], []
    for _ in range(num_frames):
        matrix = random_affine(rng, centre, 20.0, (0.9, 1.1), 10.0, max_shift=0.25 * np.sqrt(mask.sum()))
        frame, frame_mask = warp_affine(image, mask, matrix)
        if rng.random() < ELASTIC_PROBABILITY:
            frame, frame_mask = elastic_warp(frame, frame_mask, rng)
        frames.append(frame)
        masks.append(frame_mask)
    return frames, masks
