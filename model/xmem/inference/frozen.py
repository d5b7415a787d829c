"""The CPU's fast fp32 path: the key encoder and the decoder as frozen TorchScript graphs.

Freezing folds each BatchNorm into its convolution and lets oneDNN keep the weights packed in
its own layout, so a frame skips the per-call weight reorders of eager mode (docs/network.md,
"The CPU's fast path"). The results equal eager mode's within float rounding. A graph is traced
once per input shape (the tracker's grid is fixed for a sequence), on the first call.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable

import torch
from torch import Tensor, nn


class _DecoderCall(nn.Module):
    """The decoder with `h_out` fixed, returning tensors only (a graph cannot return None)."""

    def __init__(self, decoder: nn.Module, h_out: bool) -> None:
        super().__init__()
        self.decoder = decoder
        self.h_out = h_out

    def forward(self, f16: Tensor, f8: Tensor, f4: Tensor, readout: Tensor, hidden: Tensor) -> tuple[Tensor, Tensor]:
        return self.decoder(f16, f8, f4, readout, hidden, self.h_out)


def _freeze(module: nn.Module, example: tuple[Tensor, ...]) -> Callable[..., object]:
    # The tracer's warnings are about shapes, fixed per graph here; TorchScript's deprecation
    # notice points to torch.compile, which starts in minutes and ran slower on these CPUs.
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        warnings.simplefilter("ignore", DeprecationWarning)
        traced = torch.jit.trace(module.eval(), example, check_trace=False)
        return torch.jit.optimize_for_inference(torch.jit.freeze(traced))


class FrozenNetworkParts:
    """Frozen graphs of a network's key encoder and decoder, one per input shape, made on demand."""

    def __init__(self, key_encoder: nn.Module, decoder: nn.Module) -> None:
        self._key_encoder = key_encoder
        self._decoder = decoder
        self._graphs: dict[tuple, Callable[..., object]] = {}

    def encode(self, frame: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """The key encoder's (f16, f8, f4) for a B×3×H×W frame."""
        key = ("key", tuple(frame.shape))
        graph = self._graphs.get(key)
        if graph is None:
            # A new grid (a new sequence): the old grid's graphs, each holding a copy of the
            # weights, go, so a long run over many sequences does not accumulate them.
            self._graphs.clear()
            graph = self._graphs[key] = _freeze(self._key_encoder, (frame,))
        return graph(frame)

    def decode(
        self, f16: Tensor, f8: Tensor, f4: Tensor, readout: Tensor, hidden: Tensor, h_out: bool
    ) -> tuple[Tensor, Tensor]:
        """The decoder's (hidden, logits); needs a sensory memory (`hidden` a tensor)."""
        inputs = (f16, f8, f4, readout, hidden)
        key = ("decoder", h_out, *(tuple(x.shape) for x in inputs))
        graph = self._graphs.get(key)
        if graph is None:
            graph = self._graphs[key] = _freeze(_DecoderCall(self._decoder, h_out), inputs)
        return graph(*inputs)
