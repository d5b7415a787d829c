"""Compact checkpoints: int8 weights with one fp32 scale per output channel.

XMem has 62 M parameters: 249 MB in fp32 and 124 MB in fp16. The project's own weights live in
git (every version stays in its history) and travel with the working tree, so they are stored
as int8. Every convolution or linear weight with at least MIN_QUANTISED_ELEMENTS elements is
stored as round(w / s) in int8, with s = max|w| / 127 taken per output channel (symmetric,
per-channel weight-only quantisation, the usual lossless-in-practice scheme for conv nets).
Everything else (biases, BatchNorm, small layers) keeps its dtype. The result is still a flat
state dict of tensors: each quantised entry `name` holds int8 values and `name + SCALE_SUFFIX`
its scales. Loading (model.xmem.network.checkpoint.load_state_dict_file) expands it back to fp32, so
the network itself always sees an ordinary checkpoint.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import Tensor

SCALE_SUFFIX = "::int8_scale"
MIN_QUANTISED_ELEMENTS = 4096
INT8_MAX = 127


def is_compact(state_dict: Mapping[str, Tensor]) -> bool:
    return any(key.endswith(SCALE_SUFFIX) for key in state_dict)


def compact_state_dict(state_dict: Mapping[str, Tensor]) -> dict[str, Tensor]:
    """int8 + per-output-channel scales for large float weights (2-D and up); the rest as is."""
    out: dict[str, Tensor] = {}
    for key, value in state_dict.items():
        if value.is_floating_point() and value.dim() >= 2 and value.numel() >= MIN_QUANTISED_ELEMENTS:
            weight = value.detach().float()
            per_channel_max = weight.abs().flatten(1).amax(dim=1)
            scale = torch.where(per_channel_max > 0, per_channel_max / INT8_MAX, torch.ones_like(per_channel_max))
            shape = (-1,) + (1,) * (weight.dim() - 1)
            out[key] = torch.round(weight / scale.view(shape)).clamp(-INT8_MAX, INT8_MAX).to(torch.int8)
            out[key + SCALE_SUFFIX] = scale
        else:
            out[key] = value.detach().clone()
    return out


def expand_state_dict(state_dict: Mapping[str, Tensor]) -> dict[str, Tensor]:
    """The fp32 state dict a compact one stands for (an ordinary one is returned unchanged)."""
    scales = {key[: -len(SCALE_SUFFIX)]: value for key, value in state_dict.items() if key.endswith(SCALE_SUFFIX)}
    out: dict[str, Tensor] = {}
    for key, value in state_dict.items():
        if key.endswith(SCALE_SUFFIX):
            continue
        if key in scales:
            if value.dtype != torch.int8 or scales[key].shape != value.shape[:1]:
                raise ValueError(
                    f"{key}: int8 weight and its scale do not fit ({value.dtype}, {tuple(scales[key].shape)})"
                )
            value = value.float() * scales[key].float().view((-1,) + (1,) * (value.dim() - 1))
        out[key] = value
    orphans = sorted(set(scales) - set(out))
    if orphans:
        raise ValueError(f"scales without weights: {', '.join(orphans[:3])}")
    return out
