"""Drive a tracker causally over a sequence, time every frame, never emit an empty mask."""

from __future__ import annotations

import time
import traceback
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from model.trackers import SequenceInfo, Tracker


@dataclass
class RunResult:
    masks: np.ndarray  # (W, H, T) uint8 0/1; frame 0 is the first mask
    frame_seconds: list[float]  # wall time of each `track` call (frames 1..T-1)
    events: dict[str, int]  # runner events, e.g. {"empty_fallback": 2}
    # The traceback of an exception raised by the tracker (None if it ran through); the frames
    # from that one on repeat the last good mask.
    tracker_error: str | None = None


def run_tracker(
    tracker: Tracker,
    frames: np.ndarray,
    first_mask: np.ndarray,
    info: SequenceInfo,
    on_frame: Callable[[], None] | None = None,
) -> RunResult:
    """Feed `frames[:, :, t]` one at a time (contiguous float32 copies, so a tracker can
    neither see later frames nor alter the sequence) and collect the masks.

    A mask that is empty, or of the wrong shape, is replaced by the last good mask and
    counted as `empty_fallback` / `bad_shape_fallback`: an empty frame costs the maximal penalty.
    If `track` raises (a bug, CUDA out of memory, ...), the tracker is abandoned: that frame and
    all later ones repeat the last good mask, the event is counted as `tracker_error` and the
    traceback is returned, because a complete output scores far better than none.
    When more than half of the later frames repeat the first mask exactly, their number is
    counted as `first_mask_repeated`: a tracker that stopped following (or the copy baseline).
    `on_frame` is called after each tracked frame (progress display).
    """
    n_frames = frames.shape[2]
    masks = np.zeros(frames.shape, dtype=np.uint8)
    last_good = np.asarray(first_mask, dtype=bool)
    masks[:, :, 0] = last_good
    events: Counter[str] = Counter()
    frame_seconds: list[float] = []
    tracker_error = None
    t = 0  # the frame in hand (0 = start), for the fallback below
    try:
        tracker.start(_frame(frames, 0), last_good.copy(), info)
        for t in range(1, n_frames):
            frame = _frame(frames, t)
            started = time.perf_counter()
            mask = np.asarray(tracker.track(frame))
            frame_seconds.append(time.perf_counter() - started)
            if mask.shape != last_good.shape:
                events["bad_shape_fallback"] += 1
            elif not mask.any():
                events["empty_fallback"] += 1
            else:
                last_good = mask.astype(bool)
            masks[:, :, t] = last_good
            if on_frame is not None:
                on_frame()
    except Exception:
        tracker_error = f"frame {t}: {traceback.format_exc()}"
        events["tracker_error"] += 1
        masks[:, :, t:] = last_good[:, :, None]
    repeated = _count_first_mask_repeats(masks)
    if repeated > (n_frames - 1) / 2:
        events["first_mask_repeated"] = repeated
    return RunResult(masks, frame_seconds, dict(events), tracker_error)


def _count_first_mask_repeats(masks: np.ndarray) -> int:
    return int(np.count_nonzero((masks[:, :, 1:] == masks[:, :, :1]).all(axis=(0, 1))))


def _frame(frames: np.ndarray, t: int) -> np.ndarray:
    return np.array(frames[:, :, t], dtype=np.float32, order="C")  # always a copy


def time_summary(seconds: Sequence[float]) -> dict[str, float]:
    """count, median, p95 and max of per-frame times; zeros when there are none (a one-frame
    sequence has nothing to track)."""
    if len(seconds) == 0:
        return {"count": 0, "median": 0.0, "p95": 0.0, "max": 0.0}
    values = np.asarray(seconds, dtype=np.float64)
    return {
        "count": len(values),
        "median": float(np.median(values)),
        "p95": float(np.percentile(values, 95)),
        "max": float(values.max()),
    }
