"""The XMem network (docs/network.md, "The network"): key encoder, value encoder, key projection, decoder.

Parameter names and registration order equal the original checkpoint's state-dict keys.
Memory reading lives in model/xmem/network/memory_util.py.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from model.xmem.network.aggregate import aggregate
from model.xmem.network.modules import Decoder, KeyProjection, ValueEncoder
from model.xmem.network.resnet import F16_DIM, KeyEncoder


@dataclass(frozen=True)
class NetworkDims:
    key_dim: int = 64
    value_dim: int = 512
    hidden_dim: int = 64  # 0 = no sensory memory


class XMem(nn.Module):
    def __init__(self, dims: NetworkDims = NetworkDims(), single_object: bool = False) -> None:
        super().__init__()
        self.dims = dims
        self.single_object = single_object
        self.key_encoder = KeyEncoder()
        self.value_encoder = ValueEncoder(dims.value_dim, dims.hidden_dim, single_object)
        self.key_proj = KeyProjection(F16_DIM, dims.key_dim)
        self.decoder = Decoder(dims.value_dim, dims.hidden_dim)

    def encode_key(
        self, frame: Tensor, need_shrinkage: bool = True, need_selection: bool = True
    ) -> tuple[Tensor, Tensor | None, Tensor | None, Tensor, Tensor, Tensor]:
        """frame B×3×H×W → (key B×CK×h×w, shrinkage B×1×h×w, selection B×CK×h×w, f16, f8, f4).

        A B×T×3×H×W clip is encoded in one pass; key, shrinkage and selection then come back
        as B×C×T×h×w (time after channels, as memory reading expects) and f16/f8/f4 as B×T×C×h×w.
        """
        clip = frame.dim() == 5
        if clip:
            b, t = frame.shape[:2]
            frame = frame.flatten(0, 1)
        elif frame.dim() != 4:
            raise ValueError(f"encode_key expects B×3×H×W or B×T×3×H×W, got {tuple(frame.shape)}")

        f16, f8, f4 = self.key_encoder(frame)
        key, shrinkage, selection = self.key_proj(f16, need_shrinkage, need_selection)

        if clip:
            key, shrinkage, selection = (
                None if x is None else x.unflatten(0, (b, t)).transpose(1, 2).contiguous()
                for x in (key, shrinkage, selection)
            )
            f16, f8, f4 = (x.unflatten(0, (b, t)) for x in (f16, f8, f4))
        return key, shrinkage, selection, f16, f8, f4

    def encode_value(
        self, frame: Tensor, f16: Tensor, hidden: Tensor | None, masks: Tensor, deep_update: bool = True
    ) -> tuple[Tensor, Tensor | None]:
        """masks B×N×H×W (soft, background excluded) → (value B×N×CV×h×w, hidden B×N×CH×h×w)."""
        return self.value_encoder(frame, f16, hidden, masks, deep_update)

    def segment(
        self,
        f16: Tensor,
        f8: Tensor,
        f4: Tensor,
        memory_readout: Tensor,
        hidden: Tensor | None,
        selector: Tensor | None = None,
        h_out: bool = True,
        strip_bg: bool = True,
    ) -> tuple[Tensor | None, Tensor, Tensor]:
        """Decode and aggregate → (hidden', logits B×(N+1)×H×W, prob B×(N+1)×H×W or B×N×H×W).

        selector (B×N or B×N×1×1, 0/1) zeroes padded objects before aggregation (training).
        """
        hidden, logits = self.decoder(f16, f8, f4, memory_readout, hidden, h_out)
        prob = torch.sigmoid(logits)
        if selector is not None:
            prob = prob * selector.view(*selector.shape[:2], 1, 1)
        logits, prob = aggregate(prob, dim=1)
        if strip_bg:
            prob = prob[:, 1:]
        return hidden, logits, prob
