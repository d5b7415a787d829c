"""XMem network: checkpoint layout, the shape checks of docs/network.md, and its building blocks."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from model.xmem.network.aggregate import aggregate
from model.xmem.network.group_modules import distribute_cat
from model.xmem.network.modules import ValueEncoder, gru_update, other_objects
from model.xmem.network.network import NetworkDims, XMem

# The official checkpoint's key -> shape list (derived from the reference's layer definitions), kept in
# the repository so that the check runs in a fresh clone too.
KEY_LIST = Path(__file__).resolve().parent / "data" / "xmem-checkpoint-keys.txt"
H, W, N = 64, 128, 2  # small frame: f16 is 4×8


@pytest.fixture(scope="module")
def model() -> XMem:
    torch.manual_seed(0)
    return XMem().eval()


@pytest.fixture(scope="module")
def encoded(model: XMem) -> dict[str, torch.Tensor]:
    torch.manual_seed(1)
    frame = torch.randn(1, 3, H, W)
    masks = torch.rand(1, N, H, W) / N
    hidden = torch.zeros(1, N, 64, H // 16, W // 16)
    with torch.no_grad():
        key, shrinkage, selection, f16, f8, f4 = model.encode_key(frame)
        value, new_hidden = model.encode_value(frame, f16, hidden, masks)
    return dict(
        frame=frame,
        key=key,
        shrinkage=shrinkage,
        selection=selection,
        f16=f16,
        f8=f8,
        f4=f4,
        hidden=hidden,
        value=value,
        new_hidden=new_hidden,
    )


def decode(model: XMem, encoded: dict[str, torch.Tensor], **kwargs) -> tuple:
    """model.segment on the encoded frame, its own value standing in for the memory readout."""
    with torch.no_grad():
        return model.segment(
            encoded["f16"], encoded["f8"], encoded["f4"], encoded["value"], encoded["new_hidden"], **kwargs
        )


def test_state_dict_keys_and_shapes_equal_the_checkpoint_list(model: XMem) -> None:
    expected = []
    for line in KEY_LIST.read_text().splitlines():
        key, shape = line.split(" ", 1)
        expected.append((key, [int(d) for d in shape.strip("[]").split(",") if d.strip()]))
    actual = [(key, list(t.shape)) for key, t in model.state_dict().items()]
    assert len(expected) == 412
    assert actual == expected  # same order too: the original registration order


def test_parameter_counts(model: XMem) -> None:
    def count(module: torch.nn.Module) -> int:
        return sum(p.numel() for p in module.parameters())

    assert count(model) == 62_185_224
    assert count(model.key_encoder) == 8_543_296
    assert count(model.value_encoder) == 22_694_915
    assert count(model.key_proj) == 1_188_993
    assert count(model.decoder) == 29_758_020


def test_no_sensory_memory_model_has_no_hidden_modules() -> None:
    state = XMem(NetworkDims(hidden_dim=0)).state_dict()
    assert not any("hidden" in key for key in state)
    assert len(state) == 412 - 2 - 8
    assert state["decoder.fuser.block1.conv1.weight"].shape == (512, 1024 + 512, 3, 3)


def test_encode_key_shapes_and_ranges(encoded: dict[str, torch.Tensor]) -> None:
    h, w = H // 16, W // 16
    assert encoded["key"].shape == (1, 64, h, w)
    assert encoded["shrinkage"].shape == (1, 1, h, w)
    assert encoded["selection"].shape == (1, 64, h, w)
    assert encoded["f16"].shape == (1, 1024, h, w)
    assert encoded["f8"].shape == (1, 512, 2 * h, 2 * w)
    assert encoded["f4"].shape == (1, 256, 4 * h, 4 * w)
    assert encoded["shrinkage"].min() >= 1
    assert encoded["selection"].min() > 0 and encoded["selection"].max() < 1


def test_encode_key_skips_unrequested_outputs(model: XMem) -> None:
    with torch.no_grad():
        _, shrinkage, selection, *_ = model.encode_key(torch.zeros(1, 3, 32, 32), False, False)
    assert shrinkage is None and selection is None


def test_encode_key_on_a_clip_keeps_time_and_matches_per_frame(model: XMem) -> None:
    torch.manual_seed(2)
    clip = torch.randn(1, 2, 3, 32, 48)
    with torch.no_grad():
        key, shrinkage, selection, f16, f8, f4 = model.encode_key(clip)
        single = model.encode_key(clip[:, 1])
    assert key.shape == (1, 64, 2, 2, 3) and shrinkage.shape == (1, 1, 2, 2, 3)
    assert selection.shape == (1, 64, 2, 2, 3)
    assert f16.shape == (1, 2, 1024, 2, 3) and f8.shape == (1, 2, 512, 4, 6)
    assert f4.shape == (1, 2, 256, 8, 12)
    torch.testing.assert_close(key[:, :, 1], single[0], atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(f4[:, 1], single[5], atol=1e-4, rtol=1e-4)


def test_encode_value_shapes_and_deep_update_switch(model: XMem, encoded: dict[str, torch.Tensor]) -> None:
    assert encoded["value"].shape == (1, N, 512, H // 16, W // 16)
    assert encoded["new_hidden"].shape == encoded["hidden"].shape
    assert not torch.equal(encoded["new_hidden"], encoded["hidden"])
    with torch.no_grad():
        value, hidden = model.encode_value(
            encoded["frame"], encoded["f16"], encoded["hidden"], torch.rand(1, N, H, W), deep_update=False
        )
    assert hidden is encoded["hidden"]
    assert not torch.equal(value, encoded["value"])  # the masks reach the value


def test_segment_shapes_probabilities_and_hidden(model: XMem, encoded: dict[str, torch.Tensor]) -> None:
    hidden, logits, prob = decode(model, encoded, strip_bg=False)
    kept, _, stripped = decode(model, encoded, h_out=False)
    assert logits.shape == (1, N + 1, H, W) and prob.shape == (1, N + 1, H, W)
    torch.testing.assert_close(prob.sum(dim=1), torch.ones(1, H, W))
    assert hidden.shape == (1, N, 64, H // 16, W // 16) and not torch.equal(hidden, encoded["new_hidden"])
    assert kept is encoded["new_hidden"]
    assert torch.equal(stripped, prob[:, 1:])


def test_segment_selector_removes_padded_objects(model: XMem, encoded: dict[str, torch.Tensor]) -> None:
    _, _, prob = decode(model, encoded, selector=torch.tensor([[1.0, 0.0]]), strip_bg=False)
    assert prob[:, 2].max() < 1e-5


def test_segment_under_autocast_gives_float32_probabilities(model: XMem, encoded: dict[str, torch.Tensor]) -> None:
    # CPU bfloat16 stands in for CUDA fp16 here: the aggregation must still run in float32. bf16
    # runs slowly on CPUs without native bf16 kernels, so the decoder gets the features of the
    # frame's top-left 16×32 pixels only (f16 1×2 cells).
    corner = {
        name: encoded[name][..., : H // 4 // scale, : W // 4 // scale]
        for name, scale in (("f16", 16), ("f8", 8), ("f4", 4), ("value", 16), ("new_hidden", 16))
    }
    with torch.autocast("cpu", dtype=torch.bfloat16):
        _, logits, prob = decode(model, corner, strip_bg=False)
    assert logits.dtype == prob.dtype == torch.float32 and prob.shape == (1, N + 1, H // 4, W // 4)
    assert torch.isfinite(logits).all()
    torch.testing.assert_close(prob.sum(dim=1), torch.ones(1, H // 4, W // 4))


def test_one_hot_mask_aggregates_to_one_hot() -> None:
    mask = torch.zeros(1, 2, 8, 8)
    mask[0, 0, :4] = 1
    mask[0, 1, 4:6] = 1
    logits, prob = aggregate(mask, dim=1)
    expected = torch.cat([1 - mask.sum(1, keepdim=True), mask], dim=1)
    torch.testing.assert_close(prob, expected, atol=1e-6, rtol=0)
    # Clamped to [1e-7, 1 − 1e-7]: logits ≈ ±16 (1 − 1e-7 rounds to 1 − 1.19e-7 in float32).
    assert torch.equal(logits > 0, expected > 0.5)
    assert logits.abs().min() > 15.9 and logits.abs().max() < 16.2


def test_aggregate_is_float32_and_finite_for_fp16_input() -> None:
    prob = torch.tensor([[[[0.0, 1.0, 0.3]]], [[[1.0, 0.0, 0.6]]]], dtype=torch.float16).transpose(0, 1)
    logits, out = aggregate(prob, dim=1)
    assert logits.dtype == out.dtype == torch.float32
    assert torch.isfinite(logits).all()
    torch.testing.assert_close(out.sum(dim=1), torch.ones(1, 1, 3))


def test_gru_update_follows_the_gate_formula() -> None:
    h = torch.randn(1, 1, 4, 2, 2)
    candidate = torch.randn(1, 1, 4, 2, 2)
    big = torch.full_like(h, 50.0)
    # forget open, update closed: the hidden is kept.
    torch.testing.assert_close(gru_update(torch.cat([big, -big, candidate], dim=2), h), h)
    # forget closed, update closed: the hidden is erased.
    torch.testing.assert_close(gru_update(torch.cat([-big, -big, candidate], dim=2), h), torch.zeros_like(h))
    # update open: the (ungated) candidate replaces the hidden.
    torch.testing.assert_close(gru_update(torch.cat([-big, big, candidate], dim=2), h), torch.tanh(candidate))


def test_distribute_cat_puts_the_image_feature_first() -> None:
    x = torch.full((1, 2, 3, 3), 7.0)
    g = torch.zeros(1, 4, 1, 3, 3)
    out = distribute_cat(x, g)
    assert out.shape == (1, 4, 3, 3, 3)
    assert (out[:, :, :2] == 7).all() and (out[:, :, 2] == 0).all()


def test_other_objects_channel() -> None:
    masks = torch.tensor([0.1, 0.2, 0.3]).view(1, 3, 1, 1)
    torch.testing.assert_close(other_objects(masks).flatten(), torch.tensor([0.5, 0.4, 0.3]))
    assert torch.equal(other_objects(masks[:, :1]), torch.zeros(1, 1, 1, 1))


def test_single_object_value_encoder_takes_four_channels() -> None:
    encoder = ValueEncoder(value_dim=512, hidden_dim=64, single_object=True).eval()
    assert encoder.conv1.weight.shape == (64, 4, 7, 7)
    with torch.no_grad():
        frame, f16, masks = torch.randn(1, 3, 32, 32), torch.randn(1, 1024, 2, 2), torch.rand(1, 1, 32, 32)
        value, hidden = encoder(frame, f16, torch.zeros(1, 1, 64, 2, 2), masks)
    assert value.shape == (1, 1, 512, 2, 2) and hidden.shape == (1, 1, 64, 2, 2)
