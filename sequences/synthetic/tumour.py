"""The one lesion shape of the project: an irregular tumour with partial contrast, drawn into a
frame at a given through-plane scale. The phantom, translation, static-image and real-texture
generators all draw their targets with it."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class TumourShape:
    centre_px: tuple[float, float]  # reference position (numpy axes 0, 1) in the undeformed frame
    radius_mm: float  # mean radius at scale 1
    spacing_mm: tuple[float, float]
    aspect: float  # minor/major axis ratio of the underlying ellipse
    angle: float  # orientation of the major axis, radians
    harmonics: tuple[tuple[float, float], ...]  # (relative amplitude, phase) of cos(k*theta), k = 2, 3, ...
    intensity: float  # mean signal of the tumour tissue
    fade_direction: tuple[float, float]  # unit vector (axes 0, 1): the side where contrast fades
    fade: float  # 0 = full contrast everywhere, 1 = invisible on the fade side


def random_tumour(
    centre_px: tuple[float, float],
    radius_mm: float,
    spacing_mm: tuple[float, float],
    intensity: float,
    rng: np.random.Generator,
) -> TumourShape:
    """A lobulated, slightly elongated tumour whose boundary fades on one random side."""
    fade_angle = rng.uniform(0, 2 * np.pi)
    return TumourShape(
        centre_px=centre_px,
        radius_mm=radius_mm,
        spacing_mm=spacing_mm,
        aspect=float(rng.uniform(0.7, 1.0)),
        angle=float(rng.uniform(0, np.pi)),
        harmonics=tuple((float(rng.uniform(0, 0.12) / k), float(rng.uniform(0, 2 * np.pi))) for k in (2, 3, 4)),
        intensity=intensity,
        fade_direction=(float(np.cos(fade_angle)), float(np.sin(fade_angle))),
        fade=float(rng.uniform(0.3, 0.8)),
    )


def round_tumour(centre_px: tuple[float, float], radius_px: float) -> TumourShape:
    """A plain disc of `radius_px` (the same shape with no lobes, stretch or fade), in pixel units."""
    return TumourShape(
        centre_px=centre_px,
        radius_mm=radius_px,
        spacing_mm=(1.0, 1.0),
        aspect=1.0,
        angle=0.0,
        harmonics=(),
        intensity=0.0,
        fade_direction=(1.0, 0.0),
        fade=0.0,
    )


def extent_px(tumour: TumourShape, scale: float) -> int:
    """Half-size of a square patch that always holds the tumour at this scale."""
    reach = tumour.radius_mm * scale * (1 + sum(a for a, _ in tumour.harmonics)) / tumour.aspect**0.5
    return int(np.ceil(reach / min(tumour.spacing_mm))) + 3


def render(
    tumour: TumourShape, shape: tuple[int, int], scale: float
) -> tuple[np.ndarray, np.ndarray, tuple[slice, slice]]:
    """(soft cover in [0, 1], hard mask, patch slices) of the tumour at a through-plane scale.

    The soft cover has a one-pixel partial-volume edge and is already multiplied by the
    contrast fade, so an image is `base * (1 - cover) + intensity * cover`; the hard mask is
    the ground truth (boundary where the radius function is crossed).
    """
    half = extent_px(tumour, scale)
    r0, c0 = (int(round(c)) for c in tumour.centre_px)
    rows = slice(max(r0 - half, 0), min(r0 + half + 1, shape[0]))
    cols = slice(max(c0 - half, 0), min(c0 + half + 1, shape[1]))
    grid_r, grid_c = np.mgrid[rows, cols].astype(np.float32)
    d0 = (grid_r - tumour.centre_px[0]) * tumour.spacing_mm[0]
    d1 = (grid_c - tumour.centre_px[1]) * tumour.spacing_mm[1]
    # Shape frame: rotate, then stretch the minor axis so the ellipse becomes a circle.
    along = d0 * np.cos(tumour.angle) + d1 * np.sin(tumour.angle)
    across = (-d0 * np.sin(tumour.angle) + d1 * np.cos(tumour.angle)) / tumour.aspect
    rho = np.hypot(along, across) / scale
    theta = np.arctan2(across, along)
    boundary = np.full_like(rho, tumour.radius_mm)
    for k, (amplitude, phase) in enumerate(tumour.harmonics, start=2):
        boundary *= 1 + amplitude * np.cos(k * theta + phase)
    edge_mm = min(tumour.spacing_mm) * scale
    soft = np.clip((boundary - rho) / edge_mm + 0.5, 0.0, 1.0)
    hard = rho <= boundary
    # Contrast fades linearly across the tumour towards the fade side.
    toward = (d0 * tumour.fade_direction[0] + d1 * tumour.fade_direction[1]) / (tumour.radius_mm * scale)
    visibility = 1.0 - tumour.fade * np.clip(0.5 + 0.5 * toward, 0.0, 1.0)
    return soft * visibility, hard, (rows, cols)


def tumour_mask(tumour: TumourShape, shape: tuple[int, int], scale: float = 1.0) -> np.ndarray:
    """The tumour's hard mask (the ground truth) on a whole frame of `shape`, as bool."""
    _, hard, (rows, cols) = render(tumour, shape, scale)
    mask = np.zeros(shape, bool)
    mask[rows, cols] = hard
    return mask
