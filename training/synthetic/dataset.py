"""A whole synthetic dataset folder: one case per sub-folder, mixed field strengths and regions."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from training.synthetic.generator import REGIONS, Difficulty, MotionRanges, generate_sequence
from training.synthetic.layout import write_case
from training.synthetic.translation import make_translation_sequence, random_shifts


def case_seed(seed: int, index: int) -> int:
    """The generator seed of case `index` in a dataset made with `seed` (independent streams)."""
    return int(np.random.SeedSequence([seed, index]).generate_state(1)[0])


def write_dataset(
    out_dir: Path,
    cases: int,
    seed: int = 0,
    frames: tuple[int, int] = (50, 500),
    fields: tuple[float, ...] = (0.35, 1.5),
    regions: tuple[str, ...] = REGIONS,
    motion: MotionRanges = MotionRanges(),
    difficulty: Difficulty = Difficulty(),
) -> list[Path]:
    """Write `cases` cases named S_001, S_002, ... under out_dir; returns their folders.

    Field strengths and regions alternate over the cases so every mix is represented; the
    frame count of each case is drawn uniformly from `frames` (inclusive).
    """
    out_dir = Path(out_dir)
    folders = []
    for index in range(cases):
        case = case_seed(seed, index)
        n_frames = int(np.random.default_rng(case).integers(frames[0], frames[1] + 1))
        sequence = generate_sequence(
            case,
            n_frames,
            fields[index % len(fields)],
            regions[(index // len(fields)) % len(regions)],
            motion,
            difficulty=difficulty,
        )
        case_id = f"S_{index + 1:03d}"
        folders.append(write_case(out_dir / case_id, case_id, sequence))
    return folders


def write_translation_dataset(
    out_dir: Path, cases: int, seed: int = 0, frames: tuple[int, int] = (50, 500)
) -> list[Path]:
    """Write `cases` pure-translation cases named T_001, T_002, ... under out_dir.

    Each case draws its frame count from `frames`, a frame shape of 96-160 px per side, a pixel
    spacing of 1.0-2.0 mm, a tumour radius of 5-14 px and a smooth random motion
    (`random_shifts`: steps up to 4 px a frame, offsets up to 40 px that keep the whole
    tumour in the frame). The whole scene moves, so a tracker must follow the target, not
    recognise a place in the phantom.
    """
    out_dir = Path(out_dir)
    folders = []
    for index in range(cases):
        case = case_seed(seed, index)
        rng = np.random.default_rng(case)
        n_frames = int(rng.integers(frames[0], frames[1] + 1))
        shape = (int(rng.integers(96, 161)), int(rng.integers(96, 161)))
        spacing = float(rng.uniform(1.0, 2.0))
        radius = float(rng.uniform(5.0, 14.0))
        reach = min(40.0, min(shape) / 2 - radius - 4)  # the whole tumour stays in the frame
        sequence = make_translation_sequence(
            random_shifts(n_frames, rng, max_offset_px=reach),
            shape=shape,
            n_frames=n_frames,
            seed=case,
            radius_px=radius,
            spacing_mm=(spacing, spacing),
        )
        case_id = f"T_{index + 1:03d}"
        folders.append(write_case(out_dir / case_id, case_id, sequence))
    return folders
