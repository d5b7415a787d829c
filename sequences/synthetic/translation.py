"""Sequences whose whole content moves by known pure translations, for exact tracker tests.

    make_translation_sequence(shifts_px=None, shape=(96, 96), n_frames=12, seed=0,
                              radius_px=9.0, spacing_mm=(1.5, 1.5), noise=0.01,
                              frame_rate=4.0) -> SyntheticSequence
    write_translation_case(case_dir, case_id="T_001", **same keyword arguments) -> SyntheticSequence
    random_shifts(n_frames, rng, max_step_px=4.0, max_offset_px=40.0) -> (T, 2) array

`shifts_px` is a (T, 2) array: the displacement of the content in frame t relative to
frame 0, in pixels along numpy axes 0 and 1 (row 0 must be (0, 0)); sub-pixel values are
allowed. By default the content sways 6 px along axis 0 and 2 px along axis 1. The returned
`motion_px` equals `shifts_px`; masks are the first mask translated by the same shifts
(linear interpolation, threshold 0.5), so their centroids move by the shifts to within a
fraction of a pixel. The scene is the textured phantom with a clearly visible tumour in the
liver and mild Rician noise; no deformation, no intensity drift.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from model.trackers import SequenceInfo
from sequences.synthetic.anatomy import Tissue, make_anatomy
from sequences.synthetic.contrast import LOOKS, tissue_image
from sequences.synthetic.generator import SyntheticSequence
from sequences.synthetic.layout import write_case
from sequences.synthetic.tumour import round_tumour, tumour_mask


def default_shifts(n_frames: int) -> np.ndarray:
    """A smooth sway: 6 px peak along axis 0 and 2 px along axis 1, starting at (0, 0)."""
    phase = 2 * np.pi * np.arange(n_frames) / max(n_frames - 1, 1)
    return np.stack([6.0 * np.sin(phase), 2.0 * np.sin(2 * phase)], axis=1)


def random_shifts(
    n_frames: int, rng: np.random.Generator, max_step_px: float = 4.0, max_offset_px: float = 40.0
) -> np.ndarray:
    """Smooth random motion from (0, 0): a velocity that drifts (so the target travels, not
    only sways) with per-frame steps of at most `max_step_px` and offsets of at most
    `max_offset_px` along each axis (the velocity turns back at that bound)."""
    velocity = rng.uniform(-max_step_px, max_step_px, 2)
    shifts = np.zeros((n_frames, 2))
    for t in range(1, n_frames):
        velocity = np.clip(velocity + rng.normal(0.0, 0.3 * max_step_px, 2), -max_step_px, max_step_px)
        outside = np.abs(shifts[t - 1] + velocity) > max_offset_px
        velocity[outside] = -velocity[outside]
        shifts[t] = shifts[t - 1] + velocity
    return shifts


def make_translation_sequence(
    shifts_px: np.ndarray | None = None,
    shape: tuple[int, int] = (96, 96),
    n_frames: int = 12,
    seed: int = 0,
    radius_px: float = 9.0,
    spacing_mm: tuple[float, float] = (1.5, 1.5),
    noise: float = 0.01,
    frame_rate: float = 4.0,
) -> SyntheticSequence:
    """A sequence (see the module docstring) whose frame t is frame 0 moved by shifts_px[t]."""
    shifts = default_shifts(n_frames) if shifts_px is None else np.asarray(shifts_px, float)
    if shifts.shape != (n_frames, 2) or np.any(shifts[0] != 0):
        raise ValueError(f"shifts_px must be ({n_frames}, 2) with row 0 = (0, 0)")
    rng = np.random.default_rng(seed)
    # Draw on a canvas larger than the frame so translated frames have content at the edges.
    pad = int(np.ceil(np.abs(shifts).max())) + 2
    canvas_shape = (shape[0] + 2 * pad, shape[1] + 2 * pad)
    look = LOOKS[1.5]
    anatomy = make_anatomy(canvas_shape, spacing_mm, (60.0, -30.0), rng)
    canvas = tissue_image(anatomy.labels, anatomy.texture, look, rng)
    rows, cols = np.indices(canvas_shape, dtype=np.float32)
    centre = (canvas_shape[0] / 2, canvas_shape[1] / 2)
    tumour = tumour_mask(round_tumour(centre, radius_px), canvas_shape).astype(np.float32)
    liver = look.intensities[Tissue.LIVER]
    canvas = canvas * (1 - tumour) + 1.8 * liver * anatomy.texture * tumour

    frames = np.empty((*shape, n_frames), np.float32)
    masks = np.empty((*shape, n_frames), np.uint8)
    for t, (d0, d1) in enumerate(shifts):
        crop_rows = rows[pad : pad + shape[0], pad : pad + shape[1]] - np.float32(d0)
        crop_cols = cols[pad : pad + shape[0], pad : pad + shape[1]] - np.float32(d1)
        image = cv2.remap(canvas, crop_cols, crop_rows, cv2.INTER_LINEAR)
        real = image + rng.normal(0, noise, shape)
        frames[:, :, t] = np.hypot(real, rng.normal(0, noise, shape))
        masks[:, :, t] = cv2.remap(tumour, crop_cols, crop_rows, cv2.INTER_LINEAR) > 0.5
    info = SequenceInfo(
        frame_shape=shape,
        n_frames=n_frames,
        pixel_spacing_mm=spacing_mm,
        frame_rate=frame_rate,
        field_strength=1.5,
        scanned_region="abdomen",
    )
    metadata = {"seed": seed, "kind": "translation", "shifts_px": shifts.round(3).tolist()}
    return SyntheticSequence(frames, masks, info, shifts.copy(), metadata)


def write_translation_case(case_dir: Path, case_id: str = "T_001", **kwargs) -> SyntheticSequence:
    """Make a translation sequence (keyword arguments as above) and write it as a dataset case."""
    sequence = make_translation_sequence(**kwargs)
    write_case(case_dir, case_id, sequence)
    return sequence
