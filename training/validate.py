"""Validation: the full inference pipeline on held-out cases, scored with the official metrics.

Used by the training loop every --val-every iterations, and on its own to compare checkpoints
case by case at any crop size:

    python -m training.validate WEIGHTS DATASET_OR_CASE... [--crop-size 384] [--precision bf16]
        [--threshold 0.4] [--mem-every 3] ...  (every XMemSettings option of inference.py)

prints one line per case (dsc, cd in pixels) and the means. Tune pipeline
settings on a selection set, never on the cases that decide the bar.
"""
from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

import numpy as np

from model.errors import run_command
from model.io import find_case_dirs, read_dataset_case, read_labels
from evaluation.metrics import score_sequence
from model.trackers.xmem import XMemSettings, XMemTracker
from model.runner import run_tracker
from model.trackers import add_settings_options
from model.xmem.network.checkpoint import load_network
from model.xmem.network.network import XMem

METRICS = ("dsc", "hd95", "masd", "cd", "rel_d98")


def score_cases(network: XMem, case_dirs: list[Path], settings: XMemSettings) -> list[dict[str, float]]:
    """The official per-case metrics of XMemTracker with these settings, one dict per case.

    The tracker wraps the network as it is (no copy); InferenceCore leaves it in eval mode,
    which is the mode training keeps it in anyway (frozen BatchNorm).
    """
    tracker = XMemTracker.from_network(network, settings)
    scores = []
    for case_dir in case_dirs:
        case = read_dataset_case(case_dir)
        result = run_tracker(tracker, case.frames, case.first_mask, case.info)
        scores.append(score_sequence(result.masks, read_labels(case_dir), case.info.scanned_region))
    return scores


def mean_scores(scores: list[dict[str, float]]) -> dict[str, float]:
    """Means of METRICS over cases; a case without later ground truth (NaN) is left out."""
    means = {}
    for key in METRICS:
        values = np.array([s[key] for s in scores], dtype=float)
        finite = values[~np.isnan(values)]
        means[key] = float(finite.mean()) if finite.size else math.nan
    return means


def validate(network: XMem, case_dirs: list[Path], crop_size: int) -> dict[str, float]:
    """Mean metrics over the cases, default pipeline settings at this crop size."""
    return mean_scores(score_cases(network, case_dirs, XMemSettings(crop_size=crop_size)))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m training.validate", description=__doc__.split("\n\n")[0])
    parser.add_argument("weights", type=Path, help="network weights (.pth, any format model.xmem loads)")
    parser.add_argument("datasets", type=Path, nargs="+", help="case folders or folders of cases")
    names = add_settings_options(parser.add_argument_group("pipeline settings"), XMemSettings, skip=("weights",))
    args = parser.parse_args(argv)

    def body() -> None:
        settings = XMemSettings(**{name: getattr(args, name) for name in names})
        case_dirs = [case for root in args.datasets for case in find_case_dirs(root)]
        network = load_network(args.weights)
        scores = []
        for case_dir in case_dirs:  # one at a time, so each line shows as soon as it is known
            scores += score_cases(network, [case_dir], settings)
            print(f"{case_dir}: dsc {scores[-1]['dsc']:.3f}, cd {scores[-1]['cd']:.2f} px", flush=True)
        means = mean_scores(scores)
        print(f"mean of {len(scores)} cases: " + ", ".join(f"{k} {v:.3f}" for k, v in means.items()))

    return run_command(body, also_user_errors=(ValueError,))


if __name__ == "__main__":
    sys.exit(main())
