"""XMem checkpoint loading: round trip, dimension inference, tolerated variants, clear errors."""

from __future__ import annotations

import pickle
from pathlib import Path

import pytest
import torch

from model.xmem.network.checkpoint import CheckpointError, infer_dims, load_network, load_state_dict_file
from model.xmem.network.network import NetworkDims, XMem

H, W, N = 64, 64, 2


@pytest.fixture(scope="module")
def model() -> XMem:
    torch.manual_seed(0)
    return XMem().eval()


@pytest.fixture(scope="module")
def state(model: XMem) -> dict[str, torch.Tensor]:
    return model.state_dict()


@pytest.fixture(scope="module")
def checkpoint_file(state: dict[str, torch.Tensor], tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("ckpt") / "xmem.pth"
    torch.save(state, path)
    return path


def run_all(net: XMem) -> list[torch.Tensor]:
    """Every network entry point on a fixed input."""
    generator = torch.Generator().manual_seed(3)
    frame = torch.randn(1, 3, H, W, generator=generator)
    masks = torch.rand(1, N, H, W, generator=generator) / N
    hidden = torch.randn(1, N, net.dims.hidden_dim, H // 16, W // 16, generator=generator)
    with torch.no_grad():
        key, shrinkage, selection, f16, f8, f4 = net.encode_key(frame)
        value, hidden = net.encode_value(frame, f16, hidden, masks)
        hidden, logits, prob = net.segment(f16, f8, f4, value, hidden)
    return [key, shrinkage, selection, f16, f8, f4, value, hidden, logits, prob]


def one_line_error(source, **kwargs) -> str:
    with pytest.raises(CheckpointError) as info:
        load_network(source, **kwargs)
    message = str(info.value)
    assert "\n" not in message
    return message


def test_saved_checkpoint_reloads_bit_identical(model: XMem, checkpoint_file: Path) -> None:
    loaded = load_network(checkpoint_file)
    assert not loaded.training
    assert loaded.dims == NetworkDims(64, 512, 64)
    for expected, actual in zip(run_all(model), run_all(loaded), strict=True):
        assert torch.equal(expected, actual)


def test_load_state_dict_file_returns_the_flat_dict(state: dict[str, torch.Tensor], checkpoint_file: Path) -> None:
    loaded = load_state_dict_file(checkpoint_file)
    assert list(loaded) == list(state)
    assert torch.equal(loaded["decoder.pred.weight"], state["decoder.pred.weight"])


def test_infer_dims_reads_tensor_shapes() -> None:
    fake = {
        "key_proj.key_proj.weight": torch.empty(32, 1, 1, 1),
        "value_encoder.fuser.block2.conv2.weight": torch.empty(256, 1, 1, 1),
        "decoder.hidden_update.transform.weight": torch.empty(48, 1, 1, 1),
    }
    assert infer_dims(fake) == NetworkDims(key_dim=32, value_dim=256, hidden_dim=16)
    del fake["decoder.hidden_update.transform.weight"]
    assert infer_dims(fake).hidden_dim == 0


def test_wrong_shape_is_named(state: dict[str, torch.Tensor]) -> None:
    broken = dict(state, **{"decoder.pred.weight": torch.zeros(2, 256, 3, 3)})
    message = one_line_error(broken)
    assert "decoder.pred.weight [2, 256, 3, 3] vs model [1, 256, 3, 3]" in message


def test_missing_and_unexpected_keys_are_named(state: dict[str, torch.Tensor]) -> None:
    broken = {k: v for k, v in state.items() if k != "decoder.pred.bias"}
    broken["decoder.extra.weight"] = torch.zeros(1)
    message = one_line_error(broken)
    assert "missing keys decoder.pred.bias" in message
    assert "unexpected keys decoder.extra.weight" in message


def test_four_channel_value_conv1_is_padded_with_zeros(state: dict[str, torch.Tensor]) -> None:
    conv1 = state["value_encoder.conv1.weight"]
    loaded = load_network(dict(state, **{"value_encoder.conv1.weight": conv1[:, :4].clone()}))
    weight = loaded.value_encoder.conv1.weight
    assert weight.shape == (64, 5, 7, 7)
    assert torch.equal(weight[:, :4], conv1[:, :4])
    assert not weight[:, 4].any()


def test_single_object_model_loads_four_channel_weights(state: dict[str, torch.Tensor]) -> None:
    conv1 = state["value_encoder.conv1.weight"][:, :4].clone()
    loaded = load_network(dict(state, **{"value_encoder.conv1.weight": conv1}), single_object=True)
    assert torch.equal(loaded.value_encoder.conv1.weight, conv1)


def test_missing_num_batches_tracked_is_tolerated(model: XMem, state: dict[str, torch.Tensor]) -> None:
    trimmed = {k: v for k, v in state.items() if not k.endswith("num_batches_tracked")}
    assert len(trimmed) == 354
    loaded = load_network(trimmed)
    assert torch.equal(run_all(model)[-1], run_all(loaded)[-1])


def test_fp16_checkpoint_loads_as_float32(state: dict[str, torch.Tensor]) -> None:
    half = {k: v.half() if v.is_floating_point() else v for k, v in state.items()}
    loaded = load_network(half)
    weight = loaded.key_proj.key_proj.weight
    assert weight.dtype == torch.float32
    assert torch.equal(weight, half["key_proj.key_proj.weight"].float())


def test_no_sensory_checkpoint_loads_into_hidden_dim_zero() -> None:
    torch.manual_seed(4)
    no_sensory = XMem(NetworkDims(hidden_dim=0)).eval()
    loaded = load_network(no_sensory.state_dict())
    assert loaded.dims.hidden_dim == 0
    assert loaded.decoder.hidden_update is None and loaded.value_encoder.hidden_reinforce is None
    outputs = run_all(loaded)
    assert outputs[7].shape[2] == 0  # the (empty) hidden passes through untouched
    for expected, actual in zip(run_all(no_sensory), outputs, strict=True):
        assert torch.equal(expected, actual)


def test_full_checkpoint_with_hidden_keys_stripped_is_rejected(state: dict[str, torch.Tensor]) -> None:
    stripped = {k: v for k, v in state.items() if "hidden" not in k}
    message = one_line_error(stripped)
    assert "decoder.fuser.block1.conv1.weight [512, 1600, 3, 3] vs model [512, 1536, 3, 3]" in message


def test_non_checkpoint_file_fails_with_its_name(tmp_path: Path) -> None:
    path = tmp_path / "notes.pth"
    path.write_text("not a checkpoint\n")
    message = one_line_error(path)
    assert str(path) in message and "not a PyTorch checkpoint" in message


def test_training_checkpoint_is_not_a_flat_state_dict(tmp_path: Path) -> None:
    path = tmp_path / "training_checkpoint.pth"
    torch.save({"network": {"w": torch.zeros(1)}, "it": torch.tensor(3)}, path)
    message = one_line_error(path)
    assert str(path) in message and "'network'" in message


def test_missing_file_and_unrelated_state_dict(tmp_path: Path) -> None:
    assert "no such file" in one_line_error(tmp_path / "absent.pth")
    assert "missing key_proj.key_proj.weight" in one_line_error({"weight": torch.zeros(1)})


class _NotATensor:
    pass


@pytest.mark.parametrize("content", [{"weight": _NotATensor()}, {"x": 1}], ids=["object", "plain pickle"])
def test_a_pickle_of_other_objects_is_refused_without_pytorchs_advice(tmp_path: Path, content, recwarn) -> None:
    path = tmp_path / "other.pth"
    if isinstance(content.get("weight"), _NotATensor):
        torch.save(content, path)
    else:
        path.write_bytes(pickle.dumps(content, protocol=4))
    message = one_line_error(path)
    assert message == (
        f"{path}: not a PyTorch checkpoint of tensors (it holds other pickled Python objects, which are never loaded)"
    )
    assert "weights_only" not in message and len(recwarn) == 0  # no protocol warning either
