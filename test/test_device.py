"""model.device.resolve_device: the one place a device name becomes a torch device."""

import pytest
import torch

from model.device import resolve_device
from model.trackers.xmem import XMemSettings
from model.xmem.inference.inference_core import InferenceCore


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
