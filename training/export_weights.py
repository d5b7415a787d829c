"""Write a network checkpoint in the form that ships: int8 (default), fp16 or fp32.

    python -m training.export_weights runs/train/network_0002000.pth resources/trackrad-xmem.pth
        [--format int8|fp16|fp32]

SRC is any checkpoint that inference loads (a flat state dict, e.g. network_<it>.pth from
`python -m training`, or the official XMem.pth). The result is checked before it is moved
into place: it must load strictly into XMem (model.xmem.network.checkpoint.load_network). Printed: the
size, and the largest relative error that the format puts on any weight tensor.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

from model.errors import run_command
from model.xmem.network.checkpoint import load_state_dict_file, save_checked_state_dict
from model.xmem.network.compact import compact_state_dict, expand_state_dict

FORMATS = ("int8", "fp16", "fp32")


def convert(state_dict: dict[str, torch.Tensor], fmt: str) -> dict[str, torch.Tensor]:
    if fmt == "int8":
        return compact_state_dict(state_dict)
    dtype = torch.float16 if fmt == "fp16" else torch.float32
    return {k: v.to(dtype) if v.is_floating_point() else v for k, v in state_dict.items()}


def max_relative_error(original: dict[str, torch.Tensor], stored: dict[str, torch.Tensor]) -> float:
    """max over float tensors of max|stored − original| / max|original|."""
    expanded = expand_state_dict(stored)
    worst = 0.0
    for key, value in original.items():
        if value.is_floating_point() and value.numel():
            scale = value.abs().max().item() or 1.0
            worst = max(worst, (expanded[key].float() - value.float()).abs().max().item() / scale)
    return worst


def export(source: Path, destination: Path, fmt: str) -> str:
    state_dict = load_state_dict_file(source)
    stored = convert(state_dict, fmt)
    save_checked_state_dict(stored, destination)  # refuses to ship a file inference cannot load
    size_mb = destination.stat().st_size / 1e6
    error = max_relative_error(state_dict, stored)
    return f"wrote {destination}: {fmt}, {size_mb:.1f} MB, max relative weight error {error:.2e}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m training.export_weights", description=__doc__.split("\n\n")[0])
    parser.add_argument("source", type=Path)
    parser.add_argument("destination", type=Path)
    parser.add_argument("--format", choices=FORMATS, default="int8")
    args = parser.parse_args(argv)
    return run_command(lambda: print(export(args.source, args.destination, args.format)))


if __name__ == "__main__":
    sys.exit(main())
