"""XMem video object segmentation network (re-implemented from the spec in shared/docs)."""
from model.xmem.network.checkpoint import CheckpointError, load_network
from model.xmem.network.network import NetworkDims, XMem

__all__ = ["CheckpointError", "NetworkDims", "XMem", "load_network"]
