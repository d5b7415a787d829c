"""Time whole trackers on generated phantom sequences held in memory, devices side by side.

    python -m evaluation.tracker_speed --trackers "xmem[device=cuda],xmem[device=cpu]" --cases 3 --frames 100

Specs as in evaluation.benchmark; `xmem[network=exact]` times the pipeline around a stand-in
network, i.e. the motion parts and post-processing alone. One JSON line per tracker: median,
p95 and max ms a frame, the ratio to the first row, a tracking check (mean DSC), the device,
precision, network path and grid. See docs/benchmark.md, "Speed on the CPU you have".
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence

import numpy as np
import torch

from evaluation.benchmark import checked_specs, parse_spec, split_network
from evaluation.metrics import dice_per_frame
from evaluation.standins import stand_in_tracker
from model.errors import run_command
from model.runner import run_tracker, time_summary
from model.trackers import build_tracker
from sequences.synthetic import SyntheticSequence, generate_sequence


def time_tracker(spec: str, sequences: Sequence[SyntheticSequence]) -> dict:
    """Run one tracker spec over every sequence; its timing summary and a tracking check."""
    name, settings = parse_spec(spec)
    stand_in, settings = split_network(settings)
    if torch.cuda.is_available():
        torch.cuda.reset_peak_memory_stats()
    seconds: list[float] = []
    scores: list[float] = []
    described: dict[str, str] = {}
    grids: set[int] = set()
    for sequence in sequences:
        if stand_in:  # the pipeline's own cost: a stand-in network costs next to nothing
            tracker = stand_in_tracker(stand_in, settings, sequence.masks, sequence.frames)
        else:
            tracker = build_tracker(name, **settings)
        result = run_tracker(tracker, sequence.frames, sequence.masks[:, :, 0], sequence.info)
        if result.tracker_error is not None:
            raise RuntimeError(f"{spec} failed on a phantom sequence: {result.tracker_error}")
        seconds += result.frame_seconds
        scores.append(float(np.nanmean(dice_per_frame(result.masks, sequence.masks)[1:])))
        described = tracker.describe()
        grid = tracker.settings().get("resolved", {}).get("grid_px")
        if grid is not None:
            grids.add(grid)
    summary = time_summary(seconds)
    row = {
        "tracker": spec,
        "frames": summary["count"],
        "median_ms": round(1000 * summary["median"], 3),
        "p95_ms": round(1000 * summary["p95"], 3),
        "max_ms": round(1000 * summary["max"], 3),
        "mean_dsc": round(float(np.mean(scores)), 4),
        **{key: described[key] for key in ("device", "precision", "network_path", "torch", "cuda") if key in described},
    }
    if grids:  # the network grid each sequence ran at (--crop-size auto: chosen per sequence)
        row["grid_px"] = sorted(grids)
    if described.get("device", "").startswith("cuda"):
        row["peak_gpu_mib"] = round(torch.cuda.max_memory_allocated() / 2**20)
    return row


def _parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trackers", default="xmem", help="comma-separated tracker specs, timed in this order")
    parser.add_argument("--cases", type=int, default=3, help="generated sequences (seeds 1..N)")
    parser.add_argument("--frames", type=int, default=100, help="frames per sequence")
    args = parser.parse_args(argv)
    if args.cases < 1 or args.frames < 2:
        parser.error("need --cases >= 1 and --frames >= 2")
    args.trackers = checked_specs(parser, args.trackers)
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = _parse_args(argv)

    def body() -> None:
        sequences = [
            generate_sequence(seed, args.frames, field_strength=1.5, region="abdomen")
            for seed in range(1, args.cases + 1)
        ]
        first_median = None
        for spec in args.trackers:
            row = time_tracker(spec, sequences)
            first_median = first_median if first_median is not None else row["median_ms"]
            row["time_vs_first"] = round(row["median_ms"] / first_median, 3) if first_median > 0 else None
            print(json.dumps(row), flush=True)

    return run_command(body)


if __name__ == "__main__":
    sys.exit(main())
