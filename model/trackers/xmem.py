"""XMemTracker: the XMem inference core inside the causal, never-empty cine-MRI pipeline.

Per frame: normalise the whole frame (model.pipeline.preprocess.normalise_frame), crop the window and
resize it to crop_size x crop_size (model.pipeline.crop), replicate grey into three channels,
one InferenceCore step, paste the foreground probability back into the frame, post-process
(model.pipeline.postprocess), then let the window follow the new mask. docs/pipeline.md has the
recipes and the reasons.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar, Protocol

import numpy as np
import torch

from model.device import resolve_device
from model.pipeline.crop import CropWindow, initial_box, margin_for_region
from model.pipeline.postprocess import PostProcessor, ema_weight_for_frame_rate
from model.pipeline.preprocess import grey_to_network_channels, normalise_frame
from model.trackers import SequenceInfo, Tracker
from model.device import describe_device
from model.weights import ResolvedWeights, load_weights
from model.xmem.inference.config import InferenceConfig
from model.xmem.inference.inference_core import STRIDE, InferenceCore, resolve_precision
from model.xmem.network.checkpoint import load_network


class VideoCore(Protocol):
    """What the tracker needs from model.xmem.inference.inference_core.InferenceCore (a test may pass a double)."""

    device: torch.device
    precision: str  # fp32, bf16 or fp16 (model.xmem.inference.inference_core.resolve_precision)

    def reset(self, expected_frames: int | None = None) -> None: ...

    def step(
        self, image: torch.Tensor, mask: torch.Tensor | None = None, end: bool = False
    ) -> torch.Tensor: ...

    def predict(self, image: torch.Tensor) -> torch.Tensor: ...

    def commit(self, accept: bool = True) -> None: ...

    def shift_sensory(self, rows: float, cols: float) -> None: ...


def _auto_or_float(value: str, name: str) -> float | None:
    """None for "auto", else the number; a clear error for anything else."""
    if value.strip().lower() == "auto":
        return None
    try:
        return float(value)
    except ValueError:
        raise ValueError(f"{name} must be 'auto' or a number, got {value!r}") from None


@dataclass(frozen=True)
class XMemSettings:
    crop_size: int = field(
        default=384,
        metadata={"help": "side of the square network input in pixels (multiple of 16); "
                          "256 is the faster CPU setting"},
    )
    margin_mm: str = field(
        default="auto",
        metadata={"help": "margin around the first mask's bounding box in mm, or 'auto' "
                          "(by scanned region: pelvis/prostate 20, otherwise 30)"},
    )
    recentre_fraction: float = field(
        default=0.25,
        metadata={"help": "re-centre the crop on the last mask when its centroid is off the "
                          "crop centre by more than this fraction of the crop's half-size"},
    )
    ema_weight: str = field(
        default="auto",
        metadata={"help": "weight of the newest frame in the moving average of probabilities, "
                          "in (0, 1] (1 = no smoothing), or 'auto' = "
                          "1 - exp(-1 / (frame_rate * ema_time_constant_s))"},
    )
    ema_time_constant_s: float = field(
        default=0.1,
        metadata={"help": "smoothing time constant in seconds used by --ema-weight auto"},
    )
    threshold: float = field(
        default=0.5, metadata={"help": "threshold on the smoothed foreground probability"}
    )
    area_jump_factor: float = field(
        default=2.0,
        metadata={"help": "keep the last good mask when the new area is more than this factor "
                          "above or below the last good area"},
    )
    area_jump_patience: int = field(
        default=3,
        metadata={"help": "accept an area change after this many consecutive frames that "
                          "agree on it (a lasting change is real, a one-frame spike is not)"},
    )
    mem_every: int = field(
        default=5, metadata={"help": "XMem writes a memory frame every this many frames"}
    )
    top_k: int = field(
        default=30, metadata={"help": "XMem memory read-out keeps the top k matches per pixel"}
    )
    weights: str = field(
        default="",
        metadata={"help": "XMem weights (.pth); empty = $TRACKRAD_XMEM_WEIGHTS, else resources/"},
    )
    device: str = field(
        default="auto", metadata={"help": "torch device: auto (cuda if available), cpu, cuda, ..."}
    )
    precision: str = field(
        default="auto",
        metadata={"help": "network arithmetic: auto (fp16 autocast on CUDA, fp32 on the CPU), fp32, "
                          "bf16 (autocast; 1.6-1.7x faster on CPUs with AVX512-BF16 or AMX), "
                          "fp16 (CUDA only)"},
    )

    def __post_init__(self) -> None:
        if self.crop_size < STRIDE or self.crop_size % STRIDE:
            raise ValueError(f"crop_size must be a positive multiple of {STRIDE}, got {self.crop_size}")
        margin = _auto_or_float(self.margin_mm, "margin_mm")
        if margin is not None and margin < 0:
            raise ValueError(f"margin_mm must be >= 0, got {margin}")
        weight = _auto_or_float(self.ema_weight, "ema_weight")
        if weight is not None and not 0.0 < weight <= 1.0:
            raise ValueError(f"ema_weight must be in (0, 1], got {weight}")
        if self.ema_time_constant_s < 0:
            raise ValueError(f"ema_time_constant_s must be >= 0, got {self.ema_time_constant_s}")
        if not 0.0 < self.recentre_fraction <= 1.0:
            raise ValueError(f"recentre_fraction must be in (0, 1], got {self.recentre_fraction}")
        if not 0.0 < self.threshold < 1.0:
            raise ValueError(f"threshold must be in (0, 1), got {self.threshold}")
        if self.area_jump_factor <= 1.0:
            raise ValueError(f"area_jump_factor must be > 1, got {self.area_jump_factor}")
        if self.area_jump_patience < 1:
            raise ValueError(f"area_jump_patience must be at least 1, got {self.area_jump_patience}")
        resolve_precision(self.precision, self.torch_device())  # bad device/precision now, not after loading weights
        self.inference_config()  # mem_every / top_k range checks

    def inference_config(self) -> InferenceConfig:
        # Long-term usage is always counted: deciding it from the sequence length (XMem's
        # default) would make early frames depend on how many frames follow.
        return InferenceConfig(
            top_k=self.top_k, mem_every=self.mem_every, enable_long_term_count_usage=True
        )

    def torch_device(self) -> torch.device:
        return resolve_device(self.device)

    def margin_for(self, info: SequenceInfo) -> float:
        margin = _auto_or_float(self.margin_mm, "margin_mm")
        return margin_for_region(info.scanned_region) if margin is None else margin

    def ema_weight_for(self, info: SequenceInfo) -> float:
        weight = _auto_or_float(self.ema_weight, "ema_weight")
        if weight is None:
            return ema_weight_for_frame_rate(info.frame_rate, self.ema_time_constant_s)
        return weight


def build_core(network: torch.nn.Module, settings: XMemSettings) -> VideoCore:
    """An InferenceCore for the network, on the network's device, configured by the settings."""
    device = next(network.parameters()).device
    return InferenceCore(
        network.eval(), settings.inference_config(), device=device, precision=settings.precision
    )


class XMemTracker(Tracker):
    """XMem with sparse memory updates, run on a crop that follows the tumour.

    Build it with settings (loads the weights resolved by model.weights), with
    `from_network` (an in-memory network, e.g. during training), or with a ready core.
    """

    name = "xmem"
    Settings: ClassVar[type] = XMemSettings

    def __init__(self, settings: XMemSettings | None = None, core: VideoCore | None = None) -> None:
        self._settings = settings if settings is not None else XMemSettings()
        self._weights: ResolvedWeights | None = None
        if core is None:
            self._weights, state_dict = load_weights(self._settings.weights or None)
            core = build_core(load_network(state_dict, device=self._settings.torch_device()), self._settings)
        self._core = core
        self._window: CropWindow | None = None
        self._post: PostProcessor | None = None
        self._resolved: dict[str, Any] = {}
        self._recentred = 0

    @classmethod
    def from_network(cls, network: torch.nn.Module, settings: XMemSettings | None = None) -> XMemTracker:
        """A tracker around an XMem network already built (e.g. during training)."""
        settings = settings if settings is not None else XMemSettings()
        return cls(settings, core=build_core(network, settings))

    def start(self, first_frame: np.ndarray, first_mask: np.ndarray, info: SequenceInfo) -> None:
        settings = self._settings
        first_mask = np.asarray(first_mask, dtype=bool)
        margin_mm = settings.margin_for(info)
        ema_weight = settings.ema_weight_for(info)
        box = initial_box(first_mask, info.pixel_spacing_mm, margin_mm)
        self._window = CropWindow(box, first_mask.shape, settings.crop_size)
        self._post = PostProcessor(
            first_mask, ema_weight, settings.threshold, settings.area_jump_factor, settings.area_jump_patience
        )
        self._probability = np.zeros(first_mask.shape, dtype=np.float32)
        self._recentred = 0
        self._resolved = {
            "margin_mm": margin_mm,
            "ema_weight": ema_weight,
            "crop_box_size_px": list(box.size),
        }
        # No expected frame count: the memory must not depend on how long the sequence is.
        self._core.reset()
        network_mask = torch.from_numpy(self._window.crop_mask(first_mask).astype(np.float32))
        self._core.step(self._network_input(first_frame), network_mask.to(self._core.device))

    def track(self, frame: np.ndarray) -> np.ndarray:
        if self._window is None or self._post is None:
            raise RuntimeError("XMemTracker.track called before start")
        probabilities = self._core.predict(self._network_input(frame))
        foreground = probabilities[1].float().cpu().numpy()
        self._probability.fill(0.0)
        self._window.paste(foreground, self._probability)
        mask = self._post(self._probability)
        # A prediction the post-processing rejected must not become memory: it would teach
        # XMem the wrong target for every later frame.
        self._core.commit(accept=not self._post.fell_back)
        # The window moves for the next frame only: this frame's crop is already used.
        moved = self._window.follow(mask, self._settings.recentre_fraction)
        if moved is not None:
            self._recentred += 1
            self._core.shift_sensory(*moved)
        return mask

    def _network_input(self, frame: np.ndarray) -> torch.Tensor:
        """Whole-frame normalisation (statistics do not change when the crop moves), crop,
        grey -> 3 channels. Outside the frame is padded with the frame's darkest value."""
        normalised = normalise_frame(frame)
        crop = self._window.crop(normalised, pad_value=float(normalised.min()))
        return grey_to_network_channels(torch.from_numpy(crop).to(self._core.device), channel_dim=0)

    def settings(self) -> dict[str, Any]:
        return {"resolved": dict(self._resolved)}

    def describe(self) -> dict[str, str]:
        weights = self._weights
        return {
            "weights": str(weights.path) if weights else "(in memory)",
            "weights_kind": weights.kind if weights else "user",
            "weights_sha256": weights.sha256 if weights else "",
            "weights_source": weights.source if weights else "",
            "device": describe_device(self._core.device),
            "precision": self._core.precision,
            "torch": torch.__version__,
            "cuda": torch.version.cuda or "none",
        }

    def events(self) -> dict[str, int]:
        counts = self._post.events() if self._post is not None else {}
        return {**counts, "crop_recentred": self._recentred}
