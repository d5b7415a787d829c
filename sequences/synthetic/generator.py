"""Labelled synthetic cine-MRI sequences: phantom anatomy + tumour, moved by breathing and a
smooth non-rigid field, rendered with a field strength's look.

Everything is drawn from one `numpy.random.Generator`, so a seed fixes a sequence. The ground
truth is the tumour's hard mask warped with the same displacement field as the image.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

import cv2
import numpy as np

from model.trackers import SequenceInfo
from sequences.synthetic.anatomy import Tissue, make_anatomy
from sequences.synthetic.contrast import LOOKS, FieldLook, acquire, coil_shading, gain_drift, tissue_image
from sequences.synthetic.motion import (
    RespiratoryTrace,
    ou_process,
    respiratory_trace,
    smooth_random_fields,
    warp,
)
from sequences.synthetic.tumour import random_tumour, render

REGIONS = ("lung", "thorax", "abdomen")
# Which tissue hosts the tumour, and where the field of view is centred (SI body coordinate,
# mm, see anatomy.py): lung and thorax cases look above the diaphragm, abdomen below it.
_HOSTS = {"lung": Tissue.LUNG, "thorax": Tissue.LUNG, "abdomen": Tissue.LIVER}
_VIEW_SI = {"lung": (-70.0, -30.0), "thorax": (-80.0, -40.0), "abdomen": (20.0, 60.0)}


@dataclass(frozen=True)
class SyntheticSequence:
    frames: np.ndarray  # (W, H, T) float32, numpy axes as SimpleITK returns them
    masks: np.ndarray  # (W, H, T) uint8 0/1 ground truth, never empty
    info: SequenceInfo
    motion_px: np.ndarray  # (T, 2) target displacement from frame 0 along numpy axes 0, 1
    metadata: dict[str, Any] = field(default_factory=dict)  # JSON-able description


@dataclass(frozen=True)
class MotionRanges:
    si_mm: tuple[float, float] = (5.0, 25.0)  # peak-to-peak superior-inferior per cycle
    ap_mm: tuple[float, float] = (1.0, 5.0)  # peak-to-peak anterior-posterior per cycle
    period_s: tuple[float, float] = (3.0, 6.0)
    max_drift_mm_per_min: float = 3.0


@dataclass(frozen=True)
class Difficulty:
    """Acquisition and appearance settings that make a sequence harder to track. The defaults
    are the field looks' own draws, so a dataset made without them is unchanged."""

    snr: tuple[float, float] | None = None  # liver signal / noise sigma; None: the field look's range
    area_swing: tuple[float, float] = (0.05, 0.15)  # through-plane: radius change per inhale, fraction
    contrast_drift: float = 0.0  # tumour intensity changes linearly by this fraction over the sequence
    frame_rates: tuple[float, ...] | None = None  # drawn from; None: the field look's rates


@dataclass(frozen=True)
class FlowFailures:
    """Changes that defeat dense optical flow while the labels stay exact (docs/benchmark.md,
    "Where the flow is wrong"). Each is off by default and draws from its own random stream,
    so switching one on changes only what it names."""

    contrast_reversal: bool = False  # the tumour's contrast to its host goes from +1 to -1 over the sequence
    area_growth: float = 0.0  # through-plane: the cut's radius grows by this fraction over the sequence
    baseline_shift_mm: float = 0.0  # the patient moves by this much (SI) at a third of the sequence
    distractor: bool = False  # a structure like the tumour slides past it over the sequence


def generate_sequence(
    seed: int,
    n_frames: int,
    field_strength: float,
    region: str,
    motion: MotionRanges = MotionRanges(),
    frame_rate: float | None = None,
    shape: tuple[int, int] | None = None,
    difficulty: Difficulty = Difficulty(),
    failures: FlowFailures = FlowFailures(),
) -> SyntheticSequence:
    """One labelled sequence. `frame_rate`/`shape` override the field look's random draw."""
    if region not in REGIONS:
        raise ValueError(f"region must be one of {REGIONS}, got {region!r}")
    look = LOOKS[field_strength]
    rng = np.random.default_rng(seed)
    spacing = float(rng.uniform(*look.spacing_mm))
    spacing_mm = (spacing, spacing)
    if shape is None:
        side = int(round(rng.uniform(*look.fov_mm) / spacing))
        shape = (side, side)
    fps = float(frame_rate if frame_rate is not None else rng.choice(difficulty.frame_rates or look.frame_rates))

    trace = respiratory_trace(
        n_frames, fps, rng, motion.si_mm, motion.ap_mm, motion.period_s, motion.max_drift_mm_per_min
    )
    view = (rng.uniform(*_VIEW_SI[region]), rng.uniform(-15.0, 15.0))
    anatomy = make_anatomy(shape, spacing_mm, view, rng)
    radius_mm = float(rng.uniform(7.5, 25.0))
    centre = _place_tumour(anatomy.labels, _HOSTS[region], radius_mm, spacing_mm, trace, rng)
    base = tissue_image(anatomy.labels, anatomy.texture, look, rng)
    tumour = random_tumour(centre, radius_mm, spacing_mm, _tumour_intensity(region, look, rng), rng)

    # Through-plane motion: the cut through the tumour grows and shrinks with breathing.
    area_swing = rng.uniform(*difficulty.area_swing) * rng.choice([-1.0, 1.0])
    scales = 1.0 + area_swing * (trace.inhale - trace.inhale.mean()) + 0.02 * ou_process(n_frames, fps, 8.0, rng)
    scales = scales * (1.0 + failures.area_growth * np.linspace(0.0, 1.0, n_frames))
    shift_mm, shift_frame = _baseline_shift(failures.baseline_shift_mm, shape, spacing_mm, centre, radius_mm, trace)
    if shift_mm:
        trace = replace(trace, si_mm=trace.si_mm + shift_mm * (np.arange(n_frames) >= shift_frame))
    displacements = _displacement_fields(anatomy.moving, centre, spacing_mm, trace, fps, rng)

    shading = coil_shading(shape, look, rng)
    gains = gain_drift(n_frames, rng)
    liver_signal = look.intensities[Tissue.LIVER]
    noise_sigma = liver_signal / rng.uniform(*(difficulty.snr or look.snr))
    contrast = 1.0 + difficulty.contrast_drift * np.linspace(0.0, 1.0, n_frames)
    # Reversal: the tumour's difference from its host tissue scales from +1 to -1.
    reversal = np.linspace(1.0, -1.0, n_frames)
    # The distractor's own shape, drawn from its own stream; it passes 2.3 radii beside the
    # target's centre, from 4 radii before it to 4 radii after it (numpy axis 0).
    slider = random_tumour(centre, radius_mm, spacing_mm, tumour.intensity, np.random.default_rng([seed, 1]))
    radius_px = radius_mm / spacing_mm[0]
    frames = np.empty((*shape, n_frames), np.float32)
    masks = np.empty((*shape, n_frames), np.uint8)
    for t in range(n_frames):
        cover, hard, (rows, cols) = render(tumour, shape, float(scales[t]))
        reference = base.copy()
        patch = reference[rows, cols]
        texture = anatomy.texture[rows, cols]
        lesion = tumour.intensity * float(contrast[t]) * texture
        if failures.contrast_reversal:
            reference[rows, cols] = patch + (lesion - patch) * cover * float(reversal[t])
        else:
            reference[rows, cols] = patch * (1 - cover) + lesion * cover
        truth = np.zeros(shape, np.float32)
        truth[rows, cols] = hard
        moved = warp(reference, displacements(t))
        if failures.distractor:
            progress = t / max(n_frames - 1, 1)
            position = (
                centre[0] + trace.si_mm[t] / spacing_mm[0] + (8.0 * progress - 4.0) * radius_px,
                centre[1] + trace.ap_mm[t] / spacing_mm[1] + 2.3 * radius_px,
            )
            other, _, (other_rows, other_cols) = render(replace(slider, centre_px=position), shape, 1.0)
            lookalike = slider.intensity * anatomy.texture[other_rows, other_cols]
            moved[other_rows, other_cols] += (lookalike - moved[other_rows, other_cols]) * other
        masks[:, :, t] = warp(truth, displacements(t)) > 0.5
        frames[:, :, t] = acquire(moved * shading * gains[t], look, noise_sigma, rng)
        if not masks[:, :, t].any():
            raise RuntimeError(f"seed {seed}: empty ground truth at frame {t}")

    motion_px = np.stack([trace.si_mm / spacing_mm[0], trace.ap_mm / spacing_mm[1]], axis=1)
    info = SequenceInfo(
        frame_shape=shape,
        n_frames=n_frames,
        pixel_spacing_mm=spacing_mm,
        frame_rate=fps,
        field_strength=field_strength,
        scanned_region=region,
    )
    metadata = {
        "seed": seed,
        "field_strength": field_strength,
        "region": region,
        "frame_rate": fps,
        "n_frames": n_frames,
        "shape": list(shape),
        "pixel_spacing_mm": list(spacing_mm),
        "tumour_radius_mm": radius_mm,
        "snr": liver_signal / noise_sigma,
        "cycle_si_amplitudes_mm": trace.cycle_si_amplitudes_mm.round(2).tolist(),
        "cycle_ap_amplitudes_mm": trace.cycle_ap_amplitudes_mm.round(2).tolist(),
        "si_range_mm": float(np.ptp(trace.si_mm)),
        "ap_range_mm": float(np.ptp(trace.ap_mm)),
        "drift_mm": float(trace.drift_si_mm[-1]),
        "area_ratio_range": [float(scales.min() ** 2), float(scales.max() ** 2)],
        "contrast_drift": difficulty.contrast_drift,
        "flow_failures": {
            "contrast_reversal": failures.contrast_reversal,
            "area_growth": failures.area_growth,
            "baseline_shift_mm": shift_mm,
            "baseline_shift_frame": shift_frame,
            "distractor": failures.distractor,
        },
    }
    return SyntheticSequence(frames, masks, info, motion_px, metadata)


def _baseline_shift(
    requested_mm: float,
    shape: tuple[int, int],
    spacing_mm: tuple[float, float],
    centre: tuple[float, float],
    radius_mm: float,
    trace: RespiratoryTrace,
) -> tuple[float, int]:
    """(signed SI shift in mm, the frame it happens at) for a requested baseline shift: towards
    the side with more room, no farther than keeps the whole tumour in the frame."""
    shift_frame = len(trace.si_mm) // 3
    if not requested_mm:
        return 0.0, shift_frame
    reach = 1.5 * radius_mm + 3.0 * spacing_mm[0]
    top = centre[0] * spacing_mm[0] + trace.si_mm.min() - reach
    bottom = (shape[0] - centre[0]) * spacing_mm[0] - trace.si_mm.max() - reach
    room, sign = (bottom, 1.0) if bottom >= top else (top, -1.0)
    return sign * float(min(abs(requested_mm), max(room, 0.0))), shift_frame


def _place_tumour(
    labels: np.ndarray,
    host: Tissue,
    radius_mm: float,
    spacing_mm: tuple[float, float],
    trace: RespiratoryTrace,
    rng: np.random.Generator,
) -> tuple[float, float]:
    """A centre inside the host tissue from which the moving tumour never leaves the frame."""
    reach = radius_mm * 1.5
    lo0 = reach + max(0.0, -trace.si_mm.min()) + 3.0
    hi0 = reach + max(0.0, trace.si_mm.max()) + 3.0
    lo1 = reach + max(0.0, -trace.ap_mm.min()) + 3.0
    hi1 = reach + max(0.0, trace.ap_mm.max()) + 3.0
    rows = np.arange(labels.shape[0])[:, None] * spacing_mm[0]
    cols = np.arange(labels.shape[1])[None, :] * spacing_mm[1]
    fits = (
        (rows >= lo0)
        & (rows <= labels.shape[0] * spacing_mm[0] - hi0)
        & (cols >= lo1)
        & (cols <= labels.shape[1] * spacing_mm[1] - hi1)
    )
    if not fits.any():
        raise ValueError("frame too small for this tumour and motion; use a larger shape")
    # Prefer centres deep enough in the host that most of the tumour lies inside it.
    depth_mm = cv2.distanceTransform((labels == host).astype(np.uint8), cv2.DIST_L2, 5) * min(spacing_mm)
    for need in (0.8 * radius_mm, 0.3 * radius_mm, 0.0):
        candidates = np.argwhere(fits & (depth_mm > need))
        if len(candidates):
            break
    else:
        candidates = np.argwhere(fits)
    row, col = candidates[rng.integers(len(candidates))]
    return float(row), float(col)


def _tumour_intensity(region: str, look: FieldLook, rng: np.random.Generator) -> float:
    """Soft tissue in lung (high contrast); hypo- or hyper-intense by 15-40 % in liver."""
    if region in ("lung", "thorax"):
        return float(rng.uniform(0.25, 0.45))
    liver = look.intensities[Tissue.LIVER]
    return float(liver * (1 + rng.choice([-1.0, 1.0]) * rng.uniform(0.15, 0.4)))


def _displacement_fields(
    moving: np.ndarray,
    centre: tuple[float, float],
    spacing_mm: tuple[float, float],
    trace: RespiratoryTrace,
    fps: float,
    rng: np.random.Generator,
) -> Callable[[int], np.ndarray]:
    """A function t -> (2, H, W) pixel displacement: breathing scaled by how much each pixel
    moves, plus smooth non-rigid fields, arranged so that the tumour centre moves exactly by
    the breathing trace."""
    r, c = int(round(centre[0])), int(round(centre[1]))
    weight = np.clip(moving / max(float(moving[r, c]), 0.5), 0.0, 1.5)
    sigma_px = 40.0 / min(spacing_mm)
    fields = smooth_random_fields(moving.shape, 3, sigma_px, rng)
    fields -= fields[:, :, r : r + 1, c : c + 1]  # zero at the tumour centre
    fields *= weight
    n = len(trace.si_mm)
    coefficients_mm = np.stack(
        [
            rng.uniform(1.0, 3.0) * trace.inhale,  # breathing-correlated deformation
            rng.uniform(0.5, 1.5) * ou_process(n, fps, 10.0, rng),  # slow organ wander
            rng.uniform(0.5, 1.5) * ou_process(n, fps, 20.0, rng),
        ],
        axis=1,
    )
    to_px = np.array([1 / spacing_mm[0], 1 / spacing_mm[1]], np.float32)[:, None, None]

    def at(t: int) -> np.ndarray:
        rigid = np.array([trace.si_mm[t], trace.ap_mm[t]], np.float32)[:, None, None] * weight
        nonrigid = np.tensordot(coefficients_mm[t].astype(np.float32), fields, axes=1)
        return ((rigid + nonrigid) * to_px).astype(np.float32)

    return at
