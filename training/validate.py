"""Validation: the full inference pipeline on held-out cases, scored with the official metrics.

Used by the training loop every --val-every iterations, and on its own to compare checkpoints
case by case at any crop size:

    python -m training.validate WEIGHTS DATASET_OR_CASE... [--crop-size 384] [--precision bf16]
        [--threshold 0.4] [--mem-every 3] ...  (every XMemSettings option of inference.py)

prints one line per case (dsc, cd in pixels) and the means over the cases
(evaluation.mean_over_cases). Tune pipeline settings on a selection set, never on the
cases that decide the bar (docs/training.md, "Choosing and shipping weights").
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from evaluation import CaseMeans, evaluate_case, mean_over_cases
from model.errors import run_command
from model.io import find_case_dirs
from model.settings import add_settings_options
from model.trackers.xmem import XMemSettings, XMemTracker
from model.xmem.network.checkpoint import load_network
from model.xmem.network.network import XMem


def score_cases(network: XMem, case_dirs: list[Path], settings: XMemSettings) -> list[dict[str, float]]:
    """The official per-case metrics of XMemTracker with these settings, one dict per case.

    The tracker wraps the network as it is (no copy); InferenceCore leaves it in eval mode,
    which is the mode training keeps it in anyway (frozen BatchNorm).
    """
    tracker = XMemTracker.from_network(network, settings)
    return [evaluate_case(tracker, case_dir).scores for case_dir in case_dirs]


def validate(network: XMem, case_dirs: list[Path], crop_size: int) -> CaseMeans:
    """Metrics averaged over the cases, default pipeline settings at this crop size."""
    return mean_over_cases(score_cases(network, case_dirs, XMemSettings(crop_size=crop_size)))


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
        print(f"mean of {len(scores)} cases: {mean_over_cases(scores).summary()}")

    return run_command(body, also_user_errors=(ValueError,))


if __name__ == "__main__":
    sys.exit(main())
