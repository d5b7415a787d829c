"""Where the XMem weights come from: the one place every command resolves them.

Order (the first that applies wins; an explicit choice is never silently replaced):
1. `--weights PATH` on the command line;
2. the environment variable TRACKRAD_XMEM_WEIGHTS;
3. grand-challenge's model folder /opt/ml/model/, where it extracts an uploaded model tarball:
   XMem.pth, else trackrad-xmem.pth, else its only *.pth file;
4. resources/XMem.pth, the official checkpoint (the product's frozen XMem), when present;
5. resources/trackrad-xmem.pth, the project's own weights (int8, model.xmem.network.compact):
   the offline fallback, trained on generated sequences only (resources/MODEL_CARD.md).
Every failure is a WeightsError whose message is one line naming the places looked at and how
to get weights. A resolved file is identified by its sha256: "official" (a published XMem
release), "project" (the shipped resources/trackrad-xmem.pth) or "user" (anything else).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import torch

from model.errors import InputError
from model.releases import file_digest, weights_kind
from model.xmem.network.checkpoint import CheckpointError, load_state_dict_file

ENV_VAR = "TRACKRAD_XMEM_WEIGHTS"
RESOURCES_DIR = Path(__file__).resolve().parent.parent / "resources"
MODEL_DIR = Path("/opt/ml/model")
OFFICIAL_NAME = "XMem.pth"
PROJECT_NAME = "trackrad-xmem.pth"
HOW_TO_GET = (
    "get the official XMem.pth with `python -m tools.download_weights` (needs internet) "
    f"or pass --weights PATH / set {ENV_VAR}"
)
PROJECT_WEIGHTS_WARNING = (
    f"XMem runs on the project's own weights ({PROJECT_NAME}), trained on generated sequences only "
    "and weaker on real images than the official checkpoint; "
    "for the official one run `python -m tools.download_weights` or pass --weights XMem.pth"
)


class WeightsError(InputError):
    """No usable weights; str() is a single line meant for the user."""


@dataclass(frozen=True)
class ResolvedWeights:
    path: Path
    source: str  # where it was found: --weights, $TRACKRAD_XMEM_WEIGHTS, /opt/ml/model, resources
    sha256: str
    kind: str  # official, project or user

    def summary(self) -> str:
        return f"{self.path} ({self.kind}, sha256 {self.sha256[:12]}, from {self.source})"


def resolve_weights(
    cli_path: str | os.PathLike[str] | None = None,
    environ: Mapping[str, str] | None = None,
    resources_dir: Path = RESOURCES_DIR,
    model_dir: Path = MODEL_DIR,
) -> tuple[Path, str]:
    """The weights file to use and where it was found, in the order of the module docstring."""
    environ = os.environ if environ is None else environ
    if cli_path is not None:
        return _existing_file(Path(cli_path), "--weights"), "--weights"
    if environ.get(ENV_VAR):
        return _existing_file(Path(environ[ENV_VAR]), f"${ENV_VAR}"), f"${ENV_VAR}"
    uploaded = _model_dir_file(model_dir)
    if uploaded is not None:
        return uploaded, str(model_dir)
    candidates = [resources_dir / OFFICIAL_NAME, resources_dir / PROJECT_NAME]
    for candidate in candidates:
        if candidate.is_file():
            return candidate, "resources"
    looked = ", ".join(str(c) for c in [model_dir, *candidates])
    raise WeightsError(
        f"no XMem weights found (--weights not given, ${ENV_VAR} not set, nothing in {looked}); {HOW_TO_GET}"
    )


def load_weights(
    cli_path: str | os.PathLike[str] | None = None,
    environ: Mapping[str, str] | None = None,
    resources_dir: Path = RESOURCES_DIR,
    model_dir: Path = MODEL_DIR,
) -> tuple[ResolvedWeights, dict[str, torch.Tensor]]:
    """Resolve, identify and read the weights; a file that is no checkpoint is a WeightsError."""
    path, source = resolve_weights(cli_path, environ, resources_dir, model_dir)
    try:
        _, digest = file_digest(path)
        state_dict = load_state_dict_file(path)
    except OSError as error:
        raise WeightsError(f"{path}: cannot read the XMem weights ({error.strerror or error})") from None
    except CheckpointError as error:
        # CheckpointError messages may span lines; the user gets one.
        reason = " ".join(str(error).split())
        raise WeightsError(f"{path} is not a usable XMem checkpoint ({reason}); {HOW_TO_GET}") from None
    return ResolvedWeights(path, source, digest, weights_kind(digest)), state_dict


def _model_dir_file(model_dir: Path) -> Path | None:
    """The weights in an uploaded model folder: a preferred name, else its only .pth file."""
    if not model_dir.is_dir():
        return None
    for name in (OFFICIAL_NAME, PROJECT_NAME):
        if (model_dir / name).is_file():
            return model_dir / name
    found = sorted(p for p in model_dir.glob("*.pth") if p.is_file())
    if len(found) > 1:
        names = ", ".join(p.name for p in found)
        raise WeightsError(
            f"{model_dir}: {len(found)} weights files ({names}); name the one to use "
            f"{OFFICIAL_NAME} or {PROJECT_NAME}, or pass --weights"
        )
    return found[0] if found else None


def _existing_file(path: Path, source: str) -> Path:
    if not path.is_file():
        what = "is a directory, not a file" if path.is_dir() else "does not exist"
        raise WeightsError(f"XMem weights {path} (from {source}) {what}; {HOW_TO_GET}")
    return path
