"""Respiratory motion traces and smooth deformation fields for synthetic cine-MRI.

Axis convention of the whole synthetic package: numpy axis 0 of a frame is superior-inferior
(SI, index grows inferiorly), numpy axis 1 is anterior-posterior (AP, index grows
posteriorly). Displacements are in millimetres unless a name says `_px`.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np


@dataclass(frozen=True)
class RespiratoryTrace:
    """Target motion sampled at the frame times (mm, relative to frame 0's breathing state)."""

    si_mm: np.ndarray  # (T,) breathing + baseline drift, positive = inferior (inhale)
    ap_mm: np.ndarray  # (T,) breathing, positive = posterior
    breathing_si_mm: np.ndarray  # (T,) SI breathing component only (no drift)
    drift_si_mm: np.ndarray  # (T,) SI baseline drift only
    inhale: np.ndarray  # (T,) breathing state in [0, 1], 0 = end-exhale, 1 = that cycle's peak
    cycle_si_amplitudes_mm: np.ndarray  # peak-to-peak SI amplitude of every cycle drawn
    cycle_ap_amplitudes_mm: np.ndarray  # peak-to-peak AP amplitude of every cycle drawn


def respiratory_trace(
    n_frames: int,
    fps: float,
    rng: np.random.Generator,
    si_range_mm: tuple[float, float] = (5.0, 25.0),
    ap_range_mm: tuple[float, float] = (1.0, 5.0),
    period_range_s: tuple[float, float] = (3.0, 6.0),
    max_drift_mm_per_min: float = 3.0,
) -> RespiratoryTrace:
    """An irregular breathing trace (Lujan cos^2n model) with per-cycle period and amplitude.

    Each cycle draws its own period and amplitude around the case's nominal values; every
    cycle's peak-to-peak amplitude stays inside the requested range. AP motion follows SI with
    a phase lag (hysteresis). Baseline drift is linear with a slow wobble.
    """
    duration = n_frames / fps
    nominal_si = rng.uniform(*si_range_mm)
    nominal_ap = rng.uniform(*ap_range_mm)
    nominal_period = rng.uniform(*period_range_s)
    periods, si_amps, ap_amps = [], [], []
    total = 0.0
    while total < duration + nominal_period:
        period = float(np.clip(nominal_period * rng.normal(1.0, 0.12), *period_range_s))
        periods.append(period)
        si_amps.append(float(np.clip(nominal_si * rng.normal(1.0, 0.15), *si_range_mm)))
        ap_amps.append(float(np.clip(nominal_ap * rng.normal(1.0, 0.15), *ap_range_mm)))
        total += period
    starts = np.concatenate([[0.0], np.cumsum(periods)[:-1]])
    # Start somewhere in the first cycle, so frame 0 is not always end-exhale.
    times = np.arange(n_frames) / fps + rng.uniform(0.0, periods[0])
    cycle = np.searchsorted(starts, times, side="right") - 1
    phase = (times - starts[cycle]) / np.asarray(periods)[cycle]
    power = 2 * int(rng.integers(1, 4))  # 2n in Lujan's model: larger = longer exhale rest
    lag = rng.uniform(0.03, 0.12)  # AP lags SI by this fraction of a cycle
    inhale = 1.0 - np.cos(np.pi * phase) ** power
    inhale_ap = 1.0 - np.cos(np.pi * (phase - lag)) ** power
    breathing_si = np.asarray(si_amps)[cycle] * inhale
    ap_sign = rng.choice([-1.0, 1.0])
    breathing_ap = ap_sign * np.asarray(ap_amps)[cycle] * inhale_ap
    rate = rng.uniform(-max_drift_mm_per_min, max_drift_mm_per_min) / 60.0
    wobble = 0.5 * np.sin(2 * np.pi * times / rng.uniform(40.0, 120.0) + rng.uniform(0, 2 * np.pi))
    drift = rate * (times - times[0]) + wobble - wobble[0]
    return RespiratoryTrace(
        si_mm=breathing_si - breathing_si[0] + drift,
        ap_mm=breathing_ap - breathing_ap[0],
        breathing_si_mm=breathing_si - breathing_si[0],
        drift_si_mm=drift,
        inhale=inhale,
        cycle_si_amplitudes_mm=np.asarray(si_amps),
        cycle_ap_amplitudes_mm=np.asarray(ap_amps),
    )


def through_plane_scales(trace: RespiratoryTrace, fps: float, rng: np.random.Generator) -> np.ndarray:
    """(T,) linear scale of the target's cut per frame: the cut through a moving tumour grows
    and shrinks with breathing (5-15 % of its size, either sign) plus a slow 2 % wander."""
    area_swing = rng.uniform(0.05, 0.15) * rng.choice([-1.0, 1.0])
    return 1.0 + area_swing * (trace.inhale - trace.inhale.mean()) + 0.02 * ou_process(len(trace.inhale), fps, 8.0, rng)


def smooth_random_fields(
    shape: tuple[int, int], n_fields: int, sigma_px: float, rng: np.random.Generator
) -> np.ndarray:
    """(n_fields, 2, *shape) smooth vector fields, each scaled to a maximum magnitude of 1."""
    # Smoothing a coarse noise grid and upsampling is much faster than a wide blur at full size.
    step = max(1, int(sigma_px // 2))
    coarse = (max(2, shape[0] // step + 2), max(2, shape[1] // step + 2))
    fields = np.empty((n_fields, 2, *shape), np.float32)
    for k in range(n_fields):
        for axis in range(2):
            noise = rng.standard_normal(coarse).astype(np.float32)
            noise = cv2.GaussianBlur(noise, (0, 0), sigma_px / step, borderType=cv2.BORDER_REFLECT)
            fields[k, axis] = cv2.resize(noise, (shape[1], shape[0]), interpolation=cv2.INTER_CUBIC)
        fields[k] /= max(float(np.sqrt((fields[k] ** 2).sum(0)).max()), 1e-6)
    return fields


def ou_process(n_frames: int, fps: float, tau_s: float, rng: np.random.Generator) -> np.ndarray:
    """A unit-variance Ornstein-Uhlenbeck process sampled at the frame times (slow wander)."""
    keep = np.exp(-1.0 / (fps * tau_s))
    values = np.empty(n_frames)
    values[0] = rng.standard_normal()
    kicks = rng.standard_normal(n_frames) * np.sqrt(1.0 - keep**2)
    for t in range(1, n_frames):
        values[t] = keep * values[t - 1] + kicks[t]
    return values


def warp(image: np.ndarray, displacement_px: np.ndarray, order: int = cv2.INTER_LINEAR) -> np.ndarray:
    """Move content by `displacement_px` (2, H, W): out(x) = image(x - d(x)).

    A backward approximation of forward motion, accurate for smooth fields; image and mask
    are warped with the same field so the ground truth follows the anatomy.
    """
    rows, cols = np.indices(image.shape, dtype=np.float32)
    return cv2.remap(
        image,
        cols - displacement_px[1],
        rows - displacement_px[0],
        order,
        borderMode=cv2.BORDER_REFLECT,
    )
