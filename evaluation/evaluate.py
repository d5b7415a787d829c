"""Evaluate a tracker on a labelled case: read it, track it causally, score it against its labels.

The one read-track-score path behind `python -m evaluation.benchmark` and
`python -m training.validate` (and so the training loop's validation). The harness runs the
entry point as a separate process instead and scores what it wrote with `score_output`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from evaluation.metrics import score_sequence
from model.io import Case, CaseError, dataset_case_id, read_dataset_case, read_labels
from model.runner import RunResult, run_tracker
from model.trackers import Tracker


@dataclass
class CaseEvaluation:
    case_id: str
    case: Case  # the sequence as read (frames, first mask, metadata)
    truth: np.ndarray  # (W, H, T) uint8 0/1 ground truth
    result: RunResult  # masks, per-frame times, runner events
    scores: dict[str, float]  # score_sequence's per-sequence metrics


def evaluate_case(tracker: Tracker, case_dir: Path) -> CaseEvaluation:
    """Run `tracker` over the dataset-layout case in `case_dir` through model.runner.run_tracker
    (causal, never an empty frame) and score its masks against targets/<id>_labels.mha."""
    case = read_dataset_case(case_dir)
    result = run_tracker(tracker, case.frames, case.first_mask, case.info)
    truth, scores = score_output(result.masks, case_dir, case.info.scanned_region)
    return CaseEvaluation(dataset_case_id(case_dir), case, truth, result, scores)


def score_output(masks: np.ndarray, case_dir: Path, scanned_region: str) -> tuple[np.ndarray, dict[str, float]]:
    """(ground truth, per-sequence metrics) of (W, H, T) masks against a case's labels.

    Raises CaseError (naming the case) when the labels are missing, unreadable or of another
    shape than the masks.
    """
    truth = read_labels(case_dir)
    if truth.shape != masks.shape:
        raise CaseError(f"{case_dir}: labels of shape {truth.shape} differ from the output's {masks.shape}")
    return truth, score_sequence(masks, truth, scanned_region)
