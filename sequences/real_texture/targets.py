"""The target on a real slice: a real structure found in the picture, or a painted lesion.

A painted lesion is the project's one lesion shape (sequences.synthetic.tumour) whose signal is
the slice's own signal scaled by 1 + contrast, so it keeps the texture around it; weak contrast
(10-25 %) is hard to see, strong (40-80 %) is plain. A real structure is a region of similar
grey level grown from a seed inside the tissue (ventricle, vessel, organ part), kept only when
its size and compactness look like a tumour's.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
import skimage.segmentation

from sequences.real_texture.sources import tissue_mask
from sequences.synthetic.tumour import random_tumour, render

CONTRASTS = {"weak": (0.1, 0.25), "strong": (0.4, 0.8)}
STRUCTURE_TRIES = 30


@dataclass(frozen=True)
class Target:
    kind: str  # "painted" or "structure"
    mask: np.ndarray  # bool ground truth on the slice
    cover: np.ndarray  # float32 soft extent in [0, 1]: where contrast is applied
    contrast: float  # relative signal change painted in (0 for a real structure)
    centre: tuple[float, float]  # centroid, numpy axes 0, 1
    radius_px: float  # radius of a disc of the same area


def lesion_contrast(strength: str, rng: np.random.Generator) -> float:
    """A signed relative contrast of the named strength: darker or brighter than the tissue."""
    return float(rng.choice([-1.0, 1.0]) * rng.uniform(*CONTRASTS[strength]))


def place_target(
    image: np.ndarray,
    radius_px: float,
    allowed: np.ndarray,
    contrast: float,
    structure_probability: float,
    rng: np.random.Generator,
) -> Target:
    """A target centred where `allowed` is true and inside the tissue: with probability
    `structure_probability` a real structure (a painted lesion when none is found)."""
    candidates = np.argwhere(allowed & tissue_mask(image))
    if not len(candidates):
        candidates = np.argwhere(allowed)
    if not len(candidates):
        raise ValueError("no room for the target: the slice is too small for this target and motion")
    if rng.random() < structure_probability:
        structure = find_structure(image, candidates, radius_px, rng)
        if structure is not None:
            return structure
    centre = tuple(float(v) for v in candidates[rng.integers(len(candidates))])
    tumour = random_tumour(centre, radius_px, (1.0, 1.0), 0.0, rng)
    cover_patch, hard, (rows, cols) = render(tumour, image.shape, 1.0)
    mask = np.zeros(image.shape, bool)
    cover = np.zeros(image.shape, np.float32)
    mask[rows, cols] = hard
    cover[rows, cols] = cover_patch
    return _target("painted", mask, cover, contrast)


def find_structure(image: np.ndarray, seeds: np.ndarray, radius_px: float, rng: np.random.Generator) -> Target | None:
    """A compact region of similar grey level around one of `seeds`, of area between a disc of
    0.5 and 1.5 times `radius_px`, or None after STRUCTURE_TRIES seeds."""
    smooth = cv2.GaussianBlur(image, (0, 0), 1.0)
    low, high = np.pi * (0.5 * radius_px) ** 2, np.pi * (1.5 * radius_px) ** 2
    reach = int(np.ceil(2.5 * radius_px))
    for _ in range(STRUCTURE_TRIES):
        r, c = (int(v) for v in seeds[rng.integers(len(seeds))])
        rows = slice(max(r - reach, 0), min(r + reach + 1, image.shape[0]))
        cols = slice(max(c - reach, 0), min(c + reach + 1, image.shape[1]))
        window = smooth[rows, cols]
        seed = (r - rows.start, c - cols.start)
        region = skimage.segmentation.flood(window, seed, tolerance=float(rng.uniform(0.05, 0.12)))
        region = cv2.morphologyEx(region.astype(np.uint8), cv2.MORPH_OPEN, np.ones((3, 3), np.uint8)) > 0
        if not region[seed]:
            continue
        _, components = cv2.connectedComponents(region.astype(np.uint8))
        region = components == components[seed]
        area = int(region.sum())
        edge = np.concatenate([region[0], region[-1], region[:, 0], region[:, -1]])
        if not low <= area <= high or edge.any():  # too small, too large, or leaking out of the window
            continue
        contour_length = cv2.arcLength(
            max(cv2.findContours(region.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)[0], key=len), True
        )
        if 4 * np.pi * area / max(contour_length, 1.0) ** 2 < 0.5:  # thin or branching: not tumour-like
            continue
        mask = np.zeros(image.shape, bool)
        mask[rows, cols] = region
        cover = cv2.GaussianBlur(mask.astype(np.float32), (0, 0), 1.0)
        return _target("structure", mask, cover, 0.0)
    return None


def paint(image: np.ndarray, cover: np.ndarray, contrast: float) -> np.ndarray:
    """The slice with `contrast` applied where `cover` is: signal x (1 + contrast x cover)."""
    return (image * (1.0 + contrast * cover)).astype(np.float32)


def _target(kind: str, mask: np.ndarray, cover: np.ndarray, contrast: float) -> Target:
    rows, cols = np.nonzero(mask)
    return Target(
        kind=kind,
        mask=mask,
        cover=cover.astype(np.float32),
        contrast=contrast,
        centre=(float(rows.mean()), float(cols.mean())),
        radius_px=float(np.sqrt(len(rows) / np.pi)),
    )
