"""Which torch device a command runs on: the one place that turns a device name into a device."""

from __future__ import annotations

import torch

AUTO = "auto"


def resolve_device(name: str | torch.device | None = AUTO) -> torch.device:
    """`auto` (or None): CUDA when available, else the CPU; otherwise the named device, checked.

    An unknown name, or a CUDA device this machine does not have, raises ValueError with one
    line that says so, before any weights are loaded or work is done.
    """
    if name is None or name == AUTO:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise ValueError(f"unknown device {str(name)!r}") from None
    if device.type == "cuda":
        available = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if (device.index or 0) >= available:
            raise ValueError(f"device {str(name)!r} is not available ({available} CUDA device(s) here)")
    return device


def cpu_has_native_bf16() -> bool:
    """Whether this CPU computes bf16 natively (AVX512-BF16 or AMX): there bf16 autocast runs the
    network about 1.9x faster than fp32 with the same scores (docs/results.md, "Precision");
    elsewhere bf16 is emulated and slower."""
    try:
        return bool(torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported())
    except AttributeError:  # a torch build without these probes: assume no native bf16
        return False


def fast_cpu_precision() -> str:
    """The precision the network runs fastest in on this CPU: bf16 where it is native, else fp32."""
    return "bf16" if cpu_has_native_bf16() else "fp32"


def emulated_bf16_warning(precision: str, device_type: str) -> str | None:
    """One line when bf16 runs on a CPU that only emulates it (about 50x slower than fp32 on an
    AVX2-only CPU: 212 s a frame against 4.4 s), else None."""
    if precision != "bf16" or device_type != "cpu" or cpu_has_native_bf16():
        return None
    return (
        "precision bf16 on this CPU (no AVX512-BF16 or AMX) is emulated and runs about 50x slower "
        "than fp32; --precision fp32 (or auto) is fast here"
    )


def describe_device(device: torch.device) -> str:
    """e.g. "cpu (2 threads)" or "cuda:0 NVIDIA H200 (139.8 GiB)", for run reports."""
    if device.type != "cuda":
        return f"{device.type} ({torch.get_num_threads()} threads)"
    properties = torch.cuda.get_device_properties(device)
    return f"{device} {properties.name} ({properties.total_memory / 2**30:.1f} GiB)"
