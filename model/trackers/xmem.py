"""XMemTracker: the XMem inference core inside the causal, never-empty cine-MRI pipeline.

Per frame: normalise the whole frame (model.pipeline.preprocess.normalise_frame), crop the window and
resize it to the network grid (crop_size, or chosen from the window at frame 0), replicate grey into three channels,
one InferenceCore step, paste the foreground probability back into the frame, post-process
(model.pipeline.postprocess), then let the window follow the new mask. docs/pipeline.md has the
recipes and the reasons.
"""

from __future__ import annotations

import math
from typing import Any, ClassVar, Protocol

import numpy as np
import torch

from model.device import describe_device
from model.pipeline.arbitration import (
    SAME_PLACE_RADII,
    SMALL_TARGET_RADIUS_PX,
    STEADY_OFFSET_LEAST_RADII,
    NetworkTrust,
    SteadyOffset,
    SustainedGrowth,
    WindowSearch,
    align_to_flow,
    differs_in_size,
    edge_has_moved,
    flow_is_credible,
    fuse_with_prior,
    fusion_trust,
    gap_to_flow_centre,
    image_contrast_ratio,
)
from model.pipeline.crop import CropWindow, initial_box
from model.pipeline.masks import mask_centroid, shift_map
from model.pipeline.motion import MaskFlow
from model.pipeline.postprocess import PostProcessor
from model.pipeline.preprocess import grey_to_network_channels, normalise_frame
from model.trackers import SequenceInfo, Tracker
from model.trackers.xmem_settings import MotionParts, XMemSettings
from model.weights import ResolvedWeights, load_weights
from model.xmem.inference.inference_core import InferenceCore
from model.xmem.network.checkpoint import load_network


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


def build_core(network: torch.nn.Module, settings: XMemSettings) -> VideoCore:
    """An InferenceCore for the network, on the network's device, configured by the settings."""
    device = next(network.parameters()).device
    return InferenceCore(
        network.eval(),
        settings.network.inference_config(),
        device=device,
        precision=settings.network.precision,
        frozen_graphs=settings.network.frozen_graphs,
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
            network = self._settings.network
            self._weights, state_dict = load_weights(network.weights or None)
            core = build_core(load_network(state_dict, device=network.torch_device()), self._settings)
        self._core = core
        # Per-sequence state, set by `start`.
        self._window: CropWindow | None = None
        self._post: PostProcessor | None = None
        self._parts = MotionParts()
        self._probability = np.zeros((0, 0), np.float32)  # the network's map pasted into the frame
        self._align_limit = 0.0
        self._resolved: dict[str, Any] = {}
        self._flow: MaskFlow | None = None
        self._trust: NetworkTrust | None = None
        self._growth: SustainedGrowth | None = None
        self._offset: SteadyOffset | None = None
        self._search = WindowSearch((1, 1))
        self._redetected = False  # found by the search: the flow must find it again before it judges
        # Event counters.
        self._recentred = 0
        self._aligned = 0
        self._flow_unjudged = 0
        self._edge_moved = 0
        self._image_overruled = 0
        self._image_decided = 0
        self._moved_by_offset = 0

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
        margin_mm = settings.window.margin_for(info)
        ema_weight = settings.output.ema_weight_for(info)
        box = initial_box(first_mask, info.pixel_spacing_mm, margin_mm)
        grid = settings.window.grid_for(box)
        self._window = CropWindow(box, first_mask.shape, grid)
        self._parts = settings.motion_parts()
        output = settings.output
        guards = settings.active_guards()
        self._post = PostProcessor(
            first_mask, ema_weight, output.threshold, output.area_jump_factor, output.area_jump_patience, guards
        )
        self._probability = np.zeros(first_mask.shape, dtype=np.float32)
        self._recentred = 0
        self._aligned = 0
        # A gap the centroid guard would reject is a disagreement, not a placement error:
        # aligning it away would hide a slow failure from the guard.
        self._align_limit = settings.motion.align_max_px
        radius = math.sqrt(np.count_nonzero(first_mask) / math.pi)
        if guards.max_flow_shift:
            self._align_limit = min(self._align_limit, guards.max_flow_shift * radius)
        self._same_place_px = SAME_PLACE_RADII * radius
        self._small_target = radius < SMALL_TARGET_RADIUS_PX
        # Whether a setting that tells a change of size from a change of place is on.
        self._sizes_disputed = settings.arbitration.own_change_allowance or settings.arbitration.decisive_contrast > 0
        self._resolved = {
            "margin_mm": margin_mm,
            "ema_weight": ema_weight,
            "crop_box_size_px": list(box.size),
            "grid_px": grid,
            "motion_parts": self._parts.names(),
            "align_limit_px": self._align_limit if self._parts.align else 0.0,
        }
        # No expected frame count: the memory must not depend on how long the sequence is.
        self._core.reset()
        normalised = normalise_frame(first_frame)
        self._flow = None
        self._trust = None
        self._flow_unjudged = 0
        self._edge_moved = 0
        self._image_overruled = 0
        self._image_decided = 0
        self._moved_by_offset = 0
        self._search = WindowSearch(box.size)
        self._redetected = False
        arbitration = settings.arbitration
        self._offset = None
        if arbitration.steady_offset_factor and self._parts.names():
            # A flow's own steady error from a right network reaches the alignment's limit or
            # STEADY_OFFSET_LEAST_RADII, whichever is larger: only an offset beyond both is the network's.
            least = max(self._resolved["align_limit_px"], STEADY_OFFSET_LEAST_RADII * radius)
            self._offset = SteadyOffset(arbitration.steady_offset_factor, arbitration.trust_memory, least)
        if self._parts.trust:
            self._trust = NetworkTrust(
                arbitration.trust_floor,
                arbitration.agreement_tolerance_px,
                arbitration.trust_memory,
                first_mask=first_mask,
                own_change_allowance=arbitration.own_change_allowance,
            )
        self._growth = None
        if self._trust is not None and (arbitration.growth_max_residual or arbitration.growth_beyond_edge):
            self._growth = SustainedGrowth(arbitration.growth_max_residual, arbitration.growth_beyond_edge)
        if self._parts.names():
            motion = settings.motion
            self._flow = MaskFlow(
                motion.motion,
                backward_check=motion.motion_prior == "confidence" or arbitration.flow_credible > 0,
                centre=motion.flow_centre,
            )
            self._flow.start(first_frame, first_mask)
        network_mask = torch.from_numpy(self._window.crop_mask(first_mask).astype(np.float32))
        self._core.step(self._network_input(normalised), network_mask.to(self._core.device))

    def track(self, frame: np.ndarray) -> np.ndarray:
        if self._window is None or self._post is None:
            raise RuntimeError("XMemTracker.track called before start")
        settings = self._settings
        arbitration = settings.arbitration
        normalised = normalise_frame(frame)
        motion = self._flow.estimate(frame) if self._flow is not None else None
        # The flow places the window, and may judge the network below, only when it is credible
        # by its own evidence.
        credible = motion is not None and flow_is_credible(
            motion, arbitration.flow_credible, arbitration.flow_max_residual
        )
        edge_moved = (
            credible and arbitration.flow_max_edge_shift > 0 and edge_has_moved(motion, arbitration.flow_max_edge_shift)
        )
        self._edge_moved += edge_moved
        credible &= not edge_moved
        self._flow_unjudged += motion is not None and not credible
        self._redetected &= not credible
        searching = self._search.active
        window_with_flow = credible and self._parts.crop and not searching
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
        network_mask = self._probability > settings.output.threshold
        if self._offset is not None and motion is not None and network_mask.any() and motion.mask.any():
            # The correction comes from the frames before this one; this frame's offset is
            # measured on the network's map as it came.
            correction = self._offset.correction()
            if credible:
                self._offset.update(network_mask, motion.mask)
            if correction is not None:
                self._probability = shift_map(self._probability, correction)
                network_mask = self._probability > settings.output.threshold
                self._moved_by_offset += 1
        found = self._look_for_lost_target(network_mask, credible) if motion is not None else False
        # The flow judges the network (trust, alignment, leeway) where the image does not side
        # with the network's outline; where it does, the flow can only confirm the trust, and
        # where it does by a wide margin the fusion may weigh a trusted network in full.
        contrast_ratio = None
        if credible and arbitration.flow_min_contrast:
            contrast_ratio = image_contrast_ratio(normalised, network_mask, motion.mask)
        overruled = contrast_ratio is not None and contrast_ratio < arbitration.flow_min_contrast
        flow_judges = credible and not overruled
        self._image_overruled += overruled
        # Where the network is centred as the flow puts the target, what they dispute is the
        # cut's size, which the flow carried from the first frame cannot follow.
        gap = gap_to_flow_centre(network_mask, motion.centre) if credible and self._sizes_disputed else math.inf
        same_place = gap <= self._same_place_px
        trust = trust_in_fusion = 1.0
        if self._trust is not None and motion is not None:
            grown_px = self._growth.update(network_mask, motion, credible) if self._growth is not None else None
            trust = self._trust.update(
                network_mask,
                motion.mask,
                credible,
                image_sides_with_network=overruled,
                grown_px=grown_px,
                same_place=same_place,
            )
            trust_in_fusion = fusion_trust(trust, contrast_ratio, arbitration.decisive_contrast, same_place)
            self._image_decided += trust_in_fusion > trust
        fused = self._probability
        if motion is not None and self._parts.prior:
            covered = np.zeros(self._probability.shape, bool)
            covered[self._window.frame_slices] = True
            fused = fuse_with_prior(
                fused,
                covered,
                motion.prior,
                motion.confidence,
                settings.motion.prior_weight,
                settings.motion.motion_prior,
                trust_in_fusion,
            )
        # Where the image decides for a network of another size than the flow mask's, centred
        # within the alignment's limit of the flow's centre, the size is the network's and the
        # place still the flow's, but for a small target (docs/pipeline.md, "A decisive image").
        size_decided = (
            overruled
            and not self._small_target
            and contrast_ratio < arbitration.decisive_contrast
            and gap <= self._align_limit
            and differs_in_size(network_mask, motion.mask)
        )
        if (flow_judges or size_decided) and self._parts.align:
            # On a frame the flow can judge, its two-way centre places the target more precisely
            # than the project's weights do, and costs a right network little (docs/pipeline.md).
            fused, moved = align_to_flow(fused, self._post.last_mask, motion.centre, self._align_limit)
            self._aligned += moved
        # The guards always see the flow mask: a jump of the network's target far from where the
        # flow puts it is implausible whatever the flow's credibility. The leeway is what the
        # network has earned, in full on frames the flow cannot judge.
        guarded = motion is not None and not self._redetected and (self._parts.guards or self._parts.fallback)
        flow_mask = motion.mask if guarded else None
        leeway = 0.0
        if self._trust is not None:
            leeway = arbitration.guard_leeway * (trust if flow_judges else 1.0)
        mask = self._post(fused, flow_mask, leeway)
        # A prediction the post-processing rejected must not become memory: it would teach
        # XMem the wrong target for every later frame. The memory is written from the
        # network's own prediction, so with the fused prior that one is judged too (the fusion
        # can pull a creeping map back into line while the network keeps creeping).
        accept = not self._post.fell_back
        if accept and self._parts.prior:
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
        self._move_window(self._window.follow(mask, self._settings.window.recentre_fraction))

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
            "network_grown_over_tissue": self._trust.grown_frames if self._trust is not None else 0,
            "flow_not_credible": self._flow_unjudged,
            "flow_edge_moved": self._edge_moved,
            "flow_overruled_by_image": self._image_overruled,
            "network_weighed_in_full_by_image": self._image_decided,
            "network_moved_by_steady_offset": self._moved_by_offset,
            "target_searched": self._search.searches,
        }
