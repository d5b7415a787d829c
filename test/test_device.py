"""model.device: the one place a device name becomes a torch device, and the CPU's bf16 probe."""

import pytest
import torch

from model.device import cpu_has_native_bf16, emulated_bf16_warning, resolve_device
from model.trackers.xmem import XMemSettings
from model.xmem.inference.inference_core import InferenceCore, resolve_precision


def test_auto_and_none_pick_cuda_when_available_else_cpu():
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert resolve_device("auto").type == expected and resolve_device(None).type == expected
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device(torch.device("cpu")) == torch.device("cpu")


def test_bad_names_are_one_line_errors():
    with pytest.raises(ValueError, match="^unknown device 'gpu0'$"):
        resolve_device("gpu0")
    missing = torch.cuda.device_count() if torch.cuda.is_available() else 0
    with pytest.raises(ValueError, match=rf"^device 'cuda:{missing}' is not available \({missing} CUDA device"):
        resolve_device(f"cuda:{missing}")


def test_tracker_settings_and_the_inference_core_use_it():
    with pytest.raises(ValueError, match="unknown device 'gpu0'"):
        XMemSettings(device="gpu0")
    assert XMemSettings(device="cpu").network.torch_device() == torch.device("cpu")
    with pytest.raises(ValueError, match="unknown device 'gpu0'"):
        InferenceCore(torch.nn.Identity(), device="gpu0")  # checked before the network is used


def test_auto_precision_is_bf16_only_on_cpus_with_native_bf16(monkeypatch):
    import model.xmem.inference.inference_core as core_module

    cpu, cuda = torch.device("cpu"), torch.device("cuda")
    monkeypatch.setattr(core_module, "cpu_has_native_bf16", lambda: True)
    assert resolve_precision("auto", cpu) == "bf16" and resolve_precision("auto", cuda) == "fp16"
    monkeypatch.setattr(core_module, "cpu_has_native_bf16", lambda: False)
    assert resolve_precision("auto", cpu) == "fp32" and resolve_precision("bf16", cpu) == "bf16"


def test_native_bf16_probe_answers_false_without_torch_probes(monkeypatch):
    assert isinstance(cpu_has_native_bf16(), bool)
    monkeypatch.delattr(torch.cpu, "_is_avx512_bf16_supported", raising=False)
    monkeypatch.delattr(torch.cpu, "_is_amx_tile_supported", raising=False)
    assert cpu_has_native_bf16() is False


def test_fp16_on_the_cpu_names_the_precision_that_is_fast_on_this_cpu(monkeypatch):
    import model.device

    for native, fast in ((False, "fp32"), (True, "bf16")):
        monkeypatch.setattr(model.device, "cpu_has_native_bf16", lambda native=native: native)
        with pytest.raises(ValueError, match=f"on this CPU use {fast}"):
            resolve_precision("fp16", torch.device("cpu"))


def test_bf16_warns_only_on_a_cpu_that_emulates_it(monkeypatch):
    import model.device

    monkeypatch.setattr(model.device, "cpu_has_native_bf16", lambda: False)
    assert "50x slower than fp32" in emulated_bf16_warning("bf16", "cpu")
    assert emulated_bf16_warning("fp32", "cpu") is None and emulated_bf16_warning("bf16", "cuda") is None
    monkeypatch.setattr(model.device, "cpu_has_native_bf16", lambda: True)
    assert emulated_bf16_warning("bf16", "cpu") is None
