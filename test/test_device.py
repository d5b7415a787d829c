"""model.device: the one place a device name becomes a torch device, and the CPU's bf16 probe."""

import pytest
import torch

from model.device import cpu_has_native_bf16, resolve_device
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
    assert XMemSettings(device="cpu").torch_device() == torch.device("cpu")
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
