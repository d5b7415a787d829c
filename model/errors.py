"""The one error type the entry point reports as a single line: a problem with something the user
gave (an input file, weights, a setting). Its message names the file or setting and the problem.
Anything else that goes wrong is a bug and keeps its traceback. Also: how the commands that write
one file report such errors."""
from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path


class InputError(Exception):
    """A user-facing problem; str(error) is one line naming the file or setting."""


def report_writing_command(write: Callable[[], str], destination: Path,
                           user_errors: tuple[type[Exception], ...] = (InputError,)) -> int:
    """Run a command that writes `destination`: print what `write` returns and give exit code 0,
    or print one error line (a user error, or the destination that cannot be written) and 1."""
    try:
        print(write())
    except user_errors as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    except OSError as error:
        print(f"error: {destination}: cannot write ({error.strerror or error})", file=sys.stderr)
        return 1
    return 0
