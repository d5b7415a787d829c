"""Grey cine-MRI frame -> network input, shared by training and inference.

XMem was trained on ImageNet-normalised RGB. An MRI frame has arbitrary scanner units, so each
frame is clipped to its 0.5/99.5 percentiles (removes the few very bright vessel / artefact
pixels that would otherwise dominate the scale) and z-scored; the result is roughly on the scale
of an ImageNet-normalised channel and is replicated into the 3 input channels. Array axes are
kept exactly as given: the caller decides the orientation.
"""

from __future__ import annotations

import numpy as np
import torch

CLIP_PERCENTILES = (0.5, 99.5)
# Below this standard deviation a frame counts as flat: it is centred but not scaled, so a
# constant frame becomes all zeros instead of NaN.
FLAT_STD = 1e-6


def normalise_frame(frame: np.ndarray) -> np.ndarray:
    """Percentile-clip and z-score one 2-D frame; returns float32 of the same shape."""
    image = np.nan_to_num(np.asarray(frame, dtype=np.float32))
    low, high = np.percentile(image, CLIP_PERCENTILES)
    image = np.clip(image, low, high).astype(np.float32, copy=False)
    # Statistics in float64 and scaling before centring: with values near 3e38 a float32 sum
    # overflows, and so can x - mean, which would turn the frame into inf/NaN.
    mean = float(image.mean(dtype=np.float64))
    std = float(image.std(dtype=np.float64))
    if std > FLAT_STD:
        image /= np.float32(std)
        image -= np.float32(mean / std)
    else:
        image -= np.float32(mean)
    return image


NETWORK_CHANNELS = 3  # XMem's encoders take RGB


def grey_to_network_channels(grey: torch.Tensor, channel_dim: int) -> torch.Tensor:
    """Replicate normalised grey into the network's RGB channels, inserted at `channel_dim`
    (a broadcast view, no copy): 2-D crop -> 3×H×W at 0, B×T×H×W clips -> B×T×3×H×W at 2."""
    sizes = [-1] * (grey.dim() + 1)
    sizes[channel_dim] = NETWORK_CHANNELS
    return grey.unsqueeze(channel_dim).expand(*sizes)
