"""Time the XMem inference step: `python -m evaluation.network_speed --sizes 384,256 --frames 50`.

A randomly initialised network (weights do not change the cost) gets a random one-object mask
on frame 0, then random frames; after `--warmup` frames, `--frames` steps are timed one by one.
`--paths eager,frozen-graphs` times the network's paths side by side, frame by frame. Prints one
JSON line per size and path: median and p95 seconds per frame, the ratio to the first path,
device, precision, path, torch, threads and the memory element counts at the end.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Sequence

import torch

from model.errors import run_command
from model.runner import time_summary
from model.trackers.xmem_settings import NetworkSettings
from model.xmem.inference.config import InferenceConfig
from model.xmem.inference.inference_core import PRECISIONS, InferenceCore
from model.xmem.network.network import XMem

_POOL = 8  # distinct random frames cycled through, generated before timing
PATHS = ("eager", "frozen-graphs")


def _disc_mask(size: int, gen: torch.Generator) -> torch.Tensor:
    centre = torch.rand(2, generator=gen) * size * 0.5 + size * 0.25
    radius = size * (0.05 + 0.1 * torch.rand(1, generator=gen).item())
    yy, xx = torch.meshgrid(torch.arange(size), torch.arange(size), indexing="ij")
    return ((yy - centre[0]) ** 2 + (xx - centre[1]) ** 2 <= radius**2).float()


def _synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def bench_size(cores: Sequence[InferenceCore], size: int, frames: int, warmup: int, seed: int = 0) -> list[dict]:
    """Run one sequence of 1 + warmup + frames steps at size×size through each core, the cores
    taking turns frame by frame (so a change in the machine's load falls on all of them alike);
    per-frame timing stats per core, with its median's ratio to the first core's."""
    gen = torch.Generator().manual_seed(seed)
    device = cores[0].device
    pool = [torch.randn(3, size, size, generator=gen).to(device) for _ in range(_POOL)]
    mask = _disc_mask(size, gen).to(device)
    for core in cores:
        core.reset(expected_frames=1 + warmup + frames)
        core.step(pool[0], mask)
    for t in range(warmup):
        for core in cores:
            core.step(pool[(t + 1) % _POOL])
    times: list[list[float]] = [[] for _ in cores]
    for t in range(frames):
        image = pool[(warmup + t + 1) % _POOL]
        for core, core_times in zip(cores, times, strict=True):
            _synchronize(device)
            start = time.perf_counter()
            core.step(image)
            _synchronize(device)
            core_times.append(time.perf_counter() - start)
    summaries = [time_summary(core_times) for core_times in times]
    rows = []
    for core, summary in zip(cores, summaries, strict=True):
        rows.append(
            {
                "size": size,
                "device": str(core.device),
                "precision": core.precision,
                "path": core.path,
                "device_name": torch.cuda.get_device_name(core.device) if core.device.type == "cuda" else "cpu",
                "torch": torch.__version__,
                "threads": torch.get_num_threads(),
                "frames": frames,
                "warmup": warmup,
                "median_s": round(summary["median"], 5),
                "p95_s": round(summary["p95"], 5),
                "vs_first_path": round(summary["median"] / summaries[0]["median"], 3),
                "work_elements": core.work_elements,
                "long_term_elements": core.long_term_elements,
            }
        )
    return rows


def _parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="384,256", help="comma-separated square frame sizes")
    parser.add_argument("--frames", type=int, default=50, help="timed frames per size")
    parser.add_argument("--warmup", type=int, default=5, help="untimed frames after the first")
    parser.add_argument("--device", default="auto", help="cpu, cuda, cuda:N or auto (cuda if available)")
    parser.add_argument("--threads", type=int, default=None, help="CPU threads (default: all cores)")
    parser.add_argument(
        "--precision",
        default="auto",
        choices=PRECISIONS,
        help="auto = fp16 autocast on CUDA, bf16 on CPUs with native bf16, else fp32; bf16 = autocast",
    )
    parser.add_argument(
        "--paths",
        default="eager",
        help="comma-separated network paths timed side by side, frame by frame: eager, frozen-graphs "
        "(the CPU's fp32 fast path; elsewhere the same as eager)",
    )
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    args.paths = args.paths.split(",")
    if set(args.paths) - set(PATHS) or len(set(args.paths)) != len(args.paths):
        parser.error(f"--paths takes distinct names from {', '.join(PATHS)}, got {','.join(args.paths)!r}")
    try:
        args.sizes = [int(s) for s in args.sizes.split(",")]
    except ValueError:
        parser.error(f"--sizes must be comma-separated integers, got {args.sizes!r}")
    if args.frames < 1 or args.warmup < 0 or any(s < 16 for s in args.sizes):
        parser.error("need --frames ≥ 1, --warmup ≥ 0 and sizes ≥ 16")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = _parse_args(argv)

    def body() -> None:
        # The device and precision checks of the XMem settings: one line for e.g. cuda on a CPU machine.
        settings = NetworkSettings(device=args.device or "auto", precision=args.precision)
        torch.manual_seed(args.seed)
        network = XMem()
        cores = [
            InferenceCore(
                network,
                InferenceConfig(),
                device=settings.torch_device(),
                threads=args.threads,
                precision=args.precision,
                frozen_graphs=path == "frozen-graphs",
            )
            for path in args.paths
        ]
        for size in args.sizes:
            for row in bench_size(cores, size, args.frames, args.warmup, args.seed):
                print(json.dumps(row), flush=True)

    return run_command(body, also_user_errors=(ValueError,))


if __name__ == "__main__":
    sys.exit(main())
