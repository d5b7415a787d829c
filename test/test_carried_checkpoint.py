"""The carried training checkpoint (docs/experiments/2026-12-02-carried-checkpoint.md).

The machines that train do not keep their runs, so the CPU chain's latest weights are kept in
git as int8. They are a start for further training, never the product: the file must load
strictly (a broken file would cost the next run hours) and must stay out of the weight
resolution, so `--tracker xmem` cannot pick up weights that have not passed their bar.
"""
from __future__ import annotations

from pathlib import Path

import pytest
import torch

from model.weights import RESOURCE_NAMES
from model.xmem.network.checkpoint import load_network
from model.xmem.network.compact import is_compact
from model.xmem.network.network import XMem

TRAINING_DIR = Path(__file__).resolve().parent.parent / "resources" / "training"
CARRIED = sorted(TRAINING_DIR.glob("*.pth"))


def test_exactly_one_carried_checkpoint_is_kept():
    # One file at a time: each replaced version stays in git history (about 60 MB each).
    assert len(CARRIED) == 1, CARRIED


@pytest.mark.parametrize("path", CARRIED, ids=lambda p: p.name)
def test_carried_checkpoint_is_int8_and_loads_strictly(path: Path):
    stored = torch.load(path, map_location="cpu", weights_only=True)
    assert is_compact(stored)
    network = load_network(path)  # strict: every key and shape of the official layout
    assert isinstance(network, XMem)
    assert sum(p.numel() for p in network.parameters()) == 62_185_224


def test_carried_checkpoint_is_not_a_weight_resolution_candidate():
    assert not any(path.name in RESOURCE_NAMES for path in CARRIED)
