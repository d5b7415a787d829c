"""python -m training --help: train or fine-tune XMem (docs/training.md)."""
from __future__ import annotations

import sys

from model.errors import InputError
from training.config import parse_config
from training.loop import train


def main(argv: list[str] | None = None) -> int:
    try:
        train(parse_config(argv), log=lambda line: print(line, flush=True))
    # Bad data folders, weights, checkpoints or settings: one line, no traceback.
    except (InputError, ValueError, FileNotFoundError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
