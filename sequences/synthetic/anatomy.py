"""A textured sagittal torso phantom: body wall, fat, spine, aorta, lungs, heart, diaphragm,
liver, kidney and bowel, as a tissue label map plus a multiplicative texture.

No real MR image ships offline inside an installed package (scikit-image's `brain()` needs an
optional download), so the anatomy is a phantom with organ boundaries where an MR-linac cine
has them. Geometry is built in millimetres ("body coordinates": u = SI, inferior positive,
u = 0 at the diaphragm dome; v = AP, posterior positive, v = 0 mid-body) and sampled on the
frame's pixel grid, so it is independent of the pixel spacing.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum

import cv2
import numpy as np


class Tissue(IntEnum):
    AIR = 0
    FAT = 1
    MUSCLE = 2
    BONE = 3  # vertebral body (fatty marrow)
    DISC = 4
    CSF = 5
    BLOOD = 6  # aorta and heart chambers
    MYOCARDIUM = 7
    LUNG = 8
    LIVER = 9
    KIDNEY_CORTEX = 10
    KIDNEY_MEDULLA = 11
    BOWEL = 12
    VESSEL = 13  # bright in-organ vessels


@dataclass(frozen=True)
class Anatomy:
    labels: np.ndarray  # (H, W) uint8 Tissue values
    texture: np.ndarray  # (H, W) float32 multiplicative texture around 1
    moving: np.ndarray  # (H, W) float32 in [0, 1]: how much breathing moves each pixel


def tissue_grid(
    shape: tuple[int, int], spacing_mm: tuple[float, float], centre_mm: tuple[float, float]
) -> tuple[np.ndarray, np.ndarray]:
    """Body coordinates (u rows, v columns) of a frame centred at `centre_mm` (u, v)."""
    u = (np.arange(shape[0]) - (shape[0] - 1) / 2) * spacing_mm[0] + centre_mm[0]
    v = (np.arange(shape[1]) - (shape[1] - 1) / 2) * spacing_mm[1] + centre_mm[1]
    return u[:, None].astype(np.float32), v[None, :].astype(np.float32)


def make_anatomy(
    shape: tuple[int, int],
    spacing_mm: tuple[float, float],
    centre_mm: tuple[float, float],
    rng: np.random.Generator,
) -> Anatomy:
    """Draw one patient's torso (random sizes and positions) and sample it on the frame grid."""
    u_axis, v_axis = tissue_grid(shape, spacing_mm, centre_mm)
    u, v = (np.ascontiguousarray(a) for a in np.broadcast_arrays(u_axis, v_axis))
    labels = np.full(shape, Tissue.AIR, np.uint8)

    anterior = -rng.uniform(105, 135) - 0.00025 * (u - 80) ** 2 * rng.uniform(0.5, 1.5)
    posterior = rng.uniform(110, 130)
    fat_a, fat_p = rng.uniform(10, 25), rng.uniform(8, 16)
    wall = rng.uniform(8, 14)
    body = (v > anterior) & (v < posterior)
    labels[body] = Tissue.FAT
    inner_a, inner_p = anterior + fat_a, posterior - fat_p
    labels[(v > inner_a) & (v < inner_p)] = Tissue.MUSCLE

    # Spine: vertebral bodies stacked along SI with bright discs, spinal canal behind them.
    spine_front = posterior - rng.uniform(75, 90) + 0.0006 * (u - 60) ** 2
    vert_period, disc = rng.uniform(27, 33), rng.uniform(5, 8)
    in_disc = np.mod(u + rng.uniform(0, vert_period), vert_period) < disc
    column = (v > spine_front) & (v < spine_front + rng.uniform(30, 38))
    labels[column] = Tissue.BONE
    labels[column & in_disc] = Tissue.DISC
    canal_front = spine_front + 40
    labels[(v > canal_front) & (v < canal_front + 14)] = Tissue.CSF

    # Cavity: inside the body wall, in front of the spine; the diaphragm splits it.
    cavity_front = inner_a + wall
    cavity = (v > cavity_front) & (v < spine_front - 2)
    dome_v = rng.uniform(-40, 0)
    diaphragm = rng.uniform(0.0035, 0.006) * (v - dome_v) ** 2
    thorax = cavity & (u < diaphragm)
    abdomen = cavity & (u >= diaphragm)
    labels[thorax] = Tissue.LUNG
    labels[abdomen] = Tissue.LIVER

    # Heart: anterior, resting on the diaphragm; a bright blood pool inside the myocardium.
    hu, hv = -rng.uniform(45, 65), float(cavity_front.mean() + rng.uniform(45, 60))
    ru, rv = rng.uniform(45, 60), rng.uniform(38, 50)
    heart = ((u - hu) / ru) ** 2 + ((v - hv) / rv) ** 2
    labels[thorax & (heart < 1.0)] = Tissue.MYOCARDIUM
    labels[thorax & (heart < 0.55)] = Tissue.BLOOD

    # Aorta: a bright tube just in front of the spine, through both cavities.
    aorta = (v > spine_front - 26) & (v < spine_front - 4)
    labels[aorta & (thorax | abdomen)] = Tissue.BLOOD

    # Below the liver: bowel anteriorly, kidney posteriorly.
    liver_edge = rng.uniform(110, 150) + 0.25 * (v + 40)
    lower = abdomen & ~aorta & (u > liver_edge)
    labels[lower] = Tissue.BOWEL
    ku, kv = rng.uniform(95, 125), float(np.mean(spine_front) - rng.uniform(35, 45))
    kidney = ((u - ku) / rng.uniform(45, 55)) ** 2 + ((v - kv) / rng.uniform(20, 26)) ** 2
    labels[abdomen & (kidney < 1.0)] = Tissue.KIDNEY_CORTEX
    labels[abdomen & (kidney < 0.45)] = Tissue.KIDNEY_MEDULLA

    _add_vessels(labels, u, v, spacing_mm, rng, host=Tissue.LIVER, count=15, radius=(1.5, 4.0))
    _add_vessels(labels, u, v, spacing_mm, rng, host=Tissue.LUNG, count=30, radius=(0.8, 2.0))
    _add_vessels(labels, u, v, spacing_mm, rng, host=Tissue.BOWEL, count=30, radius=(3.0, 9.0))

    moving = (thorax | abdomen).astype(np.float32)
    # Breathing moves the organs, not the body wall or spine; a soft edge makes the field smooth.
    moving = cv2.GaussianBlur(moving, (0, 0), 8.0 / min(spacing_mm))
    return Anatomy(labels, _texture(shape, spacing_mm, rng), moving)


def _add_vessels(
    labels: np.ndarray,
    u: np.ndarray,
    v: np.ndarray,
    spacing_mm: tuple[float, float],
    rng: np.random.Generator,
    host: Tissue,
    count: int,
    radius: tuple[float, float],
) -> None:
    """Small bright (elongated) cross-sections scattered inside the host tissue."""
    inside = np.argwhere(labels == host)
    if len(inside) == 0:
        return
    for row, col in inside[rng.integers(0, len(inside), count)]:
        r = rng.uniform(*radius)
        stretch = rng.uniform(1.5, 5.0)
        angle = rng.uniform(0, np.pi)
        du, dv = u - u[row, col], v - v[row, col]
        a = du * np.cos(angle) + dv * np.sin(angle)
        b = -du * np.sin(angle) + dv * np.cos(angle)
        blob = (a / (r * stretch)) ** 2 + (b / r) ** 2 < 1.0
        labels[blob & (labels == host)] = Tissue.VESSEL


def _texture(shape: tuple[int, int], spacing_mm: tuple[float, float], rng: np.random.Generator) -> np.ndarray:
    """Multi-scale (fine parenchyma + coarse inhomogeneity) texture, mean 1."""
    texture = np.ones(shape, np.float32)
    for sigma_mm, strength in ((1.0, 0.06), (4.0, 0.06), (15.0, 0.05)):
        noise = rng.standard_normal(shape).astype(np.float32)
        noise = cv2.GaussianBlur(noise, (0, 0), sigma_mm / min(spacing_mm))
        texture += strength * noise / max(float(noise.std()), 1e-6)
    return texture
