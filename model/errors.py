"""The one error type the commands report as a single line: a problem with something the user
gave (an input file, weights, a setting, a place to write to). Its message names the file or
setting and the problem. Anything else that goes wrong is a bug and keeps its traceback.

Also the commands' shared exit-code convention (`run_command`), their warning lines (`warn`,
kept for the run report), and `quiet_native_stderr` for the
C++ libraries (ITK, OpenCV) that print their own complaints before the project's line.
"""

from __future__ import annotations

import contextlib
import os
import sys
import warnings
from collections.abc import Callable, Iterator

# The warning lines the running command has printed (`warn`), for its run report.
_printed_warnings: list[str] = []


class InputError(Exception):
    """A user-facing problem; str(error) is one line naming the file or setting."""


def run_command(body: Callable[[], int | None], also_user_errors: tuple[type[Exception], ...] = ()) -> int:
    """Run a command's body under the exit-code convention of every `python -m` command here.

    0: success (`body` returned None or 0; a body may return its own code, e.g. 1 for a run
    that finished but failed its checks).
    1: an InputError (or one of `also_user_errors`, for commands whose library code signals bad
    values with ValueError) or a file that cannot be read or written, reported as exactly one
    `error: <file>: <problem>` line on stderr.
    2: usage errors, which argparse reports (and exits with) before the body runs.
    Python warnings raised while the body runs are printed as one `warning: ...` line each;
    `printed_warnings()` lists every warning line of the run so far.
    """
    _printed_warnings.clear()
    try:
        with warnings.catch_warnings():  # restores showwarning afterwards (in-process callers)
            warnings.showwarning = _print_warning_line
            code = body()
    except (InputError, *also_user_errors) as error:
        print(f"error: {_one_line(str(error))}", file=sys.stderr)
        return 1
    except OSError as error:
        where = f"{error.filename}: " if error.filename else ""
        print(f"error: {where}{_one_line(error.strerror or str(error))}", file=sys.stderr)
        return 1
    return code or 0


def _print_warning_line(
    message: Warning | str,
    category: type[Warning],
    filename: str,
    lineno: int,
    file: object = None,
    line: str | None = None,
) -> None:
    warn(f"{category.__name__}: {message}")


def warn(message: str) -> None:
    """Print `message` as one `warning: ...` line on stderr and keep it for the run report."""
    line = _one_line(message)
    print(f"warning: {line}", file=sys.stderr)
    _printed_warnings.append(line)


def printed_warnings() -> list[str]:
    """The warning lines printed since the command started (without the `warning: ` prefix)."""
    return list(_printed_warnings)


def _one_line(text: str) -> str:
    return " ".join(text.split())


@contextlib.contextmanager
def quiet_native_stderr() -> Iterator[None]:
    """Send file descriptor 2 to /dev/null for the duration: ITK's MetaIO and OpenCV print on
    it directly (e.g. `MetaImage: M_ReadElementsData: data not read completely`); the caller
    reports the problem in its own one line instead."""
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "w") as devnull:
            os.dup2(devnull.fileno(), 2)
            yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
