"""Realistic labelled synthetic cine-MRI in the TrackRAD dataset layout.

Public API: `generate_sequence` (one sequence in memory), `write_case` (one dataset-layout
case), `write_dataset` (a dataset folder; also `python -m sequences.synthetic OUT_DIR ...`),
`make_translation_sequence` / `write_translation_case` (pure known translations for tests).
"""

from sequences.synthetic.dataset import write_dataset
from sequences.synthetic.generator import MotionRanges, SyntheticSequence, generate_sequence
from sequences.synthetic.layout import write_case
from sequences.synthetic.translation import make_translation_sequence, write_translation_case

__all__ = [
    "MotionRanges",
    "SyntheticSequence",
    "generate_sequence",
    "make_translation_sequence",
    "write_case",
    "write_dataset",
    "write_translation_case",
]
