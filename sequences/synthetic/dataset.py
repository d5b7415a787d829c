"""A whole synthetic dataset folder: one case per sub-folder, mixed field strengths and regions."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from sequences.synthetic.generator import REGIONS, Difficulty, FlowFailures, MotionRanges, generate_sequence
from sequences.synthetic.layout import write_case
from sequences.synthetic.translation import make_translation_sequence, random_shifts


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
    failures: FlowFailures = FlowFailures(),
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
            failures=failures,
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


# The kinds of a flow-failure dataset, one per case in this order (docs/benchmark.md, "Where the
# flow is wrong"): (name, difficulty, failures, frames).
HARD = Difficulty(snr=(4.0, 8.0), area_swing=(0.25, 0.35), contrast_drift=0.3, frame_rates=(1.0, 8.0))
FLOW_FAILURE_KINDS: tuple[tuple[str, Difficulty, FlowFailures, tuple[int, int]], ...] = (
    ("contrast-reversal", Difficulty(), FlowFailures(contrast_reversal=True), (60, 80)),
    ("through-plane", Difficulty(area_swing=(0.0, 0.02)), FlowFailures(area_growth=1.0), (60, 80)),
    ("baseline-shift", Difficulty(), FlowFailures(baseline_shift_mm=45.0), (60, 80)),
    ("low-snr", Difficulty(snr=(2.0, 3.0)), FlowFailures(), (60, 80)),
    ("slow-drift", Difficulty(contrast_drift=1.0), FlowFailures(), (600, 600)),
    ("distractor", Difficulty(), FlowFailures(distractor=True), (60, 80)),
    ("hard", HARD, FlowFailures(), (60, 80)),
)


def write_flow_failure_dataset(out_dir: Path, cases: int, seed: int = 0) -> list[Path]:
    """Write `cases` cases named F_001, F_002, ... whose kinds cycle through FLOW_FAILURE_KINDS;
    field strengths alternate (0.35 T, 1.5 T) and regions cycle as in `write_dataset`."""
    out_dir = Path(out_dir)
    folders = []
    for index in range(cases):
        case = case_seed(seed, index)
        kind, difficulty, failures, frames = FLOW_FAILURE_KINDS[index % len(FLOW_FAILURE_KINDS)]
        n_frames = int(np.random.default_rng(case).integers(frames[0], frames[1] + 1))
        sequence = generate_sequence(
            case,
            n_frames,
            (0.35, 1.5)[index % 2],
            REGIONS[(index // 2) % len(REGIONS)],
            difficulty=difficulty,
            failures=failures,
        )
        sequence.metadata["flow_failure_kind"] = kind
        case_id = f"F_{index + 1:03d}"
        folders.append(write_case(out_dir / case_id, case_id, sequence))
    return folders
