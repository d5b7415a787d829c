"""Training clips: frame sampling from dataset-layout cases, target-centred crops, batches.

A clip is `num_frames` frames with their target masks, cropped around the target of its first
frame exactly as the inference crop is (model.pipeline.crop: bounding box + margin in mm,
square in mm, resized to crop_size) with a random margin and shift, normalised per frame by
model.pipeline.preprocess.normalise_frame on the whole frame before cropping and padded with the frame's
darkest value, as model.trackers.xmem does.

Partially labelled cases: a frame counts as labelled when its ground-truth mask is non-empty
(the tumour is always in view in TrackRAD). Clips are drawn from the labelled frames only, the
max-skip window counting labelled frames (as XMem does for YouTubeVOS, annotated every 5th
frame); a case needs at least two labelled frames. A case without targets/<id>_labels.mha
has only its first-frame mask and is skipped.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from model.io import CaseError, find_case_dirs, read_dataset_case, read_labels
from model.pipeline.crop import CropBox, CropWindow, initial_box
from model.pipeline.preprocess import grey_to_network_channels, normalise_frame
from sequences.real_texture.sources import require_sources
from training.augment import add_noise, glide_offsets, random_affine, random_gamma, warp_affine
from training.config import TrainConfig
from training.real_static import real_static_frames
from training.static import static_frames

# XMem's max-skip schedule (docs/training.md, "The recipe"): (fraction of training done, max skip).
MAX_SKIP_SCHEDULE = ((0.0, 5), (0.1, 10), (0.3, 15), (0.9, 5))
MAX_TRIES = 20  # resampling attempts when augmentation pushed the first target out of view


@dataclass
class LabelledSequence:
    name: str
    frames: np.ndarray  # (W, H, T) float32
    labels: np.ndarray  # (W, H, T) bool
    labelled: np.ndarray  # indices of frames with a non-empty label, ascending
    spacing_mm: tuple[float, float]


def load_sequences(roots: tuple[str, ...]) -> tuple[list[LabelledSequence], list[str]]:
    """Every usable case under `roots`, and one note per skipped case."""
    sequences, skipped = [], []
    for case_dir in (c for root in roots for c in find_case_dirs(Path(root))):
        try:
            case = read_dataset_case(case_dir)
            labels = read_labels(case_dir) > 0
        except CaseError as error:
            skipped.append(f"{case_dir.name}: {error}")
            continue
        if labels.shape != case.frames.shape:
            skipped.append(f"{case_dir.name}: labels {labels.shape} do not match frames {case.frames.shape}")
            continue
        labelled = np.flatnonzero(labels.any(axis=(0, 1)))
        if labelled.size < 2:
            skipped.append(f"{case_dir.name}: fewer than two labelled frames")
            continue
        sequences.append(LabelledSequence(case_dir.name, case.frames, labels, labelled, case.info.pixel_spacing_mm))
    return sequences, skipped


def max_skip_at(progress: float) -> int:
    """The max-skip of the schedule at `progress` (0..1 of the iterations)."""
    return [skip for start, skip in MAX_SKIP_SCHEDULE if progress >= start][-1]


def sample_positions(n: int, num_frames: int, max_skip: int, rng: np.random.Generator) -> list[int]:
    """`num_frames` sorted positions in range(n): start anywhere, then repeatedly add a frame
    within `max_skip` of one already chosen. Short sequences repeat frames."""
    if n < num_frames:
        return sorted(rng.choice(n, num_frames, replace=True).tolist())
    chosen = {int(rng.integers(n))}
    while len(chosen) < num_frames:
        near = {j for c in chosen for j in range(max(c - max_skip, 0), min(c + max_skip + 1, n))}
        chosen.add(int(rng.choice(sorted(near - chosen))))
    return sorted(chosen)


def make_clip(
    frames: list[np.ndarray],
    masks: list[np.ndarray],
    spacing_mm: tuple[float, float],
    config: TrainConfig,
    rng: np.random.Generator,
) -> tuple[np.ndarray, np.ndarray] | None:
    """Augment, normalise and crop raw frames → (T×S×S float32, T×S×S bool), S the patch size
    when set, else the crop size; None when the first frame's target left the crop."""
    frames = [normalise_frame(f) for f in random_gamma(frames, rng)]
    box = initial_box(masks[0], spacing_mm, rng.uniform(*config.margin_mm))
    shift = [int(round(rng.uniform(-config.jitter, config.jitter) * s)) for s in box.size]
    box = CropBox(origin=(box.origin[0] + shift[0], box.origin[1] + shift[1]), size=box.size)
    size = view_side(config, rng)
    window = CropWindow(box, frames[0].shape, size)
    centre = (size / 2, size / 2)
    flips = [axis for axis in (0, 1) if rng.random() < 0.5]
    glide = glide_offsets(rng, len(frames), config.glide * size)
    out_frames, out_masks = [], []
    for frame, mask, offset in zip(frames, masks, glide, strict=True):
        # Per-frame affine: ±15°, shear 10°, slight scale (XMem's video stage), plus
        # the clip's steady glide across the window.
        matrix = random_affine(rng, centre, 15.0, (0.95, 1.05), 10.0, max_shift=0.02 * size)
        matrix[:, 2] += offset
        crop = window.crop(frame, pad_value=float(frame.min()))
        crop, crop_mask = warp_affine(crop, window.crop_mask(mask), matrix)
        if flips:
            crop, crop_mask = np.flip(crop, flips), np.flip(crop_mask, flips)
        out_frames.append(add_noise(crop, rng))
        out_masks.append(crop_mask)
    clip_frames, clip_masks = np.stack(out_frames), np.stack(out_masks)
    if not clip_masks[0].any():
        return None
    if config.patch_size:
        rows, cols = patch_slices(clip_masks[0], config.patch_size, rng)
        clip_frames, clip_masks = clip_frames[:, rows, cols], clip_masks[:, rows, cols]
    return np.ascontiguousarray(clip_frames), np.ascontiguousarray(clip_masks)


def view_side(config: TrainConfig, rng: np.random.Generator) -> int:
    """The side of one clip's crop view: crop_size, or a random multiple of 16 from
    [min_crop_size, crop_size] when that is set (the patch cut from it keeps a fixed shape)."""
    if not config.min_crop_size:
        return config.crop_size
    return 16 * int(rng.integers(config.min_crop_size // 16, config.crop_size // 16 + 1))


def patch_slices(first_mask: np.ndarray, patch: int, rng: np.random.Generator) -> tuple[slice, slice]:
    """A random patch×patch window of the crop view, the same for every frame of the clip (a
    fixed window, as at inference), that holds the first frame's target box when it fits and is
    centred on it otherwise. The target keeps the size in pixels that it has at inference."""
    size = first_mask.shape[0]
    slices = []
    for coords in np.nonzero(first_mask):
        lo, hi = max(0, int(coords.max()) - patch + 1), min(size - patch, int(coords.min()))
        if lo > hi:  # box larger than the patch: centre on it
            lo = hi = int(np.clip((int(coords.min()) + int(coords.max()) + 1) // 2 - patch // 2, 0, size - patch))
        start = int(rng.integers(lo, hi + 1))
        slices.append(slice(start, start + patch))
    return slices[0], slices[1]


class ClipSampler:
    """Draws training batches from dataset cases and static images."""

    def __init__(self, config: TrainConfig, rng: np.random.Generator) -> None:
        self.config = config
        self.rng = rng
        self.sequences, self.skipped = load_sequences(config.data)
        if config.phantom_fraction > 0.0 and not self.sequences:
            raise CaseError(f"no usable training case in {', '.join(config.data)}: " + "; ".join(self.skipped))
        self.real_sequences, real_skipped = load_sequences(config.real_data)
        self.skipped += real_skipped
        if config.real_cine_fraction > 0.0 and not self.real_sequences:
            raise CaseError(f"no usable real-texture case in {', '.join(config.real_data)}: " + "; ".join(real_skipped))
        if config.real_static_fraction > 0.0:
            require_sources()  # fail at start-up, not at the first real static clip

    def clip(self, progress: float) -> tuple[np.ndarray, np.ndarray]:
        """One clip (T×S×S frames, T×S×S masks); `progress` (0..1) drives the max-skip schedule.

        The source is drawn by the config's shares: skimage pictures (static_fraction), real
        slices (real_static_fraction), real-texture cases (real_cine_fraction), else phantom cases.
        """
        config = self.config
        for _ in range(MAX_TRIES):
            draw = self.rng.random()
            spacing = (1.0, 1.0)
            if draw < config.static_fraction or not (self.sequences or self.real_sequences):
                frames, masks = static_frames(self.rng, config.num_frames)
            elif draw < config.static_fraction + config.real_static_fraction:
                frames, masks = real_static_frames(
                    self.rng, config.num_frames, config.real_structure_probability, config.real_weak_fraction
                )
            else:
                real = draw < config.static_fraction + config.real_static_fraction + config.real_cine_fraction
                real = real or not self.sequences  # the shares may round to just below 1
                frames, masks, spacing = self.sequence_frames(self.real_sequences if real else self.sequences, progress)
            clip = make_clip(frames, masks, spacing, config, self.rng)
            if clip is not None:
                return clip
        raise RuntimeError(f"no clip with a visible first target in {MAX_TRIES} tries")

    def sequence_frames(
        self, sequences: list[LabelledSequence], progress: float
    ) -> tuple[list[np.ndarray], list[np.ndarray], tuple[float, float]]:
        """The frames, masks and spacing of a clip drawn from one of `sequences` (max-skip window,
        reversed in time with p = 0.5)."""
        seq = sequences[self.rng.integers(len(sequences))]
        positions = sample_positions(len(seq.labelled), self.config.num_frames, max_skip_at(progress), self.rng)
        indices = seq.labelled[positions]
        if self.rng.random() < 0.5:
            indices = indices[::-1]
        return [seq.frames[:, :, t] for t in indices], [seq.labels[:, :, t] for t in indices], seq.spacing_mm

    def batch(self, progress: float) -> tuple[torch.Tensor, torch.Tensor]:
        """frames B×T×3×S×S float32 (grey replicated as at inference), masks B×T×1×S×S."""
        clips = [self.clip(progress) for _ in range(self.config.batch_size)]
        frames = torch.from_numpy(np.stack([c[0] for c in clips]))
        masks = torch.from_numpy(np.stack([c[1] for c in clips])).float()
        return grey_to_network_channels(frames, channel_dim=2), masks.unsqueeze(2)
