"""python -m sequences.real_texture OUT_DIR --cases 10 --seed 0 --split train|val [--frames 40:60]
[--frame-rates 1,2,4,8] ...: write real-texture cine sequences (real slices from installed
packages, moved by the breathing model) in the TrackRAD dataset layout."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from sequences.real_texture.cine import RealTextureSettings
from sequences.real_texture.dataset import write_real_dataset
from sequences.real_texture.sources import SPLITS, RealTextureError
from sequences.synthetic.__main__ import _range
from sequences.synthetic.generator import MotionRanges


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m sequences.real_texture", description=__doc__)
    parser.add_argument("out_dir", type=Path)
    parser.add_argument("--cases", type=int, default=10)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--split",
        choices=SPLITS,
        default="train",
        help="which sources: train and val never share a subject, slice or source",
    )
    parser.add_argument("--frames", type=_range, default=(40, 60), help="LOW:HIGH frames per case")
    parser.add_argument(
        "--frame-rates",
        default="",
        help="comma-separated frame rates to cycle through (default: each field strength's own draw)",
    )
    parser.add_argument(
        "--radius-mm", type=_range, default=RealTextureSettings.radius_mm, help="LOW:HIGH target radius"
    )
    parser.add_argument(
        "--structure-probability",
        type=float,
        default=RealTextureSettings.structure_probability,
        help="share of targets that are real structures rather than painted lesions",
    )
    parser.add_argument(
        "--appearance",
        type=float,
        default=RealTextureSettings.appearance,
        help="std of the slow change of the target's relative contrast",
    )
    parser.add_argument("--si", type=_range, default=(5, 25), help="SI peak-to-peak per cycle, mm")
    parser.add_argument("--ap", type=_range, default=(1, 5), help="AP peak-to-peak per cycle, mm")
    parser.add_argument("--period", type=_range, default=(3, 6), help="breathing period, s")
    args = parser.parse_args(argv)
    settings = RealTextureSettings(
        radius_mm=args.radius_mm,
        structure_probability=args.structure_probability,
        appearance=args.appearance,
        motion=MotionRanges(si_mm=args.si, ap_mm=args.ap, period_s=args.period),
    )
    started = time.perf_counter()
    try:
        folders = write_real_dataset(
            args.out_dir,
            args.cases,
            args.seed,
            args.split,
            (int(args.frames[0]), int(args.frames[1])),
            tuple(float(r) for r in args.frame_rates.split(",") if r),
            settings,
        )
    except RealTextureError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(f"wrote {len(folders)} {args.split} cases to {args.out_dir} in {time.perf_counter() - started:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
