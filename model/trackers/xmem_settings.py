"""XMemSettings: the XMem tracker's settings, in groups that each check their own values.

- window: the crop the network sees and the grid it is resized to (model.pipeline.crop);
- output: smoothing, threshold and the area-jump guard (model.pipeline.postprocess);
- motion: the dense flow and the parts that use it (model.pipeline.motion, .arbitration);
- arbitration: when the flow may judge and how far the network is trusted
  (model.pipeline.arbitration.ArbitrationSettings);
- guards: the slow-failure guards and what a rejected frame outputs
  (model.pipeline.postprocess.GuardSettings);
- network: the weights, the device, the arithmetic and XMem's memory.

Users name each setting by its own name (`--prior-weight`, `xmem[prior-weight=0.5]`, a settings
file's "prior_weight"); the code reads it from its group (`settings.motion.prior_weight`).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from dataclasses import dataclass, field

import torch

from model.device import resolve_device
from model.pipeline.arbitration import FUSION_RULES, ArbitrationSettings
from model.pipeline.crop import CropBox, margin_for_region
from model.pipeline.motion import MaskFlow
from model.pipeline.postprocess import NO_GUARDS, GuardSettings, ema_weight_for_frame_rate
from model.settings import AUTO, AutoFloat, AutoInt, GroupedSettings, auto_or_float, auto_or_int, group
from model.trackers.base import SequenceInfo
from model.xmem.inference.config import InferenceConfig
from model.xmem.inference.inference_core import STRIDE, resolve_precision

MOTION_REFERENCES = ("off", *MaskFlow.REFERENCES)
# The largest grid --crop-size auto picks: the scale the network was trained at.
MAX_AUTO_GRID = 384
MOTION_PRIOR_RULES = ("off", *FUSION_RULES)


def _parse_auto(settings: object, parsers: dict[str, Callable[[object], object]]) -> None:
    for name, parse in parsers.items():
        try:  # "12" (a settings file, a test) becomes 12
            object.__setattr__(settings, name, parse(getattr(settings, name)))
        except ValueError as error:
            raise ValueError(f"{name}: {error}") from None


@dataclass(frozen=True)
class WindowSettings:
    """The crop window around the target and the network grid it is resized to."""

    crop_size: AutoInt = field(
        default=AUTO,
        metadata={
            "help": "side of the square network input in pixels (a multiple of 16), or 'auto': "
            "grid_scale network pixels per pixel of the window at frame 0, between grid_min and "
            f"{MAX_AUTO_GRID}"
        },
    )
    grid_scale: float = field(
        default=2.0,
        metadata={"help": "--crop-size auto: network pixels per frame pixel of the crop window's longer side"},
    )
    grid_min: int = field(
        default=224,
        metadata={"help": f"--crop-size auto: the smallest grid (a multiple of 16, at most {MAX_AUTO_GRID})"},
    )
    margin_mm: AutoFloat = field(
        default=AUTO,
        metadata={
            "help": "margin around the first mask's bounding box in mm, or 'auto' "
            "(by scanned region: pelvis/prostate 20, otherwise 30)"
        },
    )
    recentre_fraction: float = field(
        default=0.25,
        metadata={
            "help": "re-centre the crop on the last mask when its centroid is off the "
            "crop centre by more than this fraction of the crop's half-size"
        },
    )

    def __post_init__(self) -> None:
        _parse_auto(self, {"crop_size": auto_or_int, "margin_mm": auto_or_float})
        if self.crop_size != AUTO and (self.crop_size < STRIDE or self.crop_size % STRIDE):
            raise ValueError(f"crop_size must be 'auto' or a positive multiple of {STRIDE}, got {self.crop_size}")
        if self.grid_scale <= 0:
            raise ValueError(f"grid_scale must be > 0, got {self.grid_scale}")
        if self.grid_min < STRIDE or self.grid_min % STRIDE or self.grid_min > MAX_AUTO_GRID:
            raise ValueError(
                f"grid_min must be a multiple of {STRIDE} in [{STRIDE}, {MAX_AUTO_GRID}], got {self.grid_min}"
            )
        if self.margin_mm != AUTO and self.margin_mm < 0:
            raise ValueError(f"margin_mm must be >= 0, got {self.margin_mm}")
        if not 0.0 < self.recentre_fraction <= 1.0:
            raise ValueError(f"recentre_fraction must be in (0, 1], got {self.recentre_fraction}")

    def grid_for(self, box: CropBox) -> int:
        """The network grid's side for a sequence whose window is `box`: crop_size, or with
        'auto' grid_scale x the box's longer side rounded up to a multiple of the stride, between
        grid_min and MAX_AUTO_GRID. One grid per sequence: keys at two scales do not match."""
        if self.crop_size != AUTO:
            return self.crop_size
        side = math.ceil(self.grid_scale * max(box.size) / STRIDE) * STRIDE
        return max(self.grid_min, min(MAX_AUTO_GRID, side))

    def margin_for(self, info: SequenceInfo) -> float:
        return margin_for_region(info.scanned_region) if self.margin_mm == AUTO else self.margin_mm


@dataclass(frozen=True)
class OutputSettings:
    """From the network's probability to the frame's mask: smoothing, threshold, area jumps."""

    ema_weight: AutoFloat = field(
        default=AUTO,
        metadata={
            "help": "weight of the newest frame in the moving average of probabilities, "
            "in (0, 1] (1 = no smoothing), or 'auto' = "
            "1 - exp(-1 / (frame_rate * ema_time_constant_s))"
        },
    )
    ema_time_constant_s: float = field(
        default=0.0,
        metadata={
            "help": "smoothing time constant in seconds used by --ema-weight auto "
            "(0 = no smoothing: a moving average lags the target)"
        },
    )
    threshold: float = field(default=0.5, metadata={"help": "threshold on the smoothed foreground probability"})
    area_jump_factor: float = field(
        default=2.0,
        metadata={
            "help": "keep the last good mask when the new area is more than this factor "
            "above or below the last good area"
        },
    )
    area_jump_patience: int = field(
        default=3,
        metadata={
            "help": "accept an area change after this many consecutive frames that "
            "agree on it (a lasting change is real, a one-frame spike is not)"
        },
    )

    def __post_init__(self) -> None:
        _parse_auto(self, {"ema_weight": auto_or_float})
        if self.ema_weight != AUTO and not 0.0 < self.ema_weight <= 1.0:
            raise ValueError(f"ema_weight must be in (0, 1], got {self.ema_weight}")
        if self.ema_time_constant_s < 0:
            raise ValueError(f"ema_time_constant_s must be >= 0, got {self.ema_time_constant_s}")
        if not 0.0 < self.threshold < 1.0:
            raise ValueError(f"threshold must be in (0, 1), got {self.threshold}")
        if self.area_jump_factor <= 1.0:
            raise ValueError(f"area_jump_factor must be > 1, got {self.area_jump_factor}")
        if self.area_jump_patience < 1:
            raise ValueError(f"area_jump_patience must be at least 1, got {self.area_jump_patience}")

    def ema_weight_for(self, info: SequenceInfo) -> float:
        if self.ema_weight == AUTO:
            return ema_weight_for_frame_rate(info.frame_rate, self.ema_time_constant_s)
        return self.ema_weight


@dataclass(frozen=True)
class MotionSettings:
    """The dense flow and how it places the window, enters the map and aligns it."""

    motion: str = field(
        default="first-frame",
        metadata={
            "help": "dense flow (DIS) on the whole frame, once per frame, that the "
            "motion parts below use: first-frame (frame t to frame 0, pulls the "
            "first mask), previous-frame (t to t-1, pulls the last output), or off "
            "(XMem alone: every motion part off)"
        },
    )
    motion_crop: bool = field(
        default=True,
        metadata={
            "help": "place the crop from the flow's estimate of the target before XMem "
            "runs (else from the previous output)"
        },
    )
    motion_prior: str = field(
        default="confidence",
        metadata={
            "help": "fuse XMem's probability with the flow-propagated mask: off, fixed "
            "(weighted mean), confidence (weights scaled by XMem's probability "
            "margin and the flow's forward-backward consistency)"
        },
    )
    prior_weight: float = field(default=0.3, metadata={"help": "weight of the flow prior in the fusion, in [0, 1]"})
    align_max_px: float = field(
        default=2.0,
        metadata={
            "help": "on frames the flow can judge, move XMem's probability map so that its target's "
            "centroid is the flow's centre of the target, when they are at most this many pixels "
            "apart (and within --max-flow-shift when that guard is on; 0 = off)"
        },
    )
    flow_centre: str = field(
        default="two-way",
        metadata={
            "help": "the flow's estimate of the target's centroid that --align-max-px aligns "
            "to: pulled (the flow-propagated mask's centroid) or two-way (its mean with the "
            "reference mask's centroid pushed along the backward flow)"
        },
    )

    def __post_init__(self) -> None:
        if self.motion not in MOTION_REFERENCES:
            raise ValueError(f"motion must be one of {MOTION_REFERENCES}, got {self.motion!r}")
        if self.motion_prior not in MOTION_PRIOR_RULES:
            raise ValueError(f"motion_prior must be one of {MOTION_PRIOR_RULES}, got {self.motion_prior!r}")
        if not 0.0 <= self.prior_weight <= 1.0:
            raise ValueError(f"prior_weight must be in [0, 1], got {self.prior_weight}")
        if self.align_max_px < 0:
            raise ValueError(f"align_max_px must be >= 0, got {self.align_max_px}")
        if self.flow_centre not in MaskFlow.CENTRES:
            raise ValueError(f"flow_centre must be one of {MaskFlow.CENTRES}, got {self.flow_centre!r}")


@dataclass(frozen=True)
class NetworkSettings:
    """The network: its weights, where and in which arithmetic it runs, and its memory."""

    mem_every: int = field(default=5, metadata={"help": "XMem writes a memory frame every this many frames"})
    top_k: int = field(default=30, metadata={"help": "XMem memory read-out keeps the top k matches per pixel"})
    weights: str = field(
        default="",
        metadata={"help": "XMem weights (.pth); empty = $TRACKRAD_XMEM_WEIGHTS, else resources/"},
    )
    device: str = field(default="auto", metadata={"help": "torch device: auto (cuda if available), cpu, cuda, ..."})
    precision: str = field(
        default="auto",
        metadata={
            "help": "network arithmetic: auto (fp16 autocast on CUDA; on the CPU bf16 autocast "
            "where the CPU has native bf16, AVX512-BF16 or AMX, else fp32), fp32, bf16, "
            "fp16 (CUDA only)"
        },
    )
    frozen_graphs: bool = field(
        default=True,
        metadata={
            "help": "on the CPU in fp32, run the key encoder and the decoder as frozen graphs "
            "(BatchNorm folded into the convolutions, oneDNN weight layouts): faster, traced on "
            "the first frames of a sequence"
        },
    )

    def __post_init__(self) -> None:
        resolve_precision(self.precision, self.torch_device())  # bad device/precision now, not after loading weights
        self.inference_config()  # mem_every / top_k range checks

    def inference_config(self) -> InferenceConfig:
        # Long-term usage is always counted: deciding it from the sequence length (XMem's
        # default) would make early frames depend on how many frames follow.
        return InferenceConfig(top_k=self.top_k, mem_every=self.mem_every, enable_long_term_count_usage=True)

    def torch_device(self) -> torch.device:
        return resolve_device(self.device)


@dataclass(frozen=True)
class MotionParts:
    """Which motion parts run for a sequence (docs/pipeline.md, "Motion parts")."""

    crop: bool = False  # the flow places the window
    prior: bool = False  # the flow's mask is fused into the network's map
    trust: bool = False  # the network's agreement with a credible flow steers the parts below
    align: bool = False  # the map is moved onto the flow's centre
    guards: bool = False  # the slow-failure guards judge the output against the flow mask
    fallback: bool = False  # a rejected frame outputs the flow mask

    def names(self) -> list[str]:
        """The parts that run, in order (the report's motion_parts)."""
        return [part.name for part in dataclasses.fields(self) if getattr(self, part.name)]


@dataclass(frozen=True, init=False)
class XMemSettings(GroupedSettings):
    """Every setting of the XMem tracker, by group (module docstring); built from the settings
    by name: `XMemSettings(prior_weight=0.5, device="cpu")`."""

    window: WindowSettings = group(WindowSettings)
    output: OutputSettings = group(OutputSettings)
    motion: MotionSettings = group(MotionSettings)
    arbitration: ArbitrationSettings = group(ArbitrationSettings)
    guards: GuardSettings = group(GuardSettings)
    network: NetworkSettings = group(NetworkSettings)

    def motion_parts(self) -> MotionParts:
        """The motion parts that run (none when motion is off)."""
        motion = self.motion
        if motion.motion == "off":
            return MotionParts()
        prior, align, guards = motion.motion_prior != "off", motion.align_max_px > 0, not self.guards.off
        return MotionParts(
            crop=motion.motion_crop,
            prior=prior,
            # The trust steers the fusion, the alignment and the guards: alone it does nothing.
            trust=self.arbitration.trust_floor > 0 and (prior or align or guards),
            align=align,
            guards=guards,
            fallback=self.guards.flow_fallback,
        )

    def active_guards(self) -> GuardSettings:
        """The guards as they run: all off when motion is off (they judge against the flow)."""
        if self.motion.motion == "off":
            return NO_GUARDS
        return self.guards
