"""XMem's training forward pass over a clip (docs/training.md, "The recipe": clips)."""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from model.xmem.network.memory_util import readout, similarity, softmax_affinity
from model.xmem.network.network import XMem


def reference_frames(t: int, num_ref_frames: int, batch: int, rng: np.random.Generator) -> np.ndarray:
    """B×R memory-frame indices for query frame t: all earlier frames while t ≤ R, else frame 0
    plus R−1 distinct random earlier frames, drawn per sample."""
    if t <= num_ref_frames:
        return np.tile(np.arange(t), (batch, 1))
    rows = [np.concatenate([[0], 1 + rng.choice(t - 1, num_ref_frames - 1, replace=False)]) for _ in range(batch)]
    return np.stack(rows)


def _gather_time(x: Tensor, indices: Tensor) -> Tensor:
    """x B×C×T×h×w, indices B×R → B×C×(R·h·w), each sample its own frames."""
    b, c, _, h, w = x.shape
    index = indices.view(b, 1, -1, 1, 1).expand(b, c, -1, h, w)
    return torch.gather(x, 2, index).flatten(2)


def clip_forward(
    network: XMem,
    frames: Tensor,
    first_mask: Tensor,
    num_ref_frames: int,
    deep_update_prob: float,
    rng: np.random.Generator,
) -> tuple[list[Tensor], list[Tensor]]:
    """frames B×T×3×H×W, first_mask B×N×H×W → per query frame t = 1..T−1 the aggregated logits
    B×(N+1)×H×W and object probabilities B×N×H×W. Later frames are segmented from memory of
    the earlier ones, whose values are encoded from the network's own predictions."""
    b, num_frames = frames.shape[:2]
    n = first_mask.shape[1]
    key, shrinkage, selection, f16, f8, f4 = network.encode_key(frames)
    h, w = key.shape[-2:]
    hidden = key.new_zeros(b, n, network.dims.hidden_dim, h, w) if network.dims.hidden_dim else None
    value, hidden = network.encode_value(frames[:, 0], f16[:, 0], hidden, first_mask, deep_update=True)
    values = [value]  # each B×N×CV×h×w
    logits_out, prob_out = [], []
    for t in range(1, num_frames):
        refs = torch.from_numpy(reference_frames(t, num_ref_frames, b, rng)).to(frames.device)
        memory_values = torch.stack(values, dim=3)  # B×N×CV×t×h×w
        affinity = softmax_affinity(
            similarity(
                _gather_time(key, refs),
                _gather_time(shrinkage, refs),
                key[:, :, t].flatten(2),
                selection[:, :, t].flatten(2),
            )
        )
        memory = _gather_time(memory_values.flatten(1, 2), refs)  # B×(N·CV)×M
        read = readout(affinity, memory).view(b, n, -1, h, w)
        last = t == num_frames - 1
        hidden, logits, prob = network.segment(f16[:, t], f8[:, t], f4[:, t], read, hidden, h_out=not last)
        logits_out.append(logits)
        prob_out.append(prob)
        if not last:
            deep = bool(rng.random() < deep_update_prob)
            value, hidden = network.encode_value(frames[:, t], f16[:, t], hidden, prob, deep_update=deep)
            values.append(value)
    return logits_out, prob_out
