"""Cine-like labelled sequences on real slices (the issue's clips of kind b).

One real slice, fitted to a field look's frame (spacing, field of view), gets a target (a real
structure or a painted lesion, sequences.real_texture.targets) and is moved by the project's
breathing model (sequences.synthetic.motion): the target and the tissue around it follow the
breathing trace, fading towards the frame's edge, plus a smooth non-rigid wander. Through-plane
change is a local zoom about the target (its cut grows and shrinks with breathing) and a slow
change of its contrast; the acquisition adds coil shading, a drifting receiver gain, blur and
Rician noise (sequences.synthetic.contrast). Image and mask are warped with the same field.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import cv2
import numpy as np

from model.trackers import SequenceInfo
from sequences.real_texture.sources import SliceRef, load_slice, slices_of, tissue_mask
from sequences.real_texture.targets import Target, lesion_contrast, paint, place_target
from sequences.synthetic.contrast import LOOKS, acquire, coil_shading, gain_drift
from sequences.synthetic.generator import REGIONS, MotionRanges, SyntheticSequence
from sequences.synthetic.motion import (
    RespiratoryTrace,
    ou_process,
    respiratory_trace,
    smooth_random_fields,
    through_plane_scales,
    warp,
)


@dataclass(frozen=True)
class RealTextureSettings:
    radius_mm: tuple[float, float] = (7.5, 20.0)  # target size (equivalent-disc radius)
    structure_probability: float = 0.3  # share of targets that are real structures, not painted lesions
    appearance: float = 0.05  # std of the slow relative change of the target's contrast per frame
    motion: MotionRanges = MotionRanges()


def pick_slice(split: str, rng: np.random.Generator) -> SliceRef:
    """A slice of `split`: a source uniformly (so a long cine does not outweigh a single
    picture), then one of its slices."""
    refs = slices_of(split)
    names = sorted({ref.source.name for ref in refs})
    name = names[rng.integers(len(names))]
    own = [ref for ref in refs if ref.source.name == name]
    return own[rng.integers(len(own))]


def fit_square(image: np.ndarray, side: int) -> np.ndarray:
    """Scale the picture so its shorter side is `side`, then cut the central side x side square."""
    zoom = side / min(image.shape)
    size = (max(side, round(image.shape[1] * zoom)), max(side, round(image.shape[0] * zoom)))
    resized = cv2.resize(image, size, interpolation=cv2.INTER_CUBIC if zoom > 1 else cv2.INTER_AREA)
    r0, c0 = (resized.shape[0] - side) // 2, (resized.shape[1] - side) // 2
    return np.clip(resized[r0 : r0 + side, c0 : c0 + side], 0.0, 1.0)


def make_real_sequence(
    seed: int,
    n_frames: int,
    split: str = "train",
    ref: SliceRef | None = None,
    contrast: str | None = None,
    frame_rate: float | None = None,
    field_strength: float | None = None,
    region: str | None = None,
    settings: RealTextureSettings = RealTextureSettings(),
) -> SyntheticSequence:
    """One labelled real-texture sequence; the seed fixes everything not given.

    `ref` (default: drawn from `split`), `contrast` ("weak"/"strong" painted-lesion contrast;
    default drawn), frame rate and field strength (default: the field look's draw) and region
    (default drawn; it only sets the metadata, which sets the inference crop's margin).
    """
    rng = np.random.default_rng(seed)
    ref = ref if ref is not None else pick_slice(split, rng)
    field = float(field_strength if field_strength is not None else rng.choice(sorted(LOOKS)))
    look = LOOKS[field]
    spacing = float(rng.uniform(*look.spacing_mm))
    side = int(round(rng.uniform(*look.fov_mm) / spacing))
    fps = float(frame_rate if frame_rate is not None else rng.choice(look.frame_rates))
    region = region or str(rng.choice(REGIONS))
    strength = contrast or str(rng.choice(["weak", "strong"]))
    image = fit_square(load_slice(ref).image, side)

    motion = settings.motion
    trace = respiratory_trace(
        n_frames, fps, rng, motion.si_mm, motion.ap_mm, motion.period_s, motion.max_drift_mm_per_min
    )
    radius_px = float(rng.uniform(*settings.radius_mm)) / spacing
    allowed = _room(image.shape, radius_px, trace, spacing)
    target = place_target(
        image, radius_px, allowed, lesion_contrast(strength, rng), settings.structure_probability, rng
    )
    scales = through_plane_scales(trace, fps, rng)
    contrasts = target.contrast + settings.appearance * ou_process(n_frames, fps, 10.0, rng)
    displacements = _displacement_fields(image.shape, target, trace, scales, spacing, fps, rng)
    shading = coil_shading(image.shape, look, rng)
    gains = gain_drift(n_frames, rng)
    noise_sigma = float(image[tissue_mask(image)].mean()) / rng.uniform(*look.snr)  # SNR of the tissue

    frames = np.empty((side, side, n_frames), np.float32)
    masks = np.empty((side, side, n_frames), np.uint8)
    truth = target.mask.astype(np.float32)
    for t in range(n_frames):
        field_t = displacements(t)
        moved = warp(paint(image, target.cover, float(contrasts[t])), field_t)
        masks[:, :, t] = warp(truth, field_t) > 0.5
        frames[:, :, t] = acquire(moved * shading * gains[t], look, noise_sigma, rng)
        if not masks[:, :, t].any():
            raise RuntimeError(f"seed {seed}: empty ground truth at frame {t}")

    info = SequenceInfo(
        frame_shape=(side, side),
        n_frames=n_frames,
        pixel_spacing_mm=(spacing, spacing),
        frame_rate=fps,
        field_strength=field,
        scanned_region=region,
    )
    metadata = {
        "kind": "real-texture",
        "seed": seed,
        "split": split,
        "source": ref.source.name,
        "package": ref.source.package,
        "file": ref.source.path,
        "slice": ref.index,
        "modality": ref.source.modality,
        "anatomy": ref.source.anatomy,
        "target": target.kind,
        "contrast": strength if target.kind == "painted" else "structure",
        "relative_contrast": round(target.contrast, 3),
        "target_radius_mm": round(target.radius_px * spacing, 2),
        "field_strength": field,
        "region": region,
        "frame_rate": fps,
        "n_frames": n_frames,
        "shape": [side, side],
        "pixel_spacing_mm": [spacing, spacing],
        "si_range_mm": float(np.ptp(trace.si_mm)),
        "ap_range_mm": float(np.ptp(trace.ap_mm)),
        "area_ratio_range": [float(scales.min() ** 2), float(scales.max() ** 2)],
    }
    motion_px = np.stack([trace.si_mm / spacing, trace.ap_mm / spacing], axis=1)
    return SyntheticSequence(frames, masks, info, motion_px, metadata)


def _room(shape: tuple[int, int], radius_px: float, trace: RespiratoryTrace, spacing: float) -> np.ndarray:
    """Centres from which the target, moved by the trace and grown by through-plane change,
    stays inside the frame."""
    reach = 1.6 * radius_px + 3
    lo0, hi0 = reach + max(0.0, -trace.si_mm.min()) / spacing, reach + max(0.0, trace.si_mm.max()) / spacing
    lo1, hi1 = reach + max(0.0, -trace.ap_mm.min()) / spacing, reach + max(0.0, trace.ap_mm.max()) / spacing
    rows = np.arange(shape[0])[:, None]
    cols = np.arange(shape[1])[None, :]
    return (rows >= lo0) & (rows <= shape[0] - 1 - hi0) & (cols >= lo1) & (cols <= shape[1] - 1 - hi1)


def _displacement_fields(
    shape: tuple[int, int],
    target: Target,
    trace: RespiratoryTrace,
    scales: np.ndarray,
    spacing: float,
    fps: float,
    rng: np.random.Generator,
) -> Callable[[int], np.ndarray]:
    """t -> (2, H, W) pixel displacement: the breathing trace, full at the target and fading
    towards the edges (the body wall moves less than the organs), a smooth non-rigid wander
    that is zero at the target centre, and the through-plane zoom about the target."""
    rows, cols = np.indices(shape, dtype=np.float32)
    d0, d1 = rows - target.centre[0], cols - target.centre[1]
    reach = rng.uniform(0.3, 0.6) * min(shape)
    weight = np.exp(-(d0**2 + d1**2) / (2 * reach**2)).astype(np.float32)
    zoom_sigma = 1.5 * target.radius_px
    fields = smooth_random_fields(shape, 2, 40.0 / spacing, rng)
    r, c = (int(round(v)) for v in target.centre)
    fields -= fields[:, :, r : r + 1, c : c + 1]
    n = len(trace.si_mm)
    wander_mm = np.stack(
        [rng.uniform(0.5, 2.0) * ou_process(n, fps, 10.0, rng), rng.uniform(0.5, 2.0) * ou_process(n, fps, 20.0, rng)],
        axis=1,
    ).astype(np.float32)

    def at(t: int) -> np.ndarray:
        shift = np.array([trace.si_mm[t], trace.ap_mm[t]], np.float32)
        rigid = shift[:, None, None] * weight
        nonrigid = np.tensordot(wander_mm[t], fields, axes=1)
        # The zoom is centred where the target is at frame t (the warp samples backwards).
        z0, z1 = d0 - shift[0] / spacing, d1 - shift[1] / spacing
        zoom = np.stack([z0, z1]) * np.exp(-(z0**2 + z1**2) / (2 * zoom_sigma**2))
        return ((rigid + nonrigid) / spacing + (float(scales[t]) - 1.0) * zoom).astype(np.float32)

    return at
