"""XMem memory: readout maths, working/long-term accounting, eviction, boundedness (CPU, random tensors)."""

from __future__ import annotations

import resource

import pytest
import torch

from model.xmem.inference.config import InferenceConfig
from model.xmem.inference.memory_manager import MemoryManager
from model.xmem.network.memory_util import (
    memory_operand,
    query_operand,
    readout,
    similarity,
    softmax_affinity,
    top_k_readout,
    top_k_softmax,
    top_k_usage,
)

CK, CV = 8, 4


def frame(h: int = 8, w: int = 8, n: int = 1, gen: torch.Generator | None = None):
    """Random (key, shrinkage ≥ 1, value, selection ∈ (0,1)) for one frame at feature size h×w."""
    key = torch.randn(1, CK, h, w, generator=gen)
    shrinkage = torch.rand(1, 1, h, w, generator=gen) * 3 + 1
    value = torch.randn(1, n, CV, h, w, generator=gen)
    selection = torch.rand(1, CK, h, w, generator=gen)
    return key, shrinkage, value, selection


def dense_top_k(sim: torch.Tensor, k: int) -> torch.Tensor:
    """Reference: B×M×HW similarity → dense affinity with all but the top k per column zeroed."""
    kth = sim.topk(k, dim=1).values[:, -1:]
    return torch.softmax(sim.masked_fill(sim < kth, float("-inf")), dim=1)


def test_operand_similarity_equals_spec_similarity() -> None:
    mk, ms = torch.randn(1, CK, 50), torch.rand(1, 1, 50) + 1
    qk, qe = torch.randn(1, CK, 20), torch.rand(1, CK, 20)
    # Direct formula: −s_i Σ_c e_cj (k_ci − q_cj)² / √CK, M×HW.
    diff2 = (mk[0][:, :, None] - qk[0][:, None]).pow(2)  # CK×M×HW
    expected = -ms[0, 0][:, None] * (qe[0][:, None] * diff2).sum(0) / CK**0.5
    assert torch.allclose(similarity(mk, ms, qk, qe)[0], expected, atol=1e-4)
    fast = query_operand(qk[0].t(), qe[0].t()) @ memory_operand(mk[0].t(), ms[0, 0]).t()
    assert torch.allclose(fast.t(), expected, atol=1e-4)


def test_top_k_readout_equals_dense_reference() -> None:
    gen = torch.Generator().manual_seed(0)
    m, hw, k = 200, 30, 30
    mk, ms = torch.randn(1, CK, m, generator=gen), torch.rand(1, 1, m, generator=gen) + 1
    qk, qe = torch.randn(1, CK, hw, generator=gen), torch.rand(1, CK, hw, generator=gen)
    values = torch.randn(1, 16, m, generator=gen)

    affinity = dense_top_k(similarity(mk, ms, qk, qe), k)
    expected = readout(affinity, values)[0]  # 16×HW

    sim = query_operand(qk[0].t(), qe[0].t()) @ memory_operand(mk[0].t(), ms[0, 0]).t()
    weights, indices = top_k_softmax(sim, k)
    assert torch.allclose(top_k_readout(values[0].t().contiguous(), weights, indices).t(), expected, atol=1e-5)
    assert torch.allclose(top_k_usage(weights, indices, m), affinity[0].sum(1), atol=1e-5)
    # Fewer elements than k: all of them are used, i.e. the plain softmax.
    w_all, i_all = top_k_softmax(sim[:, :10], k)
    full = readout(softmax_affinity(similarity(mk[..., :10], ms[..., :10], qk, qe)), values[..., :10])[0]
    assert torch.allclose(top_k_readout(values[0, :, :10].t().contiguous(), w_all, i_all).t(), full, atol=1e-5)


def test_manager_readout_spans_long_term_and_working_memory() -> None:
    gen = torch.Generator().manual_seed(1)
    memory = MemoryManager(InferenceConfig(num_prototypes=20))
    for _ in range(10):
        key, shrinkage, value, selection = frame(gen=gen)
        memory.add_memory(key, shrinkage, value, selection)
    assert memory.long_term_elements == 20
    key, _, _, selection = frame(gen=gen)
    got = memory.match_memory(key, selection)

    lt, wm = memory.long_term, memory.work
    mk = torch.cat([lt.key, wm.key]).t()[None]
    ms = torch.cat([lt.shrinkage, wm.shrinkage])[None, None]
    values = torch.cat([lt.values[0], wm.values[0]]).t()[None]
    affinity = dense_top_k(similarity(mk, ms, key.flatten(2), selection.flatten(2)), 30)
    expected = readout(affinity, values).view(1, 1, CV, 8, 8)
    assert torch.allclose(got, expected, atol=1e-5)
    # That read counted usage in both stores (one query frame each).
    assert torch.allclose(lt.use_count.sum() + wm.use_count.sum(), torch.tensor(64.0), atol=1e-3)
    assert torch.all(lt.life_count >= 1) and torch.all(wm.life_count >= 1)


def test_ten_memory_frames_give_five_working_frames_and_128_prototypes() -> None:
    gen = torch.Generator().manual_seed(2)
    memory = MemoryManager(InferenceConfig())
    hw = 64
    first_key = None
    for t in range(10):
        key, shrinkage, value, selection = frame(gen=gen)
        if first_key is None:
            first_key = key
        memory.add_memory(key, shrinkage, value, selection)
        memory.match_memory(*frame(gen=gen)[::3])
        if t < 9:
            assert memory.work_elements == (t + 1) * hw and memory.long_term_elements == 0
    assert memory.work_elements == 5 * hw
    assert memory.long_term_elements == 128
    assert memory.work.values[0].shape == (5 * hw, CV)
    assert memory.long_term.values[0].shape == (128, CV)
    assert memory.long_term.selection is None  # LT stores no selection
    assert torch.equal(memory.work.key[:hw], first_key[0].flatten(1).t())

    # Keep going: the first memory frame is never consolidated away.
    for _ in range(40):
        key, shrinkage, value, selection = frame(gen=gen)
        memory.add_memory(key, shrinkage, value, selection)
        assert torch.equal(memory.work.key[:hw], first_key[0].flatten(1).t())
    assert memory.long_term_elements == 128 * 9


def test_prototypes_are_the_most_used_candidates() -> None:
    gen = torch.Generator().manual_seed(3)
    memory = MemoryManager(InferenceConfig(num_prototypes=10))
    for _ in range(9):
        memory.add_memory(*frame(gen=gen))
    # Make ten candidate elements (frames 2..6 are candidates) clearly the most used.
    favourites = torch.arange(64, 64 + 5 * 64, 32)
    memory.work.use_count[favourites] = 100.0
    favourite_keys = memory.work.key[favourites].clone()
    memory.add_memory(*frame(gen=gen))
    chosen = memory.long_term.key
    assert chosen.shape == (10, CK)
    assert (chosen[:, None] == favourite_keys[None]).all(-1).any(0).all()
    assert memory.work_elements == 5 * 64


def test_long_term_store_never_exceeds_its_cap() -> None:
    gen = torch.Generator().manual_seed(4)
    config = InferenceConfig(max_long_term_elements=100, num_prototypes=16, enable_long_term_count_usage=True)
    memory = MemoryManager(config)
    at_cap = None
    for _ in range(120):  # 4×4 features: 16 elements per memory frame
        key, shrinkage, value, selection = frame(4, 4, gen=gen)
        memory.add_memory(key, shrinkage, value, selection)
        memory.match_memory(*frame(4, 4, gen=gen)[::3])
        assert memory.long_term_elements <= 100
        assert memory.work_elements < 10 * 16
        if at_cap is None and memory.long_term_elements > 100 - 16:
            at_cap = memory.long_term.key.clone()
    # The cap was reached early and consolidation went on: eviction made room for new prototypes.
    assert at_cap is not None and memory.long_term_elements > 100 - 16
    assert not (memory.long_term.key[:, None] == at_cap[None]).all(-1).any(1).all()


def test_eviction_removes_the_least_used_long_term_elements() -> None:
    memory = MemoryManager(InferenceConfig(max_long_term_elements=40, num_prototypes=8))
    lt = memory.long_term
    lt.add(torch.randn(40, CK), torch.ones(40), [torch.randn(40, CV)], [[0]])
    lt.use_count[:] = torch.arange(40.0)
    lt.life_count[:] = 1.0
    marker = lt.key[10:].clone()
    memory._evict_long_term(30)
    assert lt.size == 30 and lt.values[0].shape[0] == 30
    assert torch.equal(lt.key, marker)


def test_without_long_term_working_memory_grows_and_counts_no_usage() -> None:
    gen = torch.Generator().manual_seed(5)
    memory = MemoryManager(InferenceConfig(enable_long_term=False))
    for _ in range(15):
        key, shrinkage, value, _ = frame(4, 4, gen=gen)
        memory.add_memory(key, shrinkage, value)
        memory.match_memory(*frame(4, 4, gen=gen)[::3])
    assert memory.work_elements == 15 * 16 and memory.long_term_elements == 0
    assert memory.work.use_count is None and memory.element_bound is None


def test_objects_added_later_form_a_group_read_from_its_own_frames() -> None:
    gen = torch.Generator().manual_seed(6)
    memory = MemoryManager(InferenceConfig(top_k=5))
    for _ in range(3):
        memory.add_memory(*frame(gen=gen))
    late = frame(n=2, gen=gen)
    memory.add_memory(*late)
    assert memory.work.groups == [[0], [1]]
    assert memory.work.values[1].shape == (64, CV)
    key, _, _, selection = frame(gen=gen)
    out = memory.match_memory(key, selection)
    assert out.shape == (1, 2, CV, 8, 8)
    # Object 1 has values for the last frame only: its readout uses those 64 elements alone.
    mk, ms = memory.work.key[-64:].t()[None], memory.work.shrinkage[-64:][None, None]
    affinity = dense_top_k(similarity(mk, ms, key.flatten(2), selection.flatten(2)), 5)
    expected = readout(affinity, memory.work.values[1].t()[None]).view(1, CV, 8, 8)
    assert torch.allclose(out[:, 1], expected, atol=1e-5)


def _rss_bytes() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * resource.getpagesize()


def test_memory_stays_bounded_over_2000_frames() -> None:
    gen = torch.Generator().manual_seed(7)
    config = InferenceConfig(max_long_term_elements=300, num_prototypes=32)
    memory = MemoryManager(config, count_long_term_usage=config.count_long_term_usage(2000))
    assert memory.long_term.count_usage
    rss = {}
    for t in range(2000):
        key, shrinkage, value, selection = frame(4, 4, gen=gen)
        if t > 0:
            memory.match_memory(key, selection)
        if t % config.mem_every == 0:
            memory.add_memory(key, shrinkage, value, selection)
        assert memory.work_elements + memory.long_term_elements <= memory.element_bound
        if t + 1 in (500, 2000):
            rss[t + 1] = _rss_bytes()
    assert memory.element_bound == 10 * 16 + 300
    assert memory.long_term_elements > 300 - 32  # LT was filled and evicted, not left empty
    assert rss[2000] < 1.1 * rss[500]


def test_config_validation_and_usage_rule() -> None:
    with pytest.raises(ValueError, match="max_mid_term_frames"):
        InferenceConfig(max_mid_term_frames=5, min_mid_term_frames=5)
    with pytest.raises(ValueError, match="top_k"):
        InferenceConfig(top_k=0)
    with pytest.raises(ValueError, match="deep_update_every"):
        InferenceConfig(deep_update_every=0)
    with pytest.raises(ValueError, match="num_prototypes"):
        InferenceConfig(max_long_term_elements=128)
    config = InferenceConfig()
    # n·P/(T_max − T_min) ≥ LT_max ⇔ n ≥ 390.625 with the defaults.
    assert not config.count_long_term_usage(390) and config.count_long_term_usage(391)
    assert config.count_long_term_usage(None)
    assert not InferenceConfig(enable_long_term_count_usage=False).count_long_term_usage(5000)


def test_shifting_the_sensory_memory_moves_its_content_and_fills_zeros() -> None:
    manager = MemoryManager(InferenceConfig())
    hidden = torch.randn(1, 2, 3, 6, 8)
    manager.hidden = hidden.clone()
    manager.shift_hidden(2.0, -1.0)  # content 2 cells down, 1 cell left
    expected = torch.zeros_like(hidden)
    expected[..., 2:, :-1] = hidden[..., :-2, 1:]
    torch.testing.assert_close(manager.hidden, expected, atol=1e-6, rtol=0)
    # A half cell is the mean of the two neighbours it falls between.
    manager.hidden = hidden.clone()
    manager.shift_hidden(0.0, 0.5)
    torch.testing.assert_close(manager.hidden[..., 1:], (hidden[..., 1:] + hidden[..., :-1]) / 2, atol=1e-6, rtol=0)
    manager.hidden = None
    manager.shift_hidden(1.0, 1.0)  # nothing to move yet: no error
    assert manager.hidden is None
