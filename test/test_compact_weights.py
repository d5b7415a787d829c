"""Compact (int8) checkpoints and the export command."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from model.xmem.network.checkpoint import CheckpointError, load_network, load_state_dict_file
from model.xmem.network.compact import SCALE_SUFFIX, compact_state_dict, expand_state_dict
from model.xmem.network.network import XMem
from training.export_weights import main as export_main


@pytest.fixture(scope="module")
def state() -> dict[str, torch.Tensor]:
    torch.manual_seed(0)
    return XMem().eval().state_dict()


def outputs(net: XMem) -> list[torch.Tensor]:
    generator = torch.Generator().manual_seed(1)
    frame = torch.randn(1, 3, 64, 64, generator=generator)
    mask = torch.rand(1, 1, 64, 64, generator=generator)
    hidden = torch.zeros(1, 1, net.dims.hidden_dim, 4, 4)
    with torch.no_grad():
        key, shrinkage, selection, f16, f8, f4 = net.encode_key(frame)
        value, hidden = net.encode_value(frame, f16, hidden, mask)
        _, logits, _ = net.segment(f16, f8, f4, value, hidden)
    return [key, value, logits]


def test_int8_weights_round_trip_within_half_a_step(state):
    compact = compact_state_dict(state)
    conv = "key_encoder.layer3.0.conv2.weight"
    assert compact[conv].dtype == torch.int8 and compact[conv + SCALE_SUFFIX].shape == (state[conv].shape[0],)
    assert compact["key_encoder.bn1.running_var"].dtype == torch.float32  # small tensors kept as they are
    expanded = expand_state_dict(compact)
    assert expanded.keys() == state.keys()
    step = compact[conv + SCALE_SUFFIX].view(-1, 1, 1, 1)
    assert ((expanded[conv] - state[conv]).abs() <= step / 2 + 1e-7).all()
    assert expand_state_dict(state) == state  # an ordinary checkpoint passes unchanged


def test_export_int8_is_a_quarter_of_fp32_and_computes_the_same(state, tmp_path: Path, capsys):
    source, target = tmp_path / "net.pth", tmp_path / "out" / "net-int8.pth"
    torch.save(state, source)
    assert export_main([str(source), str(target)]) == 0
    assert "int8" in capsys.readouterr().out
    assert target.stat().st_size < 0.3 * source.stat().st_size
    original, compact = load_network(source), load_network(target)  # strict load of the int8 file
    for expected, actual in zip(outputs(original), outputs(compact), strict=True):
        relative = (actual - expected).norm() / expected.norm()
        assert relative < 0.03, relative  # measured: about 0.01 (random init), 0.001-0.006 (trained)


def test_broken_compact_file_and_bad_export_source_are_one_line_errors(state, tmp_path: Path, capsys):
    compact = compact_state_dict(state)
    compact["key_proj.key_proj.weight" + SCALE_SUFFIX] = torch.ones(3)
    broken = tmp_path / "broken.pth"
    torch.save(compact, broken)
    with pytest.raises(CheckpointError, match="broken compact checkpoint: key_proj.key_proj.weight"):
        load_state_dict_file(broken)

    not_weights = tmp_path / "notes.txt"
    not_weights.write_text("hello")
    assert export_main([str(not_weights), str(tmp_path / "x.pth")]) == 1
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and "notes.txt" in error
    assert not (tmp_path / "x.pth").exists()

    source = tmp_path / "net.pth"
    torch.save(state, source)
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    assert export_main([str(source), str(blocker / "net.pth")]) == 1
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and "cannot write" in error and "a-file" in error
