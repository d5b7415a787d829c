"""The project's own weights, resources/trackrad-xmem.pth: the offline fallback every image holds."""

from __future__ import annotations

import pytest
import torch

from evaluation.evaluate import evaluate_case
from model.trackers import build_tracker
from model.weights import PROJECT_NAME, RESOURCES_DIR
from model.xmem.network.checkpoint import load_network
from model.xmem.network.compact import is_compact
from model.xmem.network.network import XMem
from sequences.real_texture.dataset import write_quick_case

SHIPPED = RESOURCES_DIR / PROJECT_NAME


def test_shipped_weights_are_int8_and_load_strictly():
    stored = torch.load(SHIPPED, map_location="cpu", weights_only=True)
    assert is_compact(stored)  # int8 with per-channel scales: half the size of fp16
    network = load_network(SHIPPED)  # strict: every key and shape of the network
    assert isinstance(network, XMem)
    assert sum(p.numel() for p in network.parameters()) == 62_185_224


def test_model_card_describes_the_shipped_weights():
    card = (RESOURCES_DIR / "MODEL_CARD.md").read_text()
    assert PROJECT_NAME in card
    assert "never seen a real cine-MRI" in card


@pytest.mark.slow  # the default settings on a full breathing cycle of 16 frames
def test_shipped_weights_beat_copy_on_a_real_texture_sequence(tmp_path):
    # Real MR texture (a validation-split abdominal slice that training never uses) with a
    # breathing cycle inside 16 frames: the default pipeline with the shipped weights must track
    # it better than staying put does.
    case_dir = write_quick_case(tmp_path / "R_001")
    xmem = evaluate_case(build_tracker("xmem", weights=str(SHIPPED), device="cpu"), case_dir).scores
    copy = evaluate_case(build_tracker("copy"), case_dir).scores
    assert xmem["dsc"] > copy["dsc"], (xmem, copy)
