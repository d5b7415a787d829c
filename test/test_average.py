"""python -m training.average: the mean of several checkpoints of one run."""

from __future__ import annotations

import pytest
import torch

from model.xmem.network.checkpoint import load_state_dict_file
from model.xmem.network.network import XMem
from training.average import average_state_dicts, main

COUNTER = "bn.num_batches_tracked"


def _state(weight: float, counter: int = 0, dtype=torch.float32) -> dict[str, torch.Tensor]:
    return {"conv.weight": torch.full((2, 3), weight, dtype=dtype), COUNTER: torch.tensor(counter)}


def test_float_entries_are_averaged_in_their_dtype_and_the_rest_kept():
    averaged = average_state_dicts([_state(1.0, dtype=torch.float16), _state(2.0), _state(6.0)])
    assert averaged["conv.weight"].dtype == torch.float16
    assert torch.equal(averaged["conv.weight"], torch.full((2, 3), 3.0, dtype=torch.float16))
    assert averaged[COUNTER].item() == 0


@pytest.mark.parametrize(
    "states, message",
    [
        ([_state(1.0)], "at least two"),
        ([_state(1.0), {"conv.weight": torch.zeros(2, 3)}], "other keys"),
        ([_state(1.0), {**_state(1.0), "conv.weight": torch.zeros(3, 2)}], "shapes differ"),
        ([_state(1.0, counter=0), _state(1.0, counter=5)], "non-float entries differ"),
    ],
)
def test_mismatched_checkpoints_are_refused(states, message):
    with pytest.raises(ValueError, match=message):
        average_state_dicts(states)


def test_command_writes_a_loadable_mean_and_nothing_on_error(tmp_path, capsys):
    torch.manual_seed(0)
    first = XMem().state_dict()
    # A later checkpoint of the same run: every float entry moved, the counters as they were
    # (building a second network would take as long as the rest of the test).
    later = {k: v + torch.rand_like(v) if v.is_floating_point() else v for k, v in first.items()}
    sources = [tmp_path / "w0.pth", tmp_path / "w1.pth"]
    for state, path in zip((first, later), sources, strict=True):
        torch.save(state, path)
    out = tmp_path / "mean.pth"
    assert main([str(out), *map(str, sources)]) == 0
    key = "key_proj.key_proj.weight"
    assert torch.allclose(load_state_dict_file(out)[key], (first[key] + later[key]) / 2)

    bad = tmp_path / "bad.pth"
    bad.write_text("not a checkpoint")
    assert main([str(tmp_path / "none.pth"), str(sources[0]), str(bad)]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"error: {bad}: not a PyTorch checkpoint") and "\n" not in err
    assert not (tmp_path / "none.pth").exists() and not (tmp_path / "none.pth.tmp").exists()
