"""python -m training --help: train or fine-tune XMem (docs/training.md)."""

from __future__ import annotations

import sys

from model.errors import run_command
from training.config import parse_config
from training.loop import train


def main(argv: list[str] | None = None) -> int:
    def body() -> None:
        train(parse_config(argv), log=lambda line: print(line, flush=True))

    # Bad data folders, weights, checkpoints or settings (TrainConfig's ValueError): one line,
    # exit 1; argparse's usage errors exit 2 on their own.
    return run_command(body, also_user_errors=(ValueError,))


if __name__ == "__main__":
    sys.exit(main())
