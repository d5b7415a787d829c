"""XMemTracker: the XMem inference core inside the causal, never-empty cine-MRI pipeline.

Per frame: normalise the whole frame (model.pipeline.preprocess.normalise_frame), crop the window and
resize it to the network grid (crop_size, or chosen from the window at frame 0), replicate grey into three channels,
one InferenceCore step, paste the foreground probability back into the frame, post-process
(model.pipeline.postprocess), then let the window follow the new mask. docs/pipeline.md has the
recipes and the reasons.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, ClassVar, Protocol

import numpy as np
import torch

from model.device import describe_device, resolve_device
from model.pipeline.arbitration import (
    FUSION_RULES,
    ArbitrationSettings,
    NetworkTrust,
    WindowSearch,
    align_to_flow,
    flow_is_credible,
    fuse_with_prior,
)
from model.pipeline.crop import CropBox, CropWindow, initial_box, margin_for_region
from model.pipeline.masks import mask_centroid
from model.pipeline.motion import MaskFlow
from model.pipeline.postprocess import PostProcessor, SlowFailureGuards, ema_weight_for_frame_rate
from model.pipeline.preprocess import grey_to_network_channels, normalise_frame
from model.settings import AUTO, AutoFloat, AutoInt, auto_or_float, auto_or_int
from model.trackers import SequenceInfo, Tracker
from model.weights import ResolvedWeights, load_weights
from model.xmem.inference.config import InferenceConfig
from model.xmem.inference.inference_core import STRIDE, InferenceCore, resolve_precision
from model.xmem.network.checkpoint import load_network

MOTION_REFERENCES = ("off", *MaskFlow.REFERENCES)
# The largest grid --crop-size auto picks: the scale the network was trained at.
MAX_AUTO_GRID = 384
MOTION_PRIOR_RULES = ("off", *FUSION_RULES)


class VideoCore(Protocol):
    """What the tracker needs from model.xmem.inference.inference_core.InferenceCore (a test may pass a double)."""

    device: torch.device
    precision: str  # fp32, bf16 or fp16 (model.xmem.inference.inference_core.resolve_precision)
    path: str  # the precision, and the CPU's fast path when it runs

    def reset(self, expected_frames: int | None = None) -> None: ...

    def step(self, image: torch.Tensor, mask: torch.Tensor | None = None, end: bool = False) -> torch.Tensor: ...

    def predict(self, image: torch.Tensor) -> torch.Tensor: ...

    def commit(self, accept: bool = True) -> None: ...

    def shift_sensory(self, rows: float, cols: float) -> None: ...


@dataclass(frozen=True)
class XMemSettings:
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
    trust_floor: float = field(
        default=0.7,
        metadata={
            "help": "the network's trust: the running mean agreement of its outline with the "
            "flow mask's (surface DSC within --agreement-tolerance-px) on the frames where the "
            "flow is credible, mapped from [floor, 1] to [0, 1]; it scales the network's weight "
            "in the fusion, how far the alignment defers to the flow and the centroid guard's "
            "leeway (0 = off: full weight, full alignment, no leeway)"
        },
    )
    agreement_tolerance_px: float = field(
        default=1.0, metadata={"help": "outlines of the network's and the flow's masks closer than this agree"}
    )
    trust_memory: int = field(
        default=0,
        metadata={
            "help": "the trust's mean reaches back about this many frames where the flow is "
            "credible (an exponential mean; 0 = every such frame so far)"
        },
    )
    flow_credible: float = field(
        default=0.9,
        metadata={
            "help": "the flow judges a frame (trust, guards, fallback, crop) only when its forward-"
            "backward consistency around the flow mask's outline reaches this (0 = always)"
        },
    )
    flow_max_residual: float = field(
        default=1.5,
        metadata={
            "help": "... and when the image residual it leaves around that outline is at most this "
            "many times the residual a few pixels farther out (0 = no residual test)"
        },
    )
    guard_leeway: float = field(
        default=0.3,
        metadata={"help": "first-mask radii added to --max-flow-shift at full trust"},
    )
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
    first_area_factor: float = field(
        default=0.0,
        metadata={"help": "reject a mask whose area is more than this factor away from the first mask's (0 = off)"},
    )
    min_flow_dice: float = field(
        default=0.0,
        metadata={"help": "reject a mask whose DSC with the flow-propagated mask is below this (0 = off)"},
    )
    max_flow_shift: float = field(
        default=0.1,
        metadata={
            "help": "reject a mask whose centroid is farther from the flow-propagated "
            "mask's than this many first-mask equivalent radii (0 = off)"
        },
    )
    flow_fallback: bool = field(
        default=True,
        metadata={
            "help": "a rejected frame outputs the flow-propagated mask (moves with the "
            "target) instead of repeating the last accepted mask"
        },
    )
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
        for name, parse in (("crop_size", auto_or_int), ("margin_mm", auto_or_float), ("ema_weight", auto_or_float)):
            try:  # "12" (a settings file, a test) becomes 12
                object.__setattr__(self, name, parse(getattr(self, name)))
            except ValueError as error:
                raise ValueError(f"{name}: {error}") from None
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
        if self.ema_weight != AUTO and not 0.0 < self.ema_weight <= 1.0:
            raise ValueError(f"ema_weight must be in (0, 1], got {self.ema_weight}")
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
        if self.motion not in MOTION_REFERENCES:
            raise ValueError(f"motion must be one of {MOTION_REFERENCES}, got {self.motion!r}")
        if self.flow_centre not in MaskFlow.CENTRES:
            raise ValueError(f"flow_centre must be one of {MaskFlow.CENTRES}, got {self.flow_centre!r}")
        if self.motion_prior not in MOTION_PRIOR_RULES:
            raise ValueError(f"motion_prior must be one of {MOTION_PRIOR_RULES}, got {self.motion_prior!r}")
        if not 0.0 <= self.prior_weight <= 1.0:
            raise ValueError(f"prior_weight must be in [0, 1], got {self.prior_weight}")
        if not 0.0 <= self.trust_floor < 1.0:
            raise ValueError(f"trust_floor must be in [0, 1), got {self.trust_floor}")
        if self.trust_memory < 0:
            raise ValueError(f"trust_memory must be >= 0, got {self.trust_memory}")
        if self.agreement_tolerance_px <= 0:
            raise ValueError(f"agreement_tolerance_px must be > 0, got {self.agreement_tolerance_px}")
        if not 0.0 <= self.flow_credible <= 1.0:
            raise ValueError(f"flow_credible must be in [0, 1], got {self.flow_credible}")
        if self.flow_max_residual < 0:
            raise ValueError(f"flow_max_residual must be >= 0, got {self.flow_max_residual}")
        if self.guard_leeway < 0:
            raise ValueError(f"guard_leeway must be >= 0, got {self.guard_leeway}")
        if self.first_area_factor and self.first_area_factor <= 1.0:
            raise ValueError(f"first_area_factor must be 0 (off) or > 1, got {self.first_area_factor}")
        if self.align_max_px < 0:
            raise ValueError(f"align_max_px must be >= 0, got {self.align_max_px}")
        if not 0.0 <= self.min_flow_dice <= 1.0:
            raise ValueError(f"min_flow_dice must be in [0, 1], got {self.min_flow_dice}")
        if self.max_flow_shift < 0:
            raise ValueError(f"max_flow_shift must be >= 0, got {self.max_flow_shift}")
        resolve_precision(self.precision, self.torch_device())  # bad device/precision now, not after loading weights
        self.inference_config()  # mem_every / top_k range checks

    def inference_config(self) -> InferenceConfig:
        # Long-term usage is always counted: deciding it from the sequence length (XMem's
        # default) would make early frames depend on how many frames follow.
        return InferenceConfig(top_k=self.top_k, mem_every=self.mem_every, enable_long_term_count_usage=True)

    def torch_device(self) -> torch.device:
        return resolve_device(self.device)

    def motion_parts(self) -> list[str]:
        """The motion parts in use (none when motion is off)."""
        if self.motion == "off":
            return []
        parts = {
            "crop": self.motion_crop,
            "prior": self.motion_prior != "off",
            # The trust steers the fusion, the alignment and the guards: alone it does nothing.
            "trust": self.trust_floor > 0
            and (self.motion_prior != "off" or self.align_max_px > 0 or not self.guards().off),
            "align": self.align_max_px > 0,
            "guards": not self.guards().off,
            "fallback": self.flow_fallback,
        }
        return [name for name, on in parts.items() if on]

    def guards(self) -> SlowFailureGuards:
        """The slow-failure guards (all off when motion is off: they judge against the flow)."""
        if self.motion == "off":
            return SlowFailureGuards()
        return SlowFailureGuards(self.first_area_factor, self.min_flow_dice, self.max_flow_shift)

    def arbitration(self) -> ArbitrationSettings:
        """The arbitration's thresholds (model.pipeline.arbitration)."""
        return ArbitrationSettings(
            self.trust_floor,
            self.agreement_tolerance_px,
            self.trust_memory,
            self.flow_credible,
            self.flow_max_residual,
            self.guard_leeway,
        )

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

    def ema_weight_for(self, info: SequenceInfo) -> float:
        if self.ema_weight == AUTO:
            return ema_weight_for_frame_rate(info.frame_rate, self.ema_time_constant_s)
        return self.ema_weight


def build_core(network: torch.nn.Module, settings: XMemSettings) -> VideoCore:
    """An InferenceCore for the network, on the network's device, configured by the settings."""
    device = next(network.parameters()).device
    return InferenceCore(
        network.eval(),
        settings.inference_config(),
        device=device,
        precision=settings.precision,
        frozen_graphs=settings.frozen_graphs,
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
        # Per-sequence state, set by `start`.
        self._window: CropWindow | None = None
        self._post: PostProcessor | None = None
        self._parts: list[str] = []
        self._probability = np.zeros((0, 0), np.float32)  # the network's map pasted into the frame
        self._align_limit = 0.0
        self._resolved: dict[str, Any] = {}
        self._flow: MaskFlow | None = None
        self._trust: NetworkTrust | None = None
        self._search = WindowSearch((1, 1))
        self._redetected = False  # found by the search: the flow must find it again before it judges
        # Event counters.
        self._recentred = 0
        self._aligned = 0
        self._flow_unjudged = 0

    @classmethod
    def from_network(cls, network: torch.nn.Module, settings: XMemSettings | None = None) -> XMemTracker:
        """A tracker around an XMem network already built (e.g. during training)."""
        settings = settings if settings is not None else XMemSettings()
        return cls(settings, core=build_core(network, settings))

    @property
    def window(self) -> CropWindow:
        """The crop window the network sees this frame through (set by `start`)."""
        if self._window is None:
            raise RuntimeError("XMemTracker.window read before start")
        return self._window

    def start(self, first_frame: np.ndarray, first_mask: np.ndarray, info: SequenceInfo) -> None:
        settings = self._settings
        first_mask = np.asarray(first_mask, dtype=bool)
        margin_mm = settings.margin_for(info)
        ema_weight = settings.ema_weight_for(info)
        box = initial_box(first_mask, info.pixel_spacing_mm, margin_mm)
        grid = settings.grid_for(box)
        self._window = CropWindow(box, first_mask.shape, grid)
        self._parts = settings.motion_parts()
        self._post = PostProcessor(
            first_mask,
            ema_weight,
            settings.threshold,
            settings.area_jump_factor,
            settings.area_jump_patience,
            settings.guards(),
            flow_fallback="fallback" in self._parts,
        )
        self._probability = np.zeros(first_mask.shape, dtype=np.float32)
        self._recentred = 0
        self._aligned = 0
        # A gap the centroid guard would reject is a disagreement, not a placement error:
        # aligning it away would hide a slow failure from the guard.
        self._align_limit = settings.align_max_px
        if settings.max_flow_shift:
            radius = math.sqrt(np.count_nonzero(first_mask) / math.pi)
            self._align_limit = min(self._align_limit, settings.max_flow_shift * radius)
        self._resolved = {
            "margin_mm": margin_mm,
            "ema_weight": ema_weight,
            "crop_box_size_px": list(box.size),
            "grid_px": grid,
            "motion_parts": list(self._parts),
            "align_limit_px": self._align_limit if "align" in self._parts else 0.0,
        }
        # No expected frame count: the memory must not depend on how long the sequence is.
        self._core.reset()
        normalised = normalise_frame(first_frame)
        self._flow = None
        self._trust = None
        self._flow_unjudged = 0
        self._search = WindowSearch(box.size)
        self._redetected = False
        if "trust" in self._parts:
            self._trust = NetworkTrust(settings.trust_floor, settings.agreement_tolerance_px, settings.trust_memory)
        if self._parts:
            self._flow = MaskFlow(
                settings.motion,
                backward_check=settings.motion_prior == "confidence" or settings.flow_credible > 0,
                centre=settings.flow_centre,
            )
            self._flow.start(first_frame, first_mask)
        network_mask = torch.from_numpy(self._window.crop_mask(first_mask).astype(np.float32))
        self._core.step(self._network_input(normalised), network_mask.to(self._core.device))

    def track(self, frame: np.ndarray) -> np.ndarray:
        if self._window is None or self._post is None:
            raise RuntimeError("XMemTracker.track called before start")
        settings = self._settings
        normalised = normalise_frame(frame)
        motion = self._flow.estimate(frame) if self._flow is not None else None
        # The flow judges this frame (trust, crop, alignment) only when it is credible by its
        # own evidence.
        credible = motion is not None and flow_is_credible(motion, settings.flow_credible, settings.flow_max_residual)
        self._flow_unjudged += motion is not None and not credible
        self._redetected &= not credible
        searching = self._search.active
        window_with_flow = credible and "crop" in self._parts and not searching
        if searching:
            self._move_window(self._window.centre_on(self._search.next_centre()))
        elif window_with_flow:
            # Box-level propagation: the window goes to where the flow puts the target now,
            # before the network sees this frame.
            self._follow(motion.mask)
        probabilities = self._core.predict(self._network_input(normalised))
        foreground = probabilities[1].float().cpu().numpy()
        self._probability.fill(0.0)
        self._window.paste(foreground, self._probability)
        # The network's own mask: the trust and the memory decision below judge it.
        network_mask = self._probability > settings.threshold
        found = self._look_for_lost_target(network_mask, credible) if motion is not None else False
        trust = 1.0
        if self._trust is not None and motion is not None:
            trust = self._trust.update(network_mask, motion.mask, credible)
        fused = self._probability
        if motion is not None and "prior" in self._parts:
            covered = np.zeros(self._probability.shape, bool)
            covered[self._window.frame_slices] = True
            fused = fuse_with_prior(
                fused, covered, motion.prior, motion.confidence, settings.prior_weight, settings.motion_prior, trust
            )
        if credible and "align" in self._parts:
            # On a frame the flow can judge, its two-way centre places the target more precisely
            # than the project's weights do, and costs a right network little (docs/pipeline.md).
            fused, moved = align_to_flow(fused, self._post.last_mask, motion.centre, self._align_limit)
            self._aligned += moved
        # The guards always see the flow mask: a jump of the network's target far from where the
        # flow puts it is implausible whatever the flow's credibility. The leeway is what the
        # network has earned, in full on frames the flow cannot judge.
        judge = motion is not None and not self._redetected and ("guards" in self._parts or "fallback" in self._parts)
        flow_mask = motion.mask if judge else None
        leeway = 0.0
        if self._trust is not None:
            leeway = settings.guard_leeway * (trust if credible else 1.0)
        mask = self._post(fused, flow_mask, leeway)
        # A prediction the post-processing rejected must not become memory: it would teach
        # XMem the wrong target for every later frame. The memory is written from the
        # network's own prediction, so with the fused prior that one is judged too (the fusion
        # can pull a creeping map back into line while the network keeps creeping).
        accept = not self._post.fell_back
        if accept and "prior" in self._parts:
            accept = self._post.passes_guards(network_mask, flow_mask, leeway)
        self._core.commit(accept=accept)
        if self._flow is not None:
            self._flow.advance(mask)
        # The window moves for the next frame only: this frame's crop is already used.
        if found:
            self._move_window(self._window.centre_on(mask_centroid(network_mask)))
        elif not window_with_flow and not self._search.active:
            self._follow(mask)
        return mask

    def _look_for_lost_target(self, network_mask: np.ndarray, flow_credible: bool) -> bool:
        """Re-detection: start searching when the network sees nothing and the flow cannot say
        where the target went; stop when the network sees it again, and let the flow search
        from there (it is not a judge until it is credible again). Whether it was found now."""
        if self._search.active:
            if not network_mask.any():
                return False
            self._search.stop()
            self._redetected = not flow_credible
            self._flow.search_from(network_mask)
            return True
        if not network_mask.any() and not flow_credible:
            self._search.start(mask_centroid(self._post.last_mask))
        return False

    def _follow(self, mask: np.ndarray) -> None:
        self._move_window(self._window.follow(mask, self._settings.recentre_fraction))

    def _move_window(self, moved: tuple[float, float] | None) -> None:
        if moved is not None:
            self._recentred += 1
            self._core.shift_sensory(*moved)

    def _network_input(self, normalised: np.ndarray) -> torch.Tensor:
        """Crop of the normalised frame (whole-frame statistics do not change when the crop
        moves), grey -> 3 channels. Outside the frame is padded with the frame's darkest value."""
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
            "network_path": self._core.path,
            "torch": torch.__version__,
            "cuda": torch.version.cuda or "none",
        }

    def events(self) -> dict[str, int]:
        counts = self._post.events() if self._post is not None else {}
        return {
            **counts,
            "crop_recentred": self._recentred,
            "aligned_to_flow": self._aligned,
            "network_untrusted": self._trust.untrusted_frames if self._trust is not None else 0,
            "flow_not_credible": self._flow_unjudged,
            "target_searched": self._search.searches,
        }
