"""Weight averaging: several checkpoints of one run become one checkpoint (their mean).

    python -m training.average OUT.pth IN.pth IN.pth [IN.pth ...]

Late checkpoints of the CPU runs swing by up to 0.1-0.4 validation DSC from one save to the next
(docs/experiments/, 2026-11-27), while their mean, as in stochastic weight averaging, sits in the middle of
the region the run explores. The mean is well defined here because training keeps BatchNorm
frozen: every checkpoint of a run carries the same running statistics and counters, and those
non-float entries must be equal across the inputs.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch
from torch import Tensor

from model.errors import run_command
from model.xmem.network.checkpoint import load_state_dict_file, save_checked_state_dict


def average_state_dicts(state_dicts: list[dict[str, Tensor]]) -> dict[str, Tensor]:
    """The element-wise mean of float tensors (computed in fp32, stored in the first input's
    dtype); other tensors must be equal in every input. Raises ValueError on any mismatch."""
    if len(state_dicts) < 2:
        raise ValueError(f"need at least two checkpoints to average, got {len(state_dicts)}")
    first = state_dicts[0]
    averaged = {}
    for index, other in enumerate(state_dicts[1:], start=2):
        if other.keys() != first.keys():
            different = sorted(set(other) ^ set(first))
            raise ValueError(f"checkpoint {index} has other keys than checkpoint 1 (e.g. {different[0]})")
    for key, value in first.items():
        values = [sd[key] for sd in state_dicts]
        if any(v.shape != value.shape for v in values):
            raise ValueError(f"{key}: shapes differ between checkpoints")
        if value.is_floating_point():
            averaged[key] = torch.stack([v.float() for v in values]).mean(0).to(value.dtype)
        elif all(torch.equal(v, value) for v in values):
            averaged[key] = value.clone()
        else:
            raise ValueError(f"{key}: non-float entries differ between checkpoints (not one run?)")
    return averaged


def average_files(sources: list[Path], destination: Path) -> str:
    """Average the checkpoints in `sources` into `destination` (written only if it loads strictly)."""
    averaged = average_state_dicts([load_state_dict_file(path) for path in sources])
    save_checked_state_dict(averaged, destination)
    return f"wrote {destination}: mean of {len(sources)} checkpoints"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m training.average", description=__doc__.split("\n\n")[0])
    parser.add_argument("destination", type=Path)
    parser.add_argument("sources", type=Path, nargs="+")
    args = parser.parse_args(argv)
    return run_command(lambda: print(average_files(args.sources, args.destination)), also_user_errors=(ValueError,))


if __name__ == "__main__":
    sys.exit(main())
