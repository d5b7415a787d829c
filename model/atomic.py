"""The one way files are written here: complete and checked, or not at all.

`write_atomically` writes to a temporary file in the target folder, flushes it to the disk,
checks it (not empty, plus a check the caller supplies: read the header back, parse the JSON,
load the checkpoint...), sets mode 0644 and only then renames it into place. Any failure removes
the temporary file and raises WriteError, one line naming the target. Libraries that fail
silently on a full disk (SimpleITK writes a 0-byte or cut-off .mha and raises nothing) are caught
by the check; their own messages on stderr are silenced, the WriteError replaces them.
"""

from __future__ import annotations

import errno
import os
import tempfile
from collections.abc import Callable
from pathlib import Path

from model.errors import InputError, quiet_native_stderr

# Read by other users: grand-challenge reads /output from outside the container as another
# user, whatever the umask inside it was.
FILE_MODE = 0o644


class WriteError(InputError):
    """A file could not be written completely; str() is one line naming it and the reason."""


def write_atomically(path: Path, write: Callable[[Path], object], check: Callable[[Path], None] | None = None) -> Path:
    """Call `write(temporary)`, verify, and rename the result to `path`; return `path`.

    The temporary file lies in `path`'s folder (created if needed) and keeps `path`'s suffix,
    because SimpleITK, OpenCV and Pillow choose the format from it. `check(temporary)` raises
    (any exception; its last line becomes the reason) if the written file is not what it
    should be. On any failure nothing new is left at `path` or beside it.
    """
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise WriteError(f"{path}: cannot write (its folder cannot be created: {error.strerror})") from None
    try:
        handle, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=path.suffix)
        os.close(handle)
    except OSError as error:
        raise WriteError(f"{path}: cannot write ({_reason(error, path)})") from None
    temporary = Path(name)
    try:
        with quiet_native_stderr():
            write(temporary)
            _flush_to_disk(temporary)
            if temporary.stat().st_size == 0:
                raise OSError(errno.EIO, "the written file is empty")
            if check is not None:
                check(temporary)
        os.chmod(temporary, FILE_MODE)
        os.replace(temporary, path)
    except Exception as error:  # whatever the writer or the check raised: one line, no file
        temporary.unlink(missing_ok=True)
        # A check's message may name the temporary file: name the target, once.
        reason = _reason(error, path).replace(f"{temporary}: ", "").replace(str(temporary), str(path))
        raise WriteError(f"{path}: cannot write ({reason})") from None
    return path


def _flush_to_disk(path: Path) -> None:
    # A filesystem that allocates late reports a full disk here rather than on write().
    descriptor = os.open(path, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def _reason(error: Exception, path: Path) -> str:
    if isinstance(error, OSError) and error.strerror:
        text = error.strerror
    else:  # C++ libraries put the useful part last, after the source location
        lines = [line.strip() for line in str(error).splitlines() if line.strip()]
        text = lines[-1] if lines else type(error).__name__
    if isinstance(error, OSError) and error.errno == errno.ENOSPC:
        return text
    try:
        full = os.statvfs(path.parent).f_bavail == 0
    except OSError:
        full = False
    return f"{text}; no space left on the device" if full else text
