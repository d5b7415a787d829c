"""python -m sequences.synthetic OUT_DIR --cases 10 --seed 0 [--frames 50:500] [--kind breathing|translation]
...: write a dataset of generated cine-MRI cases (breathing phantoms, or whole-scene translations)."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from model.errors import run_command
from sequences.synthetic.dataset import write_dataset, write_flow_failure_dataset, write_translation_dataset
from sequences.synthetic.generator import REGIONS, Difficulty, FlowFailures, MotionRanges


def _range(text: str) -> tuple[float, float]:
    low, _, high = text.partition(":")
    values = (float(low), float(high or low))
    if values[0] > values[1]:
        raise argparse.ArgumentTypeError(f"{text}: low must not exceed high")
    return values


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m sequences.synthetic", description=__doc__)
    parser.add_argument("out_dir", type=Path)
    parser.add_argument("--cases", type=int, default=10)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--frames", type=_range, default=(50, 500), help="LOW:HIGH frames per case")
    parser.add_argument(
        "--kind",
        choices=("breathing", "translation", "flowfail"),
        default="breathing",
        help="breathing: deforming phantoms with respiratory motion (the options below apply); "
        "translation: the whole scene moves by smooth random shifts (sequences.synthetic.translation); "
        "flowfail: phantoms made to defeat optical flow, one kind per case in turn "
        "(sequences.synthetic.dataset.FLOW_FAILURE_KINDS; --frames and the options below do not apply)",
    )
    parser.add_argument("--fields", default="0.35,1.5", help="field strengths to alternate (T)")
    parser.add_argument("--regions", default=",".join(REGIONS), help=f"subset of {','.join(REGIONS)}")
    parser.add_argument("--si", type=_range, default=(5, 25), help="SI peak-to-peak per cycle, mm")
    parser.add_argument("--ap", type=_range, default=(1, 5), help="AP peak-to-peak per cycle, mm")
    parser.add_argument("--period", type=_range, default=(3, 6), help="breathing period, s")
    parser.add_argument(
        "--snr", type=_range, default=None, help="LOW:HIGH liver signal / noise (default: the field strength's range)"
    )
    parser.add_argument(
        "--area-swing",
        type=_range,
        default=(0.05, 0.15),
        help="through-plane motion: tumour radius change over a breath, fraction",
    )
    parser.add_argument(
        "--contrast-drift",
        type=float,
        default=0.0,
        help="tumour intensity drifts linearly by this fraction over the sequence",
    )
    parser.add_argument(
        "--contrast-reversal",
        action="store_true",
        help="the tumour's contrast to its host reverses over the sequence",
    )
    parser.add_argument(
        "--area-growth", type=float, default=0.0, help="through-plane: the cut's radius grows by this fraction"
    )
    parser.add_argument(
        "--baseline-shift", type=float, default=0.0, help="the patient moves this many mm (SI) at a third of the way"
    )
    parser.add_argument("--distractor", action="store_true", help="a structure like the tumour slides past it")
    parser.add_argument(
        "--frame-rates", default=None, help="comma-separated frame rates to draw from (default: the field strength's)"
    )
    args = parser.parse_args(argv)

    def body() -> None:
        started = time.perf_counter()
        frames = (int(args.frames[0]), int(args.frames[1]))
        if args.kind == "translation":
            folders = write_translation_dataset(args.out_dir, args.cases, args.seed, frames)
        elif args.kind == "flowfail":
            folders = write_flow_failure_dataset(args.out_dir, args.cases, args.seed)
        else:
            folders = write_dataset(
                args.out_dir,
                args.cases,
                args.seed,
                frames,
                tuple(float(f) for f in args.fields.split(",")),
                tuple(args.regions.split(",")),
                MotionRanges(si_mm=args.si, ap_mm=args.ap, period_s=args.period),
                Difficulty(
                    snr=args.snr,
                    area_swing=args.area_swing,
                    contrast_drift=args.contrast_drift,
                    frame_rates=tuple(float(r) for r in args.frame_rates.split(",")) if args.frame_rates else None,
                ),
                FlowFailures(args.contrast_reversal, args.area_growth, args.baseline_shift, args.distractor),
            )
        print(f"wrote {len(folders)} cases to {args.out_dir} in {time.perf_counter() - started:.1f} s")

    return run_command(body)  # e.g. an output folder that cannot be created: one line, exit 1


if __name__ == "__main__":
    sys.exit(main())
