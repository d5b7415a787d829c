"""Progress of long work, on stderr only (stdout carries the results that scripts read).

On a terminal: one live line, rewritten in place at most every `interval_s` (items done, time an
item, time left). Elsewhere (a log, CI, the container): nothing while the work runs, then one
summary line, unless the caller prints its own summary.
"""

from __future__ import annotations

import sys
import time
from types import TracebackType
from typing import TextIO


class Progress:
    """`with Progress("xmem", 199) as progress:` then `progress.advance()` after each item."""

    def __init__(
        self,
        label: str,
        total: int,
        unit: str = "frame",
        stream: TextIO | None = None,
        summary: bool = True,
        interval_s: float = 0.5,
    ) -> None:
        self.label, self.total, self.unit = label, total, unit
        self.done = 0
        self._stream = sys.stderr if stream is None else stream
        self._live = self._stream.isatty()
        self._summary = summary
        self._interval_s = interval_s
        self._started = time.perf_counter()
        self._shown = float("-inf")

    def __enter__(self) -> Progress:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        self.close()

    def advance(self, count: int = 1) -> None:
        self.done += count
        now = time.perf_counter()
        if self._live and (now - self._shown >= self._interval_s or self.done >= self.total):
            self._shown = now
            self._write("\r" + self.live_line(now - self._started) + "\x1b[K")

    def close(self) -> None:
        """End the live line; off a terminal, print the summary line (when asked for)."""
        elapsed = time.perf_counter() - self._started
        if self._live:
            self._write("\r" + self.summary_line(elapsed) + "\x1b[K\n")
        elif self._summary:
            self._write(self.summary_line(elapsed) + "\n")

    def live_line(self, elapsed: float) -> str:
        """e.g. "xmem: 40/199 frames, 0.180 s a frame, 29 s left"."""
        line = f"{self.label}: {self.done}/{self.total} {self.unit}s"
        if self.done:
            each = elapsed / self.done
            line += f", {each:.3f} s a {self.unit}, {each * max(self.total - self.done, 0):.0f} s left"
        return line

    def summary_line(self, elapsed: float) -> str:
        """e.g. "xmem: 199/199 frames in 35.8 s (0.180 s a frame)"."""
        each = f" ({elapsed / self.done:.3f} s a {self.unit})" if self.done else ""
        return f"{self.label}: {self.done}/{self.total} {self.unit}s in {elapsed:.1f} s{each}"

    def _write(self, text: str) -> None:
        self._stream.write(text)
        self._stream.flush()
