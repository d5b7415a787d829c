"""XMem (Cheng & Schwing, ECCV 2022), re-implemented to load the official weights unchanged.

network/ holds the nn.Module blocks and checkpoint loading, inference/ the per-frame core and its
memory; docs/network.md describes both."""

from model.xmem.network.checkpoint import CheckpointError, load_network
from model.xmem.network.network import NetworkDims, XMem

__all__ = ["CheckpointError", "NetworkDims", "XMem", "load_network"]
