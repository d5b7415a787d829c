"""XMem's training loss (docs/training.md, "The recipe"): bootstrapped cross-entropy plus soft Dice."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

FINAL_TOP_FRACTION = 0.15


def top_fraction(iteration: int, start_warm: int, end_warm: int) -> float:
    """Share of hardest pixels kept by the bootstrapped CE: 1 before start_warm, then a linear
    decay to 0.15 at end_warm, 0.15 afterwards."""
    if iteration < start_warm:
        return 1.0
    if iteration >= end_warm:
        return FINAL_TOP_FRACTION
    done = (iteration - start_warm) / (end_warm - start_warm)
    return 1.0 - (1.0 - FINAL_TOP_FRACTION) * done


def bootstrapped_ce(logits: Tensor, target: Tensor, fraction: float) -> Tensor:
    """Mean CE over the `fraction` hardest pixels of the batch.

    logits B×(N+1)×H×W (background first, the aggregated logits of XMem.segment);
    target B×H×W class indices.
    """
    loss = F.cross_entropy(logits, target, reduction="none").flatten()
    if fraction >= 1.0:
        return loss.mean()
    hardest, _ = torch.topk(loss, max(1, int(loss.numel() * fraction)), sorted=False)
    return hardest.mean()


def dice_loss(prob: Tensor, target: Tensor) -> Tensor:
    """1 − (2Σpg + 1)/(Σp + Σg + 1) per object channel, averaged; prob/target B×N×H×W."""
    prob, target = prob.flatten(2), target.flatten(2)
    numerator = 2 * (prob * target).sum(-1) + 1
    denominator = prob.sum(-1) + target.sum(-1) + 1
    return (1 - numerator / denominator).mean()


def clip_loss(logits: list[Tensor], probs: list[Tensor], masks: Tensor, fraction: float) -> dict[str, Tensor]:
    """Sum over query frames t = 1..T−1 of CE + Dice. logits[t−1] B×(N+1)×H×W,
    probs[t−1] B×N×H×W (background stripped), masks B×T×N×H×W (0/1, objects one-hot)."""
    ce = dice = logits[0].new_zeros(())
    for t, (frame_logits, frame_prob) in enumerate(zip(logits, probs, strict=True), start=1):
        target = masks[:, t]
        # Class index: 0 = background, i = object i (objects do not overlap).
        classes = (target * torch.arange(1, target.shape[1] + 1, device=target.device).view(1, -1, 1, 1)).sum(1)
        ce = ce + bootstrapped_ce(frame_logits.float(), classes.long(), fraction)
        dice = dice + dice_loss(frame_prob.float(), target)
    return {"loss": ce + dice, "ce": ce, "dice": dice}
