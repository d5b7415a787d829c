"""A whole synthetic dataset folder: one case per sub-folder, mixed field strengths and regions."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from model.synthetic.generator import REGIONS, MotionRanges, generate_sequence
from model.synthetic.layout import write_case


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
        )
        case_id = f"S_{index + 1:03d}"
        folders.append(write_case(out_dir / case_id, case_id, sequence))
    return folders
