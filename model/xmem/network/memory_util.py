"""Memory reading (docs/network.md, "Reading memory"): anisotropic L2 similarity, softmax affinities, readout.

Two layouts:
* batched, channel-major (training): keys B×CK×M, values B×C×M, affinity B×M×HW —
  `similarity`, `softmax_affinity`, `readout`;
* element-major, query-major (inference hot path): keys M×CK, values M×C, similarity HW×M —
  `memory_operand` / `query_operand` (one matmul gives the similarity), then
  `top_k_softmax`, `top_k_readout`, `top_k_usage`. The top-k affinity stays sparse (k entries
  per query pixel) so the readout costs HW·k·C instead of HW·M·C.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor


def similarity(
    mem_key: Tensor, mem_shrinkage: Tensor | None, query_key: Tensor, query_selection: Tensor | None
) -> Tensor:
    """S(i, j) = −s_i Σ_c e_cj (k_ci − q_cj)² / √CK → B×M×HW (memory along dim 1).

    mem_key B×CK×M, mem_shrinkage B×1×M, query_key/query_selection B×CK×HW. Without a
    selection the query-norm term is dropped (it does not change a softmax over memory).
    """
    ck = mem_key.shape[1]
    mk = mem_key.transpose(1, 2)  # B×M×CK
    if query_selection is not None:
        a = mk.pow(2) @ query_selection
        b = 2 * (mk @ (query_key * query_selection))
        c = (query_selection * query_key.pow(2)).sum(1, keepdim=True)
        sim = b - a - c
    else:
        a = mk.pow(2).sum(2, keepdim=True)
        sim = 2 * (mk @ query_key) - a
    if mem_shrinkage is not None:
        sim = sim * mem_shrinkage.transpose(1, 2)
    return sim / math.sqrt(ck)


def softmax_affinity(sim: Tensor, dim: int = 1) -> Tensor:
    """Plain softmax over the memory dimension (training, consolidation)."""
    return torch.softmax(sim, dim=dim)  # max-subtracted internally


def readout(affinity: Tensor, values: Tensor) -> Tensor:
    """values B×C×M · affinity B×M×HW → B×C×HW."""
    return torch.bmm(values, affinity)


def memory_operand(key: Tensor, shrinkage: Tensor) -> Tensor:
    """Memory side of the similarity as one M×(2·CK+1) matrix: s/√CK · [k², k, 1].

    With `query_operand`, query_operand(q, e) @ memory_operand(k, s).T equals `similarity`
    (transposed): −s Σ e k² + 2 s Σ e q k − s Σ e q², all over √CK. Built once per memory
    change, so a query frame costs a single matmul.
    """
    scale = (shrinkage / math.sqrt(key.shape[1])).unsqueeze(1)  # M×1
    return torch.cat([key.pow(2), key, torch.ones_like(scale)], dim=1) * scale


def query_operand(key: Tensor, selection: Tensor) -> Tensor:
    """Query side for `memory_operand`: [−e, 2·e·q, −Σ e q²] → HW×(2·CK+1)."""
    eq = selection * key
    return torch.cat([-selection, 2 * eq, -(eq * key).sum(1, keepdim=True)], dim=1)


def top_k_softmax(sim: Tensor, k: int) -> tuple[Tensor, Tensor]:
    """Per query row keep the k largest similarities and softmax them.

    sim HW×M → (weights HW×k' float32, indices HW×k') with k' = min(k, M); all other
    affinities are zero.
    """
    top, indices = torch.topk(sim, min(k, sim.shape[1]), dim=1, sorted=False)
    return torch.softmax(top.float(), dim=1), indices


def top_k_readout(values: Tensor, weights: Tensor, indices: Tensor) -> Tensor:
    """Σ_k weight · values[index] per query row: values M×C → HW×C."""
    return F.embedding_bag(indices, values, per_sample_weights=weights.to(values.dtype), mode="sum")


def top_k_usage(weights: Tensor, indices: Tensor, size: int) -> Tensor:
    """usage_i = Σ_j A(j, i): the affinity mass each of `size` memory elements received."""
    usage = torch.zeros(size, dtype=weights.dtype, device=weights.device)
    return usage.index_add_(0, indices.flatten(), weights.flatten())
