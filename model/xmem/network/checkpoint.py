"""Loading XMem checkpoints: flat state dicts saved with torch.save(model.state_dict()).

docs/network.md, "The checkpoint", lists the keys and the loading rules."""

from __future__ import annotations

import pickle
import warnings
from collections.abc import Mapping
from os import PathLike
from pathlib import Path

import torch
from torch import Tensor

from model.atomic import write_atomically
from model.errors import InputError
from model.xmem.network.compact import expand_state_dict, is_compact
from model.xmem.network.network import NetworkDims, XMem

_KEY_WEIGHT = "key_proj.key_proj.weight"
_VALUE_WEIGHT = "value_encoder.fuser.block2.conv2.weight"
_HIDDEN_WEIGHT = "decoder.hidden_update.transform.weight"
_VALUE_CONV1 = "value_encoder.conv1.weight"
_BN_COUNTER = "num_batches_tracked"
_LISTED = 3  # keys named per category in an error message


class CheckpointError(InputError):
    """A file that is not an XMem checkpoint, or one that does not fit the network (one line)."""


def load_state_dict_file(path: str | PathLike) -> dict[str, Tensor]:
    """Read a flat state dict (str → Tensor) from `path` onto the CPU; a compact (int8) one
    is expanded to fp32 (model.xmem.network.compact)."""
    try:
        with warnings.catch_warnings():  # e.g. "Detected pickle protocol 4": the error says it all
            warnings.simplefilter("ignore")
            loaded = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise CheckpointError(f"{path}: no such file") from None
    except pickle.UnpicklingError:
        # PyTorch's message advises weights_only=False, which would run code from the file.
        raise CheckpointError(
            f"{path}: not a PyTorch checkpoint of tensors (it holds other pickled Python objects, "
            "which are never loaded)"
        ) from None
    except Exception as error:  # torch.load raises many types (zip, EOF, ...)
        first_line = (str(error).strip().splitlines() or [""])[0]
        raise CheckpointError(f"{path}: not a PyTorch checkpoint ({type(error).__name__}: {first_line})") from None
    if not isinstance(loaded, Mapping):
        raise CheckpointError(f"{path}: not a state dict (holds a {type(loaded).__name__})")
    for key, value in loaded.items():
        if not isinstance(key, str) or not isinstance(value, Tensor):
            raise CheckpointError(
                f"{path}: not a flat state dict (entry {key!r} is a {type(value).__name__}, not a tensor)"
            )
    if is_compact(loaded):
        try:
            return expand_state_dict(loaded)
        except ValueError as error:
            raise CheckpointError(f"{path}: broken compact checkpoint: {error}") from None
    return dict(loaded)


def infer_dims(state_dict: Mapping[str, Tensor]) -> NetworkDims:
    """key/value/hidden dims from tensor shapes; hidden_dim 0 when the sensory-memory keys are absent."""
    missing = [k for k in (_KEY_WEIGHT, _VALUE_WEIGHT) if k not in state_dict]
    if missing:
        raise CheckpointError(f"not an XMem state dict: missing {', '.join(missing)}")
    hidden_dim = 0
    if _HIDDEN_WEIGHT in state_dict:
        hidden_out = state_dict[_HIDDEN_WEIGHT].shape[0]
        if hidden_out % 3:
            raise CheckpointError(f"{_HIDDEN_WEIGHT} has {hidden_out} output channels, not a multiple of 3")
        hidden_dim = hidden_out // 3
    return NetworkDims(
        key_dim=state_dict[_KEY_WEIGHT].shape[0],
        value_dim=state_dict[_VALUE_WEIGHT].shape[0],
        hidden_dim=hidden_dim,
    )


def _listing(keys: list[str]) -> str:
    shown = ", ".join(keys[:_LISTED])
    return shown + (f" (+{len(keys) - _LISTED} more)" if len(keys) > _LISTED else "")


def _mismatch(model: XMem, state_dict: dict[str, Tensor]) -> str:
    """A description of every key/shape difference between model and state dict ('' if none)."""
    expected = model.state_dict()
    missing = [k for k in expected if k not in state_dict]
    unexpected = [k for k in state_dict if k not in expected]
    shapes = [
        f"{k} {list(state_dict[k].shape)} vs model {list(v.shape)}"
        for k, v in expected.items()
        if k in state_dict and state_dict[k].shape != v.shape
    ]
    problems = []
    if missing:
        problems.append(f"missing keys {_listing(missing)}")
    if unexpected:
        problems.append(f"unexpected keys {_listing(unexpected)}")
    if shapes:
        problems.append(f"wrong shapes {_listing(shapes)}")
    return "; ".join(problems)


def _prepare(state_dict: Mapping[str, Tensor], model: XMem) -> dict[str, Tensor]:
    """A 4-channel value-encoder conv1 padded to 5 and the BN counters filled in.

    fp16 weights need no conversion here: load_state_dict copies them into float32 parameters.
    """
    prepared = dict(state_dict)
    conv1 = prepared.get(_VALUE_CONV1)
    if conv1 is not None and conv1.dim() == 4 and conv1.shape[1] == 4 and not model.single_object:
        # Single-object (stage-0) weights: the "others" channel starts at zero (docs/network.md, "Loading").
        prepared[_VALUE_CONV1] = torch.cat([conv1, conv1.new_zeros(conv1.shape[0], 1, *conv1.shape[2:])], 1)
    # num_batches_tracked never affects eval-mode outputs: accept its presence or absence.
    for key, value in model.state_dict().items():
        if key.endswith(_BN_COUNTER) and key not in prepared:
            prepared[key] = value
    return prepared


def load_network(
    path_or_state_dict: str | PathLike | Mapping[str, Tensor],
    single_object: bool = False,
    device: str | torch.device = "cpu",
) -> XMem:
    """Build XMem with dims inferred from the weights, load them strictly, return it in eval mode."""
    if isinstance(path_or_state_dict, Mapping):
        source, state_dict = "state dict", path_or_state_dict
    else:
        source, state_dict = str(path_or_state_dict), load_state_dict_file(path_or_state_dict)

    try:
        dims = infer_dims(state_dict)
    except CheckpointError as error:
        raise CheckpointError(f"{source}: {error}") from None
    model = XMem(dims, single_object=single_object)
    state_dict = _prepare(state_dict, model)

    problems = _mismatch(model, state_dict)
    if problems:
        raise CheckpointError(f"{source}: does not match XMem with {dims}: {problems}")
    model.load_state_dict(state_dict, strict=True)
    return model.to(device).eval()


def save_checked_state_dict(state_dict: Mapping[str, Tensor], destination: Path) -> None:
    """Write a state dict that inference can load, or nothing: the file is written beside the
    destination, must load strictly, and only then takes the destination's name (model.atomic).

    Raises model.atomic.WriteError (cannot write, or the written file does not load).
    """
    write_atomically(
        destination,
        lambda temporary: torch.save(dict(state_dict), temporary),
        check=lambda temporary: load_network(load_state_dict_file(temporary)),
    )
