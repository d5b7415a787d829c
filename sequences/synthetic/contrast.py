"""How a scanner renders the phantom: field-strength looks, coil shading, intensity drift
between frames and Rician noise.

Both MR-linacs image cine with balanced steady-state free precession (bSSFP: TrueFISP on the
0.35 T ViewRay MRIdian, bTFE on the 1.5 T Elekta Unity), whose T2/T1 weighting makes fluid,
blood and fat bright, liver and muscle grey, and lung nearly black. The 0.35 T look has
coarser pixels, more blur and lower SNR; the 1.5 T look is sharper, with stronger coil
shading.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from sequences.synthetic.anatomy import Tissue


@dataclass(frozen=True)
class FieldLook:
    """Acquisition properties of one field strength (ranges are drawn per case)."""

    field_strength: float
    spacing_mm: tuple[float, float]  # range of the (isotropic) in-plane pixel spacing
    fov_mm: tuple[float, float]  # range of the square field of view
    frame_rates: tuple[float, ...]  # frame rates drawn from
    snr: tuple[float, float]  # range of liver-signal / noise-sigma
    blur_px: float  # point-spread blur (Gaussian sigma, pixels)
    shading: float  # peak relative amplitude of the coil sensitivity variation
    intensities: dict[Tissue, float]  # mean signal per tissue (arbitrary units, max ~1)


_BSSFP = {
    Tissue.AIR: 0.0,
    Tissue.FAT: 0.85,
    Tissue.MUSCLE: 0.22,
    Tissue.BONE: 0.50,
    Tissue.DISC: 0.60,
    Tissue.CSF: 0.90,
    Tissue.BLOOD: 0.80,
    Tissue.MYOCARDIUM: 0.28,
    Tissue.LUNG: 0.04,
    Tissue.LIVER: 0.32,
    Tissue.KIDNEY_CORTEX: 0.50,
    Tissue.KIDNEY_MEDULLA: 0.38,
    Tissue.BOWEL: 0.55,
    Tissue.VESSEL: 0.75,
}

LOOKS: dict[float, FieldLook] = {
    0.35: FieldLook(
        field_strength=0.35,
        spacing_mm=(2.0, 2.5),
        fov_mm=(270.0, 350.0),
        frame_rates=(4.0, 8.0),
        snr=(8.0, 15.0),
        blur_px=0.8,
        shading=0.15,
        intensities=_BSSFP,
    ),
    1.5: FieldLook(
        field_strength=1.5,
        spacing_mm=(1.0, 1.6),
        fov_mm=(250.0, 330.0),
        frame_rates=(1.0, 2.0, 2.5, 3.0, 4.0, 5.0),
        snr=(20.0, 40.0),
        blur_px=0.5,
        shading=0.3,
        intensities={**_BSSFP, Tissue.LIVER: 0.28, Tissue.MUSCLE: 0.2, Tissue.FAT: 0.9},
    ),
}


def tissue_image(labels: np.ndarray, texture: np.ndarray, look: FieldLook, rng: np.random.Generator) -> np.ndarray:
    """Noise-free image of a label map: per-case jittered tissue means times the texture."""
    lut = np.zeros(max(Tissue) + 1, np.float32)
    for tissue, value in look.intensities.items():
        lut[tissue] = value * rng.uniform(0.9, 1.1)
    return lut[labels] * texture


def coil_shading(shape: tuple[int, int], look: FieldLook, rng: np.random.Generator) -> np.ndarray:
    """A smooth multiplicative receive-coil sensitivity map around 1 (brighter near one side)."""
    rows, cols = np.indices(shape, dtype=np.float32)
    angle = rng.uniform(0, 2 * np.pi)
    ramp = (np.cos(angle) * rows / shape[0] + np.sin(angle) * cols / shape[1]) - 0.5
    bump_r, bump_c = rng.uniform(0.2, 0.8) * shape[0], rng.uniform(0.2, 0.8) * shape[1]
    bump = np.exp(-(((rows - bump_r) / shape[0]) ** 2 + ((cols - bump_c) / shape[1]) ** 2) / 0.15)
    shading = 1.0 + look.shading * (ramp + bump - 0.5)
    return np.clip(shading, 0.5, 1.5).astype(np.float32)


def gain_drift(n_frames: int, rng: np.random.Generator, slow: float = 0.04, jitter: float = 0.01) -> np.ndarray:
    """Per-frame global gain: a slow random walk (receiver drift) plus frame-to-frame jitter."""
    walk = np.cumsum(rng.standard_normal(n_frames)) / np.sqrt(max(n_frames, 1))
    gain = 1.0 + slow * walk + jitter * rng.standard_normal(n_frames)
    return (gain / gain[0]).astype(np.float32)


def acquire(image: np.ndarray, look: FieldLook, noise_sigma: float, rng: np.random.Generator) -> np.ndarray:
    """Point-spread blur then Rician noise: |image + n_re + i n_im|, n ~ N(0, sigma^2)."""
    blurred = cv2.GaussianBlur(image, (0, 0), look.blur_px)
    real = blurred + rng.normal(0.0, noise_sigma, image.shape).astype(np.float32)
    imag = rng.normal(0.0, noise_sigma, image.shape).astype(np.float32)
    return np.sqrt(real * real + imag * imag)
