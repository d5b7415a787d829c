"""XMem inference core with a randomly initialised network at 64×64 (CPU)."""

from __future__ import annotations

import pytest
import torch

from model.xmem.inference.config import InferenceConfig
from model.xmem.inference.inference_core import InferenceCore
from model.xmem.network.aggregate import aggregate
from model.xmem.network.network import NetworkDims, XMem

SIZE = 64
HW = (SIZE // 16) ** 2


class RecordingXMem(XMem):
    """XMem that logs, per call, the frame it ran on, its update flags and hidden in/out."""

    def __init__(self, dims: NetworkDims = NetworkDims()) -> None:
        super().__init__(dims)
        self.frame = -1
        self.log: list[dict] = []

    def encode_value(self, frame, f16, hidden, masks, deep_update=True):
        value, h = super().encode_value(frame, f16, hidden, masks, deep_update)
        self.log.append(dict(call="value", t=self.frame, update=deep_update, h_in=hidden, h_out=h))
        return value, h

    def segment(self, f16, f8, f4, memory_readout, hidden, selector=None, h_out=True, strip_bg=True):
        out = super().segment(f16, f8, f4, memory_readout, hidden, selector, h_out, strip_bg)
        self.log.append(dict(call="segment", t=self.frame, update=h_out, h_in=hidden, h_out=out[0]))
        return out

    def calls(self, name: str) -> list[dict]:
        return [entry for entry in self.log if entry["call"] == name]


@pytest.fixture(scope="module")
def network() -> RecordingXMem:
    torch.manual_seed(0)
    return RecordingXMem()


def frames(n: int, seed: int = 0, size: int = SIZE) -> list[torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    return [torch.randn(3, size, size, generator=gen) for _ in range(n)]


def square_mask(size: int = SIZE) -> torch.Tensor:
    mask = torch.zeros(size, size)
    mask[size // 4 : size // 2, size // 4 : size // 2] = 1
    return mask


def run(core: InferenceCore, network: RecordingXMem, images, masks=None, end: bool = True) -> list[torch.Tensor]:
    """Step through `images`; masks maps frame index → mask; the last frame is flagged `end`."""
    masks = masks or {}
    network.log.clear()
    core.reset(len(images))
    out = []
    for t, image in enumerate(images):
        network.frame = t
        out.append(core.step(image, masks.get(t), end=end and t == len(images) - 1))
    return out


def test_first_frame_returns_the_masks_aggregated_probabilities(network: RecordingXMem) -> None:
    core = InferenceCore(network, device="cpu")
    mask = torch.zeros(2, 50, 70)  # odd size: padded to 64×80 inside, cropped back
    mask[0, 5:20, 5:30] = 1
    mask[1, 30:45, 40:60] = 1
    prob = core.step(torch.randn(3, 50, 70), mask)
    assert prob.shape == (3, 50, 70) and prob.dtype == torch.float32 and prob.device == core.device
    assert torch.allclose(prob, aggregate(mask, dim=0)[1])
    assert torch.equal(prob.argmax(0), torch.cat([torch.zeros(1, 50, 70), mask]).argmax(0))
    following = core.step(torch.randn(3, 50, 70))
    assert following.shape == (3, 50, 70)
    assert torch.allclose(following.sum(0), torch.ones(50, 70), atol=1e-5)


def test_single_object_mask_gives_background_and_object(network: RecordingXMem) -> None:
    core = InferenceCore(network, device="cpu")
    prob = core.step(frames(1)[0], square_mask())
    assert prob.shape == (2, SIZE, SIZE) and core.num_objects == 1
    assert torch.allclose(prob[1], square_mask(), atol=1e-6)


def test_memory_frames_every_fifth_and_on_every_given_mask(network: RecordingXMem) -> None:
    core = InferenceCore(network, device="cpu")
    run(core, network, frames(22), masks={0: square_mask(), 7: square_mask()})
    # 0, 5, then the mask at 7 restarts the count: 12, 17; 22 would be next (21 is the end).
    assert [c["t"] for c in network.calls("value")] == [0, 5, 7, 12, 17]
    assert [c["t"] for c in network.calls("segment")] == [t for t in range(1, 22) if t != 7]
    assert core.work_elements == 5 * HW
    assert core.frame_index == 21


def test_last_frame_writes_no_memory_and_updates_no_hidden(network: RecordingXMem) -> None:
    core = InferenceCore(network, device="cpu")
    run(core, network, frames(6), masks={0: square_mask()})  # frame 5 would be a memory frame
    assert [c["t"] for c in network.calls("value")] == [0]
    last = network.calls("segment")[-1]
    assert last["t"] == 5 and not last["update"]
    assert core.work_elements == HW


def test_deep_update_is_synchronised_with_memory_frames(network: RecordingXMem) -> None:
    core = InferenceCore(network, device="cpu")
    run(core, network, frames(12), masks={0: square_mask()}, end=False)
    assert all(c["update"] for c in network.calls("value"))  # every memory frame: deep update
    memory_frames = {c["t"] for c in network.calls("value")}
    assert memory_frames == {0, 5, 10}
    # The decoder's hidden update runs on exactly the other frames: one sensory update per frame.
    for c in network.calls("segment"):
        assert c["update"] == (c["t"] not in memory_frames)


def test_deep_update_on_its_own_schedule(network: RecordingXMem) -> None:
    core = InferenceCore(network, InferenceConfig(mem_every=2, deep_update_every=4), device="cpu")
    run(core, network, frames(10), masks={0: square_mask()}, end=False)
    deep = [c["t"] for c in network.calls("value") if c["update"]]
    assert deep == [0, 4, 8]
    assert all(c["update"] for c in network.calls("segment"))  # not synchronised: decoder always updates


def test_hidden_state_is_carried_from_frame_to_frame(network: RecordingXMem) -> None:
    core = InferenceCore(network, device="cpu")
    run(core, network, frames(8), masks={0: square_mask()})
    # Each frame's decoder reads the hidden state written by the latest update before it.
    latest = None
    for entry in network.log:
        if entry["call"] == "segment":
            assert entry["h_in"] is latest
            assert entry["h_in"].abs().sum() > 0
        if entry["update"]:
            latest = entry["h_out"]
    assert network.calls("value")[0]["h_in"].shape == (1, 1, 64, 4, 4)
    # And the hidden state matters: replacing it changes the prediction.
    images = frames(2, seed=1)
    core.reset()
    core.step(images[0], square_mask())
    reference = core.step(images[1])
    core.reset()
    core.step(images[0], square_mask())
    core.memory.hidden = torch.randn_like(core.memory.hidden)
    assert not torch.allclose(core.step(images[1]), reference)


# Consolidates at frames 3, 5, 7, 9, 11 (8 prototypes each) and evicts at frame 11, inside the
# 12 shared frames below.
SMALL_MEMORY = InferenceConfig(
    mem_every=1, min_mid_term_frames=2, max_mid_term_frames=4, max_long_term_elements=40, num_prototypes=8
)


@pytest.mark.parametrize("config", [InferenceConfig(), SMALL_MEMORY], ids=["default", "small-memory"])
def test_outputs_depend_only_on_past_frames(network: RecordingXMem, config: InferenceConfig) -> None:
    core = InferenceCore(network, config, device="cpu")
    shared = frames(12, seed=2)
    a = run(core, network, shared + frames(3, seed=3), masks={0: square_mask()})
    long_term_at_end = core.long_term_elements
    b = run(core, network, shared + frames(3, seed=4), masks={0: square_mask()})
    for t in range(12):
        assert torch.equal(a[t], b[t])
    assert not torch.equal(a[13], b[13])
    if config is SMALL_MEMORY:  # long-term memory filled up to its cap: eviction ran
        assert long_term_at_end > 40 - 8


def test_a_rejected_memory_frame_stays_out_and_the_next_frame_is_memorised(network: RecordingXMem) -> None:
    core = InferenceCore(network, InferenceConfig(mem_every=2), device="cpu")
    images = frames(4, seed=6)
    core.predict(images[0], square_mask())
    core.commit(accept=False)  # a given mask is ground truth: memorised regardless
    assert core.work_elements == HW
    core.step(images[1])
    core.predict(images[2])  # due as a memory frame
    core.commit(accept=False)
    assert core.work_elements == HW and core.last_mem_index == 0
    core.predict(images[3])  # still due
    core.commit()
    assert core.work_elements == 2 * HW and core.last_mem_index == 3


def test_predict_twice_without_commit_is_an_error(network: RecordingXMem) -> None:
    core = InferenceCore(network, device="cpu")
    images = frames(2, seed=7)
    core.predict(images[0], square_mask())
    with pytest.raises(RuntimeError, match="commit"):
        core.predict(images[1])


def test_real_core_memory_stays_bounded(network: RecordingXMem) -> None:
    config = InferenceConfig(
        mem_every=1, min_mid_term_frames=2, max_mid_term_frames=4, max_long_term_elements=40, num_prototypes=8
    )
    core = InferenceCore(network, config, device="cpu")
    core.reset(expected_frames=None)  # unknown length: LT usage is counted
    assert core.memory.long_term.count_usage
    core.step(frames(1)[0], square_mask())
    for image in frames(20, seed=5):
        core.step(image)
        assert core.work_elements < 4 * HW
        assert core.long_term_elements <= 40
    assert core.long_term_elements > 40 - 8


def test_reset_clears_memory_and_sets_usage_counting(network: RecordingXMem) -> None:
    core = InferenceCore(network, device="cpu")
    run(core, network, frames(3), masks={0: square_mask()}, end=False)
    core.reset(expected_frames=391)
    assert core.work_elements == 0 and core.frame_index == -1 and core.memory.hidden is None
    assert core.memory.long_term.count_usage
    core.reset(expected_frames=100)
    assert not core.memory.long_term.count_usage
    with pytest.raises(ValueError, match="first frame"):
        core.step(frames(1)[0])


def test_threads_and_device_selection(network: RecordingXMem) -> None:
    before = torch.get_num_threads()
    try:
        core = InferenceCore(network, device="cpu", threads=1)
        assert torch.get_num_threads() == 1 and core.device == torch.device("cpu")
    finally:
        torch.set_num_threads(before)
    if not torch.cuda.is_available():
        assert InferenceCore(network).device == torch.device("cpu")


def test_network_without_sensory_memory() -> None:
    torch.manual_seed(1)
    core = InferenceCore(XMem(NetworkDims(hidden_dim=0)), device="cpu")
    core.step(frames(1)[0], square_mask())
    for image in frames(6, seed=6):
        prob = core.step(image)
    assert core.memory.hidden is None
    assert prob.shape == (2, SIZE, SIZE) and core.work_elements == 2 * HW


def test_precision_choice_and_cpu_bf16_autocast(network: RecordingXMem) -> None:
    assert InferenceCore(network, device="cpu").precision == "fp32"  # the core's default
    with pytest.raises(ValueError, match="fp16 needs CUDA"):
        InferenceCore(network, device="cpu", precision="fp16")
    with pytest.raises(ValueError, match="precision must be one of"):
        InferenceCore(network, device="cpu", precision="int4")
    # bf16 runs slowly on CPUs without native bf16 kernels: four frames at 32 px (three of them
    # read the memory) are enough to see the network run in bf16 and the output stay float32.
    images, first = frames(4, seed=5, size=32), {0: square_mask(32)}
    fp32 = run(InferenceCore(network, device="cpu", precision="fp32"), network, images, first)
    assert network.calls("segment")[-1]["h_out"].dtype == torch.float32
    bf16 = run(InferenceCore(network, device="cpu", precision="bf16"), network, images, first)
    assert network.calls("segment")[-1]["h_out"].dtype == torch.bfloat16  # the network ran in bf16
    assert all(p.dtype == torch.float32 for p in bf16)  # callers still get float32 probabilities
    difference = max((a - b).abs().max().item() for a, b in zip(fp32, bf16, strict=True))
    assert 0 < difference < 0.1, difference


def test_shift_sensory_moves_the_hidden_state_by_input_pixels(network: RecordingXMem) -> None:
    core = InferenceCore(network, device="cpu")
    images = frames(2, seed=4)
    core.step(images[0], square_mask())
    core.step(images[1])
    before = core.memory.hidden.clone()
    core.shift_sensory(-16.0, 32.0)  # the window moved: content 1 cell up, 2 cells right
    expected = torch.zeros_like(before)
    expected[..., :-1, 2:] = before[..., 1:, :-2]
    torch.testing.assert_close(core.memory.hidden, expected, atol=1e-6, rtol=0)


def test_frozen_graphs_compute_what_eager_mode_does() -> None:
    torch.manual_seed(3)
    network = RecordingXMem().eval()
    for module in network.modules():  # BatchNorm statistics that folding has to get right
        if isinstance(module, torch.nn.BatchNorm2d):
            module.running_mean.uniform_(-0.5, 0.5)
            module.running_var.uniform_(0.5, 2.0)
    images, first = frames(9, seed=7), {0: square_mask()}
    eager = run(InferenceCore(network, device="cpu"), network, images, first)
    core = InferenceCore(network, device="cpu", frozen_graphs=True)
    frozen = run(core, network, images, first)
    assert core.path == "fp32, frozen graphs"
    assert network.calls("segment") == []  # the decoder ran as a graph on every frame
    assert len(core._frozen._graphs) == 3  # the key encoder, the decoder with and without h_out
    difference = max((a - b).abs().max().item() for a, b in zip(eager, frozen, strict=True))
    assert difference < 1e-4, difference
    assert InferenceCore(network, device="cpu", precision="bf16", frozen_graphs=True).path == "bf16"


def test_frozen_graphs_of_an_earlier_grid_are_let_go() -> None:
    torch.manual_seed(4)
    network = XMem().eval()
    core = InferenceCore(network, device="cpu", frozen_graphs=True)
    for size in (64, 48):
        core.reset()
        core.step(frames(1, size=size)[0], square_mask(size))
        core.step(frames(1, seed=1, size=size)[0])
    assert {key[1] for key in core._frozen._graphs if key[0] == "key"} == {(1, 3, 48, 48)}
    assert len(core._frozen._graphs) == 2  # the key encoder and the decoder, both at 48
