"""Every training knob in one dataclass; the command line is generated from its fields."""

from __future__ import annotations

import argparse
from dataclasses import dataclass, field

from model.settings import add_settings_options


def _opt(default, help: str, **argparse_kwargs):
    """A field with its command-line help (and argparse `type`/`nargs` for tuple fields)."""
    return field(default=default, metadata={"help": help, **argparse_kwargs})


@dataclass(frozen=True)
class TrainConfig:
    # Data. XMem's training values (docs/training.md) unless noted; tuples are given as repeated/space-separated values.
    data: tuple[str, ...] = _opt(
        (), "dataset-layout folders (a case folder or a folder of case folders)", nargs="*", type=str
    )
    static_fraction: float = _opt(
        0.2,
        "share of clips made from deformed static images (skimage.data); the "
        "clips that no *_fraction claims come from the phantom --data cases",
    )
    real_data: tuple[str, ...] = _opt(
        (),
        "real-texture cine cases (python -m sequences.real_texture OUT --split train), "
        "drawn from with real_cine_fraction",
        nargs="*",
        type=str,
    )
    real_cine_fraction: float = _opt(0.0, "share of clips from the real_data cases")
    real_static_fraction: float = _opt(
        0.0,
        "share of clips made from deformed real slices (sequences.real_texture, "
        "train split; needs dipy, nibabel, pydicom: requirements-train.txt)",
    )
    real_structure_probability: float = _opt(
        0.3, "real static clips: share of targets that are real structures rather than painted lesions"
    )
    real_weak_fraction: float = _opt(
        0.5,
        "real static clips: share of painted lesions of weak (10-25 percent) rather "
        "than strong (40-80 percent) contrast",
    )
    crop_size: int = _opt(384, "side of the square crop view, as at inference (model.pipeline: 384)")
    min_crop_size: int = _opt(
        0,
        "draw each clip's view side from the multiples of 16 in [min_crop_size, crop_size] "
        "(needs patch_size <= min_crop_size): the tumour appears at the range of sizes "
        "that tumours of different sizes have in the inference crop (0 = always crop_size)",
    )
    patch_size: int = _opt(
        0,
        "train on a random patch of this side cut from the crop view and holding the "
        "first frame's target (0 = the whole view): inference scale at a fraction of the cost",
    )
    margin_mm: tuple[float, float] = _opt(
        (15.0, 40.0), "random crop margin around the target box (mm)", nargs=2, type=float
    )
    jitter: float = _opt(0.15, "random shift of the crop box, as a fraction of its size")
    glide: float = _opt(
        0.2,
        "the clip's content glides steadily across the crop view, by up to this fraction "
        "of its side from the first frame to the last (random direction): teaches matching "
        "by content rather than by place (0 = off)",
    )
    num_frames: int = _opt(8, "frames per clip")
    num_ref_frames: int = _opt(3, "memory frames read per query frame")
    batch_size: int = _opt(4, "clips per iteration")
    # Optimisation.
    iterations: int = _opt(10000, "total training iterations")
    lr: float = _opt(1e-5, "AdamW learning rate")
    weight_decay: float = _opt(0.05, "AdamW weight decay")
    lr_steps: tuple[int, ...] = _opt(
        (), "iterations at which the learning rate is multiplied by lr_gamma", nargs="*", type=int
    )
    lr_gamma: float = _opt(0.1, "learning-rate decay factor at each of lr_steps")
    start_warm: int = _opt(2000, "bootstrapped CE: plain CE before this iteration (XMem: 20K)")
    end_warm: int = _opt(7000, "bootstrapped CE: hardest-pixel fraction reaches 0.15 here (XMem: 70K)")
    deep_update_prob: float = _opt(0.2, "probability of a deep sensory update per memory frame")
    amp: bool = _opt(True, "mixed precision on CUDA: fp16 autocast with a gradient scaler (ignored on CPU)")
    cpu_bf16: bool = _opt(
        False,
        "bf16 autocast on CPU (about 2x faster where the CPU has AVX512-BF16 or AMX; weights and optimiser stay fp32)",
    )
    # Start and output.
    weights: str | None = _opt(None, "start from these weights (default: $TRACKRAD_XMEM_WEIGHTS, then resources/)")
    scratch: bool = _opt(False, "start from randomly initialised weights instead")
    resume: str | None = _opt(None, "continue from a training checkpoint (<out>/checkpoint.pt)")
    out: str = _opt("runs/train", "output folder: log.csv, val.csv, checkpoint.pt, network_<iter>.pth")
    device: str = _opt("auto", "cpu, cuda, cuda:N or auto")
    seed: int = _opt(0, "random seed")
    max_minutes: float = _opt(
        0.0,
        "stop after the iteration that passes this many minutes of the training "
        "loop's wall time, with a checkpoint saved as at the last iteration "
        "(0 = no limit): bounds a run's wall time; --resume continues it",
    )
    log_every: int = _opt(10, "print and log the training loss every N iterations")
    save_every: int = _opt(1000, "write checkpoint.pt and network_<iter>.pth every N iterations")
    val_data: str | None = _opt(None, "held-out dataset-layout folder validated with the official metrics")
    val_every: int = _opt(1000, "validate every N iterations (needs val_data)")
    val_cases: int = _opt(8, "at most this many validation cases")

    def __post_init__(self) -> None:
        if self.num_frames < 2 or not 1 <= self.num_ref_frames < self.num_frames:
            raise ValueError("need num_frames >= 2 and 1 <= num_ref_frames < num_frames")
        if self.crop_size < 32 or self.crop_size % 16:
            raise ValueError(f"crop_size must be a multiple of 16 and at least 32, got {self.crop_size}")
        if self.patch_size and (self.patch_size < 32 or self.patch_size % 16 or self.patch_size > self.crop_size):
            raise ValueError(f"patch_size must be 0 or a multiple of 16 in [32, crop_size], got {self.patch_size}")
        if self.min_crop_size and not (
            self.patch_size and self.patch_size <= self.min_crop_size <= self.crop_size and self.min_crop_size % 16 == 0
        ):
            raise ValueError(
                f"min_crop_size must be 0 or a multiple of 16 in [patch_size, crop_size] with a patch_size, "
                f"got {self.min_crop_size} (patch_size {self.patch_size}, crop_size {self.crop_size})"
            )
        if not 0.0 <= self.glide <= 1.0:
            raise ValueError(f"glide must be in [0, 1], got {self.glide}")
        for name in (
            "static_fraction",
            "real_static_fraction",
            "real_cine_fraction",
            "real_structure_probability",
            "real_weak_fraction",
        ):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name} must be in [0, 1], got {getattr(self, name)}")
        if self.phantom_fraction < 0.0:
            raise ValueError(
                "static_fraction + real_static_fraction + real_cine_fraction must not exceed 1, got "
                f"{self.static_fraction + self.real_static_fraction + self.real_cine_fraction:g}"
            )
        if not self.data and self.phantom_fraction > 0.0:
            raise ValueError("no --data folders given: pass some or let the *_fraction options add up to 1")
        if not self.real_data and self.real_cine_fraction > 0.0:
            raise ValueError("--real-cine-fraction needs --real-data folders (python -m sequences.real_texture)")
        if self.weights and self.scratch:
            raise ValueError("--weights and --scratch exclude each other")
        if self.max_minutes < 0:
            raise ValueError(f"max_minutes must be >= 0, got {self.max_minutes}")
        if self.end_warm < self.start_warm:
            raise ValueError("end_warm must not be before start_warm")

    @property
    def phantom_fraction(self) -> float:
        """Share of clips from the --data cases: what the other fractions leave."""
        return round(1.0 - self.static_fraction - self.real_static_fraction - self.real_cine_fraction, 9)


def build_parser() -> argparse.ArgumentParser:
    """One `--field-name` option per TrainConfig field."""
    parser = argparse.ArgumentParser(
        prog="python -m training", description="Train or fine-tune XMem on TrackRAD-layout clips."
    )
    add_settings_options(parser, TrainConfig)
    return parser


def parse_config(argv: list[str] | None = None) -> TrainConfig:
    args = vars(build_parser().parse_args(argv))
    return TrainConfig(**{k: tuple(v) if isinstance(v, list) else v for k, v in args.items()})
