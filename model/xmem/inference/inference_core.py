"""Per-frame XMem inference (docs/network.md, "The per-frame step"): padding, memory-frame and
sensory-update scheduling, and the network calls around the MemoryManager.

Masks are exhaustive: a mask given on a later frame covers every object (its extra channels,
if any, are new objects), so that frame is taken from the mask, not segmented.
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from model.device import cpu_has_native_bf16, fast_cpu_precision, resolve_device
from model.xmem.inference.config import InferenceConfig
from model.xmem.inference.frozen import FrozenNetworkParts
from model.xmem.inference.memory_manager import MemoryManager
from model.xmem.network.aggregate import aggregate
from model.xmem.network.network import XMem

STRIDE = 16  # the network's output stride: padded sizes are multiples of it

_THREAD_VARIABLES = ("OMP_NUM_THREADS", "MKL_NUM_THREADS")


def _cpu_threads(requested: int | None) -> int | None:
    """Threads to give torch on the CPU: the request, else all usable cores unless the user
    already chose through the environment (None = leave torch's setting alone)."""
    if requested is not None:
        return requested
    if any(name in os.environ for name in _THREAD_VARIABLES):
        return None
    return len(os.sched_getaffinity(0))


def _padding(h: int, w: int) -> tuple[int, int, int, int]:
    """(left, right, top, bottom) zero padding up to multiples of 16, the extra pixel right/bottom."""
    ph, pw = -h % STRIDE, -w % STRIDE
    return pw // 2, pw - pw // 2, ph // 2, ph - ph // 2


PRECISIONS = ("auto", "fp32", "bf16", "fp16")


def resolve_precision(precision: str, device: torch.device) -> str:
    """The arithmetic the network runs in: fp32, bf16 or fp16 (autocast) on this device."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    if precision == "auto":
        if device.type == "cuda":
            return "fp16"
        return "bf16" if cpu_has_native_bf16() else "fp32"
    if precision == "fp16" and device.type != "cuda":
        raise ValueError(f"precision fp16 needs CUDA (on this CPU use {fast_cpu_precision()}, or auto)")
    return precision


@dataclass(frozen=True)
class _MemoryWrite:
    """What a memory frame needs once its prediction is accepted (padded image, features, probs)."""

    image: Tensor
    f16: Tensor
    key: Tensor
    shrinkage: Tensor
    selection: Tensor | None
    prob: Tensor
    deep_update: bool
    from_mask: bool  # a given mask is ground truth: always memorised


class InferenceCore:
    def __init__(
        self,
        network: XMem,
        config: InferenceConfig = InferenceConfig(),
        device: str | torch.device | None = None,
        threads: int | None = None,
        precision: str = "fp32",
        frozen_graphs: bool = False,
    ) -> None:
        """Moves `network` to `device` (None: CUDA if available) in eval mode. `precision`
        (PRECISIONS, resolve_precision): fp32 by default, so the core alone computes exactly
        what the reference XMem computes; the tracker passes its setting (auto: fp16 autocast
        on CUDA, bf16 autocast on CPUs with native bf16, else fp32). The CPU runs on `threads` threads
        (None: all cores, unless OMP_NUM_THREADS/MKL_NUM_THREADS is set). `frozen_graphs` runs
        the key encoder and the decoder as frozen graphs on the CPU in fp32
        (model.xmem.inference.frozen): faster, equal within float rounding."""
        self.device = resolve_device(device)
        self.config = config
        self.network = network.to(self.device).eval()
        self.hidden_dim = network.dims.hidden_dim
        self.precision = resolve_precision(precision, self.device)
        if self.precision == "fp32":
            self._autocast = contextlib.nullcontext()
        else:
            dtype = torch.float16 if self.precision == "fp16" else torch.bfloat16
            self._autocast = torch.autocast(self.device.type, dtype=dtype)
        if self.device.type == "cuda":
            # The input size is fixed per sequence (the tracker's crop), so cuDNN's algorithm
            # search pays off after the first frame.
            torch.backends.cudnn.benchmark = True
        else:
            n_threads = _cpu_threads(threads)
            if n_threads is not None:
                torch.set_num_threads(n_threads)
        self._pads: dict[tuple[int, int], tuple[int, int, int, int]] = {}
        self._frozen: FrozenNetworkParts | None = None
        if frozen_graphs and self.device.type == "cpu" and self.precision == "fp32":
            self._frozen = FrozenNetworkParts(network.key_encoder, network.decoder)
        self.reset()

    @property
    def path(self) -> str:
        """How the network runs: its precision, and 'frozen graphs' on the CPU's fast path."""
        return f"{self.precision}, frozen graphs" if self._frozen is not None else self.precision

    def reset(self, expected_frames: int | None = None) -> None:
        """Start a new sequence: empty memory. `expected_frames` (the sequence length, if
        known) decides long-term usage counting when the config leaves it open."""
        self.memory = MemoryManager(self.config, self.config.count_long_term_usage(expected_frames))
        self.frame_index = -1
        self._pending: _MemoryWrite | None = None
        self.last_mem_index = 0
        self.last_deep_update_index = -self.config.deep_update_every

    @property
    def work_elements(self) -> int:
        return self.memory.work_elements

    @property
    def long_term_elements(self) -> int:
        return self.memory.long_term_elements

    @property
    def num_objects(self) -> int:
        return self.memory.num_objects

    def step(self, image: Tensor, mask: Tensor | None = None, end: bool = False) -> Tensor:
        """One frame: image 3×H×W (normalised), optional mask H×W or N×H×W (soft or binary,
        required on the first frame), `end` for the last frame (nothing is memorised).
        Returns probabilities (N+1)×H×W, float32, background first, on the core's device.
        Equivalent to `predict` followed by `commit()`."""
        prob = self.predict(image, mask, end)
        self.commit()
        return prob

    @torch.inference_mode()
    def predict(self, image: Tensor, mask: Tensor | None = None, end: bool = False) -> Tensor:
        """The first half of `step`: segment the frame (or take its mask) and, if it is due as a
        memory frame, hold the memory write until `commit`, so that a caller who rejects the
        prediction can keep it out of the memory."""
        if self._pending is not None:
            raise RuntimeError("commit() the previous frame before predicting the next one")
        cfg = self.config
        if mask is None and self.memory.work_elements == 0:
            raise ValueError("the first frame needs a mask")
        self.frame_index += 1
        t = self.frame_index
        h, w = image.shape[-2:]
        pad = self._pads.get((h, w))
        if pad is None:
            pad = self._pads[(h, w)] = _padding(h, w)
        image = image.to(self.device, torch.float32)
        if any(pad):
            image = F.pad(image, pad)
        image = image[None]

        is_mem_frame = (t - self.last_mem_index >= cfg.mem_every or mask is not None) and not end
        synced = cfg.deep_update_every < 0
        if synced:
            is_deep_update = is_mem_frame
        else:
            is_deep_update = t - self.last_deep_update_index >= cfg.deep_update_every and not end
        is_normal_update = (not synced or not is_deep_update) and not end

        need_selection = cfg.enable_long_term or mask is None
        if self._frozen is None:
            with self._autocast:
                key, shrinkage, selection, f16, f8, f4 = self.network.encode_key(
                    image, need_shrinkage=is_mem_frame, need_selection=need_selection
                )
        else:
            f16, f8, f4 = self._frozen.encode(image)
            key, shrinkage, selection = self.network.key_proj(f16, is_mem_frame, need_selection)
        if mask is None:
            readout = self.memory.match_memory(key, selection)
            if self._frozen is None or self.memory.hidden is None:
                with self._autocast:
                    hidden, _, prob = self.network.segment(
                        f16, f8, f4, readout, self.memory.hidden, h_out=is_normal_update, strip_bg=False
                    )
            else:
                hidden, logits = self._frozen.decode(f16, f8, f4, readout, self.memory.hidden, is_normal_update)
                _, prob = aggregate(torch.sigmoid(logits), dim=1)
            if is_normal_update:
                self.memory.hidden = hidden
            prob = prob[0]
        else:
            prob = self._mask_probabilities(mask, pad)
            if self.hidden_dim > 0:
                self.memory.extend_hidden(prob.shape[0] - 1, self.hidden_dim, key)

        if is_mem_frame:
            self._pending = _MemoryWrite(
                image, f16, key, shrinkage, selection, prob, is_deep_update, from_mask=mask is not None
            )
        left, _, top, _ = pad
        return prob[:, top : top + h, left : left + w]

    @torch.inference_mode()
    def commit(self, accept: bool = True) -> None:
        """Finish the frame `predict` started: write it to memory if it was due (and run the deep
        sensory update synchronised with it). With accept=False the write is dropped; the memory
        frame then stays due, so the next frame is memorised instead. A frame given a mask is
        always accepted: it is ground truth."""
        pending, self._pending = self._pending, None
        if pending is None:
            return
        if not accept and not pending.from_mask:
            return
        with self._autocast:
            value, hidden = self.network.encode_value(
                pending.image,
                pending.f16,
                self.memory.hidden,
                pending.prob[None, 1:],
                deep_update=pending.deep_update,
            )
        selection = pending.selection if self.config.enable_long_term else None
        self.memory.add_memory(pending.key, pending.shrinkage, value, selection)
        self.last_mem_index = self.frame_index
        if pending.deep_update:
            self.memory.hidden = hidden
            self.last_deep_update_index = self.frame_index

    def shift_sensory(self, rows: float, cols: float) -> None:
        """The input window moved: its content now lies (rows, cols) input pixels away from
        where it was. The sensory memory is a map aligned with the input (unlike the key/value
        memory, which is matched globally), so it is moved along, at its 1/16 resolution."""
        self.memory.shift_hidden(rows / STRIDE, cols / STRIDE)

    def _mask_probabilities(self, mask: Tensor, pad: tuple[int, int, int, int]) -> Tensor:
        """Given mask (H×W or N×H×W) → padded, soft-aggregated (N+1)×H'×W' probabilities."""
        mask = mask.to(self.device, torch.float32)
        if mask.dim() == 2:
            mask = mask[None]
        if mask.shape[0] < self.memory.num_objects:
            raise ValueError(
                f"a mask must cover all {self.memory.num_objects} known objects, got {mask.shape[0]} channels"
            )
        return aggregate(F.pad(mask, pad), dim=0)[1]
