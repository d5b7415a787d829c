"""Realistic labelled synthetic cine-MRI in the TrackRAD dataset layout.

Public API: `generate_sequence` (one sequence in memory), `write_case` (one dataset-layout
case), `write_dataset` (a dataset folder; also `python -m model.synthetic OUT_DIR ...`),
`make_translation_sequence` / `write_translation_case` (pure known translations for tests).
"""
from model.synthetic.dataset import write_dataset
from model.synthetic.generator import MotionRanges, SyntheticSequence, generate_sequence
from model.synthetic.layout import write_case
from model.synthetic.translation import make_translation_sequence, write_translation_case

__all__ = [
    "MotionRanges",
    "SyntheticSequence",
    "generate_sequence",
    "make_translation_sequence",
    "write_case",
    "write_dataset",
    "write_translation_case",
]
