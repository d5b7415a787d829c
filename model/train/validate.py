"""Validation during training: the full inference pipeline on held-out cases, official metrics."""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from model.io import read_dataset_case, read_labels
from model.metrics import score_sequence
from model.pipeline.tracker import XMemSettings, XMemTracker
from model.runner import run_tracker
from model.xmem.network import XMem

METRICS = ("dsc", "hd95", "masd", "cd", "rel_d98")


def validate(network: XMem, case_dirs: list[Path], crop_size: int) -> dict[str, float]:
    """Mean official metrics of XMemTracker (default settings, this crop size) over the cases.

    The tracker wraps the network being trained (no copy); InferenceCore leaves it in eval
    mode, which is the mode training keeps it in anyway (frozen BatchNorm).
    """
    tracker = XMemTracker.from_network(network, XMemSettings(crop_size=crop_size))
    scores = []
    for case_dir in case_dirs:
        case = read_dataset_case(case_dir)
        result = run_tracker(tracker, case.frames, case.first_mask, case.info)
        scores.append(score_sequence(result.masks, read_labels(case_dir), case.info.scanned_region))
    means = {}
    for key in METRICS:
        values = np.array([s[key] for s in scores], dtype=float)
        finite = values[~np.isnan(values)]  # a case without later ground truth has NaN means
        means[key] = float(finite.mean()) if finite.size else math.nan
    return means
