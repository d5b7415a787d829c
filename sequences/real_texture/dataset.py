"""A folder of real-texture sequences in the TrackRAD dataset layout (R_001, R_002, ...)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from sequences.real_texture.cine import RealTextureSettings, make_real_sequence
from sequences.real_texture.sources import require_sources, slices_of
from sequences.synthetic.dataset import case_seed
from sequences.synthetic.layout import write_case

CONTRAST_STRENGTHS = ("weak", "strong")
FIELD_STRENGTHS = (0.35, 1.5)


def write_real_dataset(
    out_dir: Path,
    cases: int,
    seed: int = 0,
    split: str = "train",
    frames: tuple[int, int] = (40, 60),
    frame_rates: tuple[float, ...] = (),
    settings: RealTextureSettings = RealTextureSettings(),
) -> list[Path]:
    """Write `cases` sequences of `split`'s slices under out_dir; returns their folders.

    The cases take the split's sources in turn, so each is used; within a source the slice is
    drawn. Painted-lesion contrast (weak, strong) alternates per round of sources, field strength
    alternates per case, the region (crop margin) is drawn, and the frame rate cycles through `frame_rates` (empty: each
    field look's own draw). Frame counts are drawn from `frames` (inclusive).
    """
    require_sources(split)  # before anything is written
    refs = slices_of(split)
    names = sorted({ref.source.name for ref in refs})
    out_dir = Path(out_dir)
    folders = []
    for index in range(cases):
        case = case_seed(seed, index)
        rng = np.random.default_rng(case)
        own = [ref for ref in refs if ref.source.name == names[index % len(names)]]
        sequence = make_real_sequence(
            case,
            int(rng.integers(frames[0], frames[1] + 1)),
            split=split,
            ref=own[rng.integers(len(own))],
            contrast=CONTRAST_STRENGTHS[(index // len(names)) % len(CONTRAST_STRENGTHS)],
            frame_rate=frame_rates[index % len(frame_rates)] if frame_rates else None,
            field_strength=FIELD_STRENGTHS[index % len(FIELD_STRENGTHS)],
            settings=settings,
        )
        case_id = f"R_{index + 1:03d}"
        folders.append(write_case(out_dir / case_id, case_id, sequence))
    return folders


def write_quick_case(case_dir: Path, case_id: str = "R_001", n_frames: int = 16, seed: int = 0) -> Path:
    """One short real-texture case for a quick check of weights (a second or two to write): the
    validation split's abdominal MR with a strong painted lesion, 1.5 T, 4 frames a second, so
    a full breathing cycle happens within the case and staying put (copy) does not track it."""
    abdomen = [ref for ref in slices_of("val") if ref.source.name == "pydicom-abdomen"]
    sequence = make_real_sequence(
        seed,
        n_frames,
        split="val",
        ref=abdomen[0],
        contrast="strong",
        frame_rate=4.0,
        field_strength=1.5,
        region="abdomen",
        settings=RealTextureSettings(structure_probability=0.0),
    )
    return write_case(Path(case_dir), case_id, sequence)
