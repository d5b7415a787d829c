"""The weights files this project knows by content: the official XMem releases and its own.

Free of torch on purpose: build.sh identifies and checks weights with only the standard library.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

RELEASE_URL = "https://github.com/hkchengrex/XMem/releases/download/v1.0/"
CHUNK = 1 << 20


@dataclass(frozen=True)
class Expected:
    """What a complete file must look like; None = not known, report instead of check."""

    size: int | None = None
    sha256: str | None = None


RELEASES: dict[str, Expected] = {
    # The v1.0 release asset (its MD5 is a0c894e24ca02440a3b7b8b4fa6983dc).
    "XMem.pth": Expected(249_026_057, "27776291d2f0639b4e6b372a67651579b51180aa4d8f8f89bbff2dcc09ebf6f9"),
    # No digest has been published for the BL30K variant: it is checked by loading it.
    "XMem-s012.pth": Expected(),
}
# resources/trackrad-xmem.pth, the project's own weights (test_weights checks it against the file).
PROJECT_SHA256 = "7184089f63e6b51b07dde05f5c41c6792448e91bc87280b96261ca2fc2f88e21"


def file_digest(path: Path) -> tuple[int, str]:
    """(size in bytes, sha256 hex) of a file, read in chunks."""
    digest = hashlib.sha256()
    size = 0
    with open(path, "rb") as handle:
        while chunk := handle.read(CHUNK):
            digest.update(chunk)
            size += len(chunk)
    return size, digest.hexdigest()


def release_of(sha256: str) -> str | None:
    """The name of the official release with this digest, if any."""
    return next((name for name, known in RELEASES.items() if known.sha256 == sha256), None)


def weights_kind(sha256: str) -> str:
    """official (a published XMem release), project (resources/trackrad-xmem.pth) or user."""
    if release_of(sha256) is not None:
        return "official"
    return "project" if sha256 == PROJECT_SHA256 else "user"
