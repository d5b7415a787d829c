"""XMem's memory (docs/network.md, "The per-frame step"): working, long-term and sensory memory.

Working memory (WM) holds recent memory frames; when it reaches T_max frames, everything but
its first frame and the newest T_min − 1 frames is consolidated into P prototypes (picked by
usage, values/shrinkage potentiated by a softmax over the candidates) that move to long-term
memory (LT). LT is capped by usage-based eviction. The sensory memory is the per-object hidden
state, owned here and replaced by the inference core.

Memory tensors are kept in float32 whatever the network runs in: fp16 similarities would lose
the precision the top-k softmax depends on, and this part is cheap next to the network.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from model.xmem.inference.config import InferenceConfig
from model.xmem.inference.kv_memory_store import KeyValueMemoryStore
from model.xmem.network.memory_util import (
    memory_operand,
    query_operand,
    top_k_readout,
    top_k_softmax,
    top_k_usage,
)


def _elements(x: Tensor) -> Tensor:
    """1×C×h×w feature map → HW×C float32 element rows."""
    return x[0].flatten(1).t().float()


class MemoryManager:
    def __init__(self, config: InferenceConfig, count_long_term_usage: bool = True) -> None:
        self.config = config
        self.long_term_enabled = config.enable_long_term
        # WM usage only ranks prototypes, so it is counted only when consolidation exists.
        self.work = KeyValueMemoryStore(count_usage=config.enable_long_term)
        self.long_term = KeyValueMemoryStore(count_usage=config.enable_long_term and count_long_term_usage)
        self.hidden: Tensor | None = None  # sensory memory, 1×N×CH×h×w
        self.frame_elements = 0  # HW: elements per memory frame, fixed by the first one
        self._bank: Tensor | None = None  # memory_operand over [LT; WM], rebuilt after writes

    @property
    def work_elements(self) -> int:
        return self.work.size

    @property
    def long_term_elements(self) -> int:
        return self.long_term.size

    @property
    def num_objects(self) -> int:
        return self.work.num_objects

    @property
    def element_bound(self) -> int | None:
        """Most elements WM + LT can hold at once (None: unbounded, long-term memory off)."""
        if not self.long_term_enabled:
            return None
        return self.config.max_mid_term_frames * self.frame_elements + self.config.max_long_term_elements

    # ---- reading -------------------------------------------------------------------------

    def match_memory(self, key: Tensor, selection: Tensor) -> Tensor:
        """Top-k readout for a query frame: key/selection 1×CK×h×w → 1×N×CV×h×w (float32).

        Group 0 spans every element of both stores, so its affinities are the usage statistics.
        """
        if self.work.size == 0:
            raise RuntimeError("match_memory before any memory frame was added")
        h, w = key.shape[-2:]
        if self._bank is None:
            self._bank = self._build_bank()
        sim = torch.mm(query_operand(_elements(key), _elements(selection)), self._bank.t())  # HW×M

        if len(self.work.groups) == 1:  # single-object (or all objects from frame 0) fast path
            readout = self._read_group(0, sim)
        else:
            readout = torch.cat([self._read_group(g, sim) for g in range(len(self.work.groups))], dim=1)
        return readout.t().view(1, self.num_objects, -1, h, w)

    def _build_bank(self) -> Tensor:
        if self.long_term.size == 0:
            return memory_operand(self.work.key, self.work.shrinkage)
        return memory_operand(
            torch.cat([self.long_term.key, self.work.key]),
            torch.cat([self.long_term.shrinkage, self.work.shrinkage]),
        )

    def _read_group(self, g: int, sim: Tensor) -> Tensor:
        """Top-k softmax over group g's rows of [LT; WM] and its readout, HW×(n_g·CV)."""
        lt_total, wm_total = self.long_term.size, self.work.size
        lt_values = self.long_term.values[g] if g < len(self.long_term.values) else None
        wm_values = self.work.values[g]
        lt_n = 0 if lt_values is None else lt_values.shape[0]
        wm_n = wm_values.shape[0]
        if lt_n < lt_total or wm_n < wm_total:  # a later group: only its own (last) elements
            columns = torch.cat(
                [
                    torch.arange(lt_total - lt_n, lt_total, device=sim.device),
                    torch.arange(lt_total + wm_total - wm_n, lt_total + wm_total, device=sim.device),
                ]
            )
            sim = sim[:, columns]
        weights, indices = top_k_softmax(sim, self.config.top_k)

        if g == 0 and (self.work.count_usage or self.long_term.count_usage):
            usage = top_k_usage(weights, indices, lt_n + wm_n)
            self.long_term.update_usage(usage[:lt_n])
            self.work.update_usage(usage[lt_n:])

        if lt_n == 0:
            return top_k_readout(wm_values, weights, indices)
        # Indices below lt_n point into LT, the rest into WM: read both tables, mask the other.
        in_lt = indices < lt_n
        return top_k_readout(lt_values, weights * in_lt, indices.clamp(max=lt_n - 1)) + top_k_readout(
            wm_values, weights * ~in_lt, (indices - lt_n).clamp(min=0)
        )

    # ---- writing -------------------------------------------------------------------------

    def add_memory(self, key: Tensor, shrinkage: Tensor, value: Tensor, selection: Tensor | None = None) -> None:
        """Append a memory frame: key 1×CK×h×w, shrinkage 1×1×h×w, value 1×N×CV×h×w (N = all
        objects so far; objects not yet in a group form a new one), selection 1×CK×h×w (kept
        for consolidation in long-term mode). Consolidates/evicts when WM is full."""
        h, w = key.shape[-2:]
        if self.frame_elements == 0:
            self.frame_elements = h * w
        elif h * w != self.frame_elements:
            raise ValueError(f"memory frames must keep one size: {h}×{w} after {self.frame_elements} elements")
        n = value.shape[1]
        if n < self.num_objects:
            raise ValueError(f"value has {n} objects, memory already holds {self.num_objects}")
        value = value[0].float().flatten(2).permute(2, 0, 1)  # HW×N×CV

        groups = [*self.work.groups]
        if n > self.num_objects:
            groups.append(list(range(self.num_objects, n)))
        if len(groups) == 1:
            values = [value.reshape(h * w, -1)]
        else:
            values = [value[:, objects].reshape(h * w, -1) for objects in groups]
        self.work.add(
            _elements(key),
            shrinkage.flatten().float(),
            values,
            groups,
            _elements(selection) if self.long_term_enabled and selection is not None else None,
        )
        self._bank = None

        if self.long_term_enabled and self.work.size >= self.config.max_mid_term_frames * self.frame_elements:
            lt_keep = self.config.max_long_term_elements - self.config.num_prototypes
            if self.long_term.size >= lt_keep:
                self._evict_long_term(lt_keep)
            self._consolidate()

    def _consolidate(self) -> None:
        """Spec 3.6: prototypes of WM's consolidation range move to LT (potentiated)."""
        work, hw = self.work, self.frame_elements
        if work.selection is None:
            raise RuntimeError("long-term consolidation needs the memory frames' selection")
        min_work = self.config.min_mid_term_frames * hw
        start, end = hw, work.size - min_work + hw  # keep the first frame and the newest T_min − 1
        n_cand = end - start

        cand_key, cand_shrinkage = work.key[start:end], work.shrinkage[start:end]
        # A group takes its own rows [HW, M_g − min_work + HW) if it is long enough (docs/network.md, "Consolidation").
        cand_values = [
            v[hw : v.shape[0] - min_work + hw] if v.shape[0] == work.size or v.shape[0] > min_work + hw else None
            for v in work.values
        ]
        usage = work.normalised_usage()[start:end]
        protos = torch.topk(usage, min(self.config.num_prototypes, n_cand), sorted=True).indices
        proto_key = cand_key[protos]
        proto_selection = work.selection[start:end][protos]

        # Potentiation: each prototype is the softmax-weighted average of the candidates it matches.
        sim = torch.mm(query_operand(proto_key, proto_selection), memory_operand(cand_key, cand_shrinkage).t())
        proto_values: list[Tensor | None] = []
        proto_shrinkage = None
        for g, cand in enumerate(cand_values):
            if cand is None:
                proto_values.append(None)
                continue
            n = cand.shape[0]
            valid = protos >= n_cand - n
            if not bool(valid.any()):
                proto_values.append(None)
                continue
            affinity = torch.softmax(sim[valid][:, n_cand - n :], dim=1)
            proto_values.append(affinity @ cand)
            if g == 0:  # group 0 spans all candidates, so all prototypes are valid for it
                proto_shrinkage = affinity @ cand_shrinkage

        work.remove_range(start, end, min_group_size=min_work + hw)
        self.long_term.add(proto_key, proto_shrinkage, proto_values, work.groups)

    def _evict_long_term(self, max_size: int) -> None:
        """Spec 3.7: drop the least-used LT elements (ties with the cut-off go too) so that at
        most `max_size` remain. Without usage counts (the caller forced counting off for a
        sequence that fills LT) the oldest elements go instead, to keep memory bounded."""
        lt = self.long_term
        excess = lt.size - max_size
        if excess <= 0:
            return
        if lt.count_usage:
            usage = lt.normalised_usage()
            cutoff = torch.topk(usage, excess, largest=False).values.max()
            survivors = usage > cutoff
        else:
            survivors = torch.arange(lt.size, device=lt.key.device) >= excess
        lt.keep(survivors)

    # ---- sensory memory ------------------------------------------------------------------

    def extend_hidden(self, num_objects: int, hidden_dim: int, like: Tensor) -> None:
        """Create or extend the hidden state with zeros for new objects (existing rows kept).

        `like` is any 1×C×h×w feature of the frame: it gives h, w, device and dtype.
        """
        current = 0 if self.hidden is None else self.hidden.shape[1]
        if num_objects <= current:
            return
        h, w = like.shape[-2:]
        zeros = like.new_zeros(1, num_objects - current, hidden_dim, h, w)
        self.hidden = zeros if self.hidden is None else torch.cat([self.hidden, zeros], dim=1)

    def shift_hidden(self, rows: float, cols: float) -> None:
        """Move the sensory memory's content by (rows, cols) cells of its grid, bilinear for
        fractions; cells moved in from outside are zero (nothing is known there yet)."""
        if self.hidden is None or (rows == 0 and cols == 0):
            return
        _, n, c, h, w = self.hidden.shape
        # grid_sample reads output (x, y) from input (x - cols, y - rows), in [-1, 1] units.
        theta = torch.tensor([[1.0, 0.0, -2.0 * cols / w], [0.0, 1.0, -2.0 * rows / h]], device=self.hidden.device)
        flat = self.hidden.reshape(n, c, h, w).float()
        grid = F.affine_grid(theta.expand(n, 2, 3), [n, c, h, w], align_corners=False)
        moved = F.grid_sample(flat, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
        self.hidden = moved.to(self.hidden.dtype).reshape(1, n, c, h, w)
