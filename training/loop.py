"""The training loop: optimiser, AMP, progress, CSV logs, checkpoints, periodic validation."""

from __future__ import annotations

import csv
import dataclasses
import math
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from evaluation import METRICS
from model.atomic import write_atomically
from model.device import resolve_device
from model.io import find_case_dirs
from model.weights import load_weights
from model.xmem.network.checkpoint import load_network
from model.xmem.network.network import XMem
from training.config import TrainConfig
from training.data import ClipSampler
from training.forward import clip_forward
from training.losses import clip_loss, top_fraction
from training.validate import validate

CHECKPOINT = "checkpoint.pt"


class Trainer:
    """One network with its optimiser state; `step` is one training iteration on a batch."""

    def __init__(self, network: XMem, config: TrainConfig, device: torch.device, rng: np.random.Generator) -> None:
        self.config, self.device, self.rng = config, device, rng
        # XMem's recipe: BatchNorm stays in eval mode for the whole training (running stats
        # frozen; its affine parameters still learn), so the network is never put in train().
        self.network = network.to(device).eval()
        self.optimizer = torch.optim.AdamW(
            network.parameters(), lr=config.lr, weight_decay=config.weight_decay, fused=True
        )
        self.scheduler = torch.optim.lr_scheduler.MultiStepLR(
            self.optimizer, milestones=list(config.lr_steps), gamma=config.lr_gamma
        )
        # Mixed precision: fp16 + gradient scaling on CUDA; bf16 (fp32's exponent range, so no
        # scaling) on CPU when asked for.
        on_cuda = device.type == "cuda"
        self.amp = config.amp if on_cuda else (config.cpu_bf16 and device.type == "cpu")
        self.amp_dtype = torch.float16 if on_cuda else torch.bfloat16
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.amp and on_cuda)
        self.iteration = 0

    def step(self, frames: torch.Tensor, masks: torch.Tensor) -> dict[str, float]:
        """frames B×T×3×H×W, masks B×T×N×H×W (frame 0's masks are the given first masks)."""
        frames, masks = frames.to(self.device), masks.to(self.device)
        with torch.autocast(self.device.type, dtype=self.amp_dtype, enabled=self.amp):
            logits, probs = clip_forward(
                self.network, frames, masks[:, 0], self.config.num_ref_frames, self.config.deep_update_prob, self.rng
            )
        fraction = top_fraction(self.iteration, self.config.start_warm, self.config.end_warm)
        losses = clip_loss(logits, probs, masks, fraction)
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(losses["loss"]).backward()
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.scheduler.step()
        self.iteration += 1
        return {name: value.detach().item() for name, value in losses.items()}

    @property
    def lr(self) -> float:
        return self.optimizer.param_groups[0]["lr"]

    def save(self, out: Path) -> Path:
        """Write <out>/checkpoint.pt (everything needed to resume) and the network-only
        <out>/network_<iteration>.pth that inference loads; returns the latter."""
        state = {
            "network": self.network.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "scaler": self.scaler.state_dict(),
            "iteration": self.iteration,
            "rng": self.rng.bit_generator.state,
            "config": dataclasses.asdict(self.config),
        }
        write_atomically(out / CHECKPOINT, lambda temporary: torch.save(state, temporary))
        network_path = out / f"network_{self.iteration:07d}.pth"
        network = self.network.state_dict()
        write_atomically(network_path, lambda temporary: torch.save(network, temporary))
        return network_path

    def load_state(self, state: dict) -> None:
        """Restore optimiser, scheduler, scaler, iteration and random state (network: see resume)."""
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.scaler.load_state_dict(state["scaler"])
        self.iteration = state["iteration"]
        self.rng.bit_generator.state = state["rng"]


def build_trainer(config: TrainConfig, log: Callable[[str], None] = print) -> Trainer:
    """A Trainer started from the resume checkpoint, from scratch, or from resolved weights."""
    device = resolve_device(config.device)
    rng = np.random.default_rng(config.seed)
    torch.manual_seed(config.seed)
    if config.resume:
        state = torch.load(config.resume, map_location="cpu", weights_only=True)
        trainer = Trainer(load_network(state["network"]), config, device, rng)
        trainer.load_state(state)
        log(f"resumed {config.resume} at iteration {trainer.iteration}")
    elif config.scratch:
        trainer = Trainer(XMem(), config, device, rng)
        log("starting from randomly initialised weights")
    else:
        weights, state_dict = load_weights(config.weights)
        trainer = Trainer(load_network(state_dict), config, device, rng)
        log(f"starting from {weights.summary()}")
    return trainer


class _CsvLog:
    """Rows appended to a CSV file (header written once, so a resumed run continues the file)."""

    def __init__(self, path: Path, columns: list[str]) -> None:
        self.path, self.columns = path, columns
        if not path.exists():
            with open(path, "w", newline="") as handle:
                csv.writer(handle).writerow(columns)

    def write(self, row: dict[str, float | int]) -> None:
        with open(self.path, "a", newline="") as handle:
            csv.writer(handle).writerow([row[c] for c in self.columns])


def _duration(seconds: float) -> str:
    seconds = int(seconds)
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"


def train(config: TrainConfig, log: Callable[[str], None] = print) -> Trainer:
    """Run training to config.iterations (or the first iteration past config.max_minutes);
    returns the trainer (e.g. for tests)."""
    out = Path(config.out)
    out.mkdir(parents=True, exist_ok=True)
    trainer = build_trainer(config, log)
    sampler = ClipSampler(config, trainer.rng)
    log(
        f"{len(sampler.sequences)} phantom cases ({config.phantom_fraction:.0%} of clips), "
        f"{len(sampler.real_sequences)} real-texture cases ({config.real_cine_fraction:.0%}), "
        f"real static clips {config.real_static_fraction:.0%}, static-image clips {config.static_fraction:.0%}"
    )
    for note in sampler.skipped:
        log(f"skipped {note}")
    val_cases = find_case_dirs(Path(config.val_data))[: config.val_cases] if config.val_data else []
    train_log = _CsvLog(out / "log.csv", ["iteration", "loss", "ce", "dice", "lr", "it_per_s"])
    val_log = _CsvLog(out / "val.csv", ["iteration", *(metric.key for metric in METRICS)])

    sums: dict[str, float] = {}
    window_start, window_iterations = time.monotonic(), 0
    deadline = window_start + 60.0 * config.max_minutes if config.max_minutes else math.inf
    while trainer.iteration < config.iterations:
        frames, masks = sampler.batch(trainer.iteration / config.iterations)
        for name, value in trainer.step(frames, masks).items():
            sums[name] = sums.get(name, 0.0) + value
        window_iterations += 1
        out_of_time = time.monotonic() >= deadline
        it, last = trainer.iteration, trainer.iteration == config.iterations or out_of_time
        if it % config.log_every == 0 or last:
            rate = window_iterations / (time.monotonic() - window_start)
            means = {name: total / window_iterations for name, total in sums.items()}
            train_log.write({"iteration": it, **means, "lr": trainer.lr, "it_per_s": rate})
            log(
                f"it {it}/{config.iterations} | {rate:.2f} it/s | loss {means['loss']:.4f} "
                f"(ce {means['ce']:.4f}, dice {means['dice']:.4f}) | lr {trainer.lr:.1e} | "
                f"ETA {_duration((config.iterations - it) / rate)}"
            )
            sums, window_start, window_iterations = {}, time.monotonic(), 0
        if val_cases and (it % config.val_every == 0 or last):
            averaged = validate(trainer.network, val_cases, config.crop_size)
            val_log.write({"iteration": it, **averaged.means})
            log(f"validation at {it}: {averaged.summary()}")
            window_start = time.monotonic()  # validation time is not training speed
        if it % config.save_every == 0 or last:
            log(f"saved {trainer.save(out)}")
        if out_of_time and it < config.iterations:
            log(
                f"stopped at iteration {it}: {config.max_minutes:g} min passed; "
                f"continue with --resume {out / CHECKPOINT}"
            )
            break
    return trainer
