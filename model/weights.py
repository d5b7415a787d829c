"""Where the XMem weights come from: the one place every command resolves them.

Order (the first that applies wins; an explicit choice is never silently replaced):
1. `--weights PATH` on the command line;
2. the environment variable TRACKRAD_XMEM_WEIGHTS;
3. the first file that exists of resources/trackrad-xmem.pth (this project's own, int8: model.xmem.network.compact) and
   resources/XMem.pth (the official release, `python -m tools.download_weights` puts it there).
Every failure is a WeightsError whose message is one line naming the places looked at and how
to get weights.
"""
from __future__ import annotations

import argparse
import os
from collections.abc import Mapping
from pathlib import Path

import torch

from model.errors import InputError
from model.xmem.network.checkpoint import CheckpointError, load_state_dict_file

ENV_VAR = "TRACKRAD_XMEM_WEIGHTS"
RESOURCES_DIR = Path(__file__).resolve().parent.parent / "resources"
RESOURCE_NAMES = ("trackrad-xmem.pth", "XMem.pth")
HOW_TO_GET = (
    "download the official weights with `python -m tools.download_weights` (needs internet) "
    f"or pass --weights PATH / set {ENV_VAR}"
)


class WeightsError(InputError):
    """No usable weights; str() is a single line meant for the user."""


def resolve_weights(
    cli_path: str | os.PathLike[str] | None = None,
    environ: Mapping[str, str] | None = None,
    resources_dir: Path = RESOURCES_DIR,
) -> Path:
    """The weights file to use, following the order in the module docstring."""
    environ = os.environ if environ is None else environ
    if cli_path is not None:
        return _existing_file(Path(cli_path), "--weights")
    if environ.get(ENV_VAR):
        return _existing_file(Path(environ[ENV_VAR]), f"${ENV_VAR}")
    candidates = [resources_dir / name for name in RESOURCE_NAMES]
    for candidate in candidates:
        if candidate.is_file():
            return candidate
    looked = ", ".join(str(c) for c in candidates)
    raise WeightsError(
        f"no XMem weights found (--weights not given, ${ENV_VAR} not set, none of {looked} "
        f"exists); {HOW_TO_GET}"
    )


def load_weights(
    cli_path: str | os.PathLike[str] | None = None,
    environ: Mapping[str, str] | None = None,
    resources_dir: Path = RESOURCES_DIR,
) -> tuple[Path, dict[str, torch.Tensor]]:
    """Resolve the weights and read their state dict; a file that is no checkpoint is a WeightsError."""
    path = resolve_weights(cli_path, environ, resources_dir)
    try:
        return path, load_state_dict_file(path)
    except CheckpointError as error:
        # CheckpointError messages may span lines; the user gets one.
        reason = " ".join(str(error).split())
        raise WeightsError(f"{path} is not a usable XMem checkpoint ({reason}); {HOW_TO_GET}") from None


def add_weights_argument(parser: argparse.ArgumentParser) -> None:
    """The shared `--weights` option (default: environment variable, then resources/)."""
    parser.add_argument(
        "--weights",
        metavar="PATH",
        default=None,
        help=f"XMem weights (.pth); default: ${ENV_VAR}, else resources/{' or resources/'.join(RESOURCE_NAMES)}",
    )


def _existing_file(path: Path, source: str) -> Path:
    if not path.is_file():
        what = "is a directory, not a file" if path.is_dir() else "does not exist"
        raise WeightsError(f"XMem weights {path} (from {source}) {what}; {HOW_TO_GET}")
    return path
