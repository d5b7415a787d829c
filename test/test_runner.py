"""model.runner: frames one at a time, never an empty frame, and a tracker crash still yields a
complete output."""

import numpy as np

from model.runner import run_tracker
from model.trackers import SequenceInfo, Tracker

SHAPE, N_FRAMES = (12, 10), 6
INFO = SequenceInfo(SHAPE, N_FRAMES, (1.0, 1.0), 4.0, 1.5, "abdomen")


class ShiftingTracker(Tracker):
    """Moves the mask one row down per frame; raises on frame `fail_at` (0 = in start)."""

    def __init__(self, fail_at: int | None = None) -> None:
        self.fail_at, self.seen = fail_at, 0

    def start(self, first_frame, first_mask, info):
        if self.fail_at == 0:
            raise MemoryError("no memory for the network")
        self.mask = first_mask

    def track(self, frame):
        self.seen += 1
        if self.seen == self.fail_at:
            raise RuntimeError("CUDA error: an illegal memory access")
        self.mask = np.roll(self.mask, 1, axis=0)
        return self.mask


def _sequence():
    frames = np.random.default_rng(0).random((*SHAPE, N_FRAMES), dtype=np.float32)
    first = np.zeros(SHAPE, dtype=bool)
    first[2:5, 3:6] = True
    return frames, first


def test_masks_follow_the_tracker_without_errors():
    frames, first = _sequence()
    result = run_tracker(ShiftingTracker(), frames, first, INFO)
    assert result.tracker_error is None and result.events == {}
    assert len(result.frame_seconds) == N_FRAMES - 1
    for t in range(N_FRAMES):
        assert np.array_equal(result.masks[:, :, t], np.roll(first, t, axis=0))


def test_a_crash_in_track_repeats_the_last_good_mask_to_the_end():
    frames, first = _sequence()
    result = run_tracker(ShiftingTracker(fail_at=3), frames, first, INFO)
    last_good = np.roll(first, 2, axis=0)  # frame 2's mask
    assert all(np.array_equal(result.masks[:, :, t], last_good) for t in range(2, N_FRAMES))
    assert result.events == {"tracker_error": 1}
    assert result.tracker_error.startswith("frame 3:") and "illegal memory access" in result.tracker_error


def test_a_crash_in_start_repeats_the_first_mask():
    frames, first = _sequence()
    result = run_tracker(ShiftingTracker(fail_at=0), frames, first, INFO)
    assert all(np.array_equal(result.masks[:, :, t], first) for t in range(N_FRAMES))
    assert result.tracker_error.startswith("frame 0:") and "MemoryError" in result.tracker_error


class FrozenTracker(ShiftingTracker):
    """Returns the first mask on the frames in `frozen`, a shifted one elsewhere."""

    def __init__(self, frozen: set[int]) -> None:
        super().__init__()
        self.frozen = frozen

    def track(self, frame):
        shifted = super().track(frame)
        return self.first if self.seen in self.frozen else shifted

    def start(self, first_frame, first_mask, info):
        super().start(first_frame, first_mask, info)
        self.first = first_mask


def test_an_output_that_repeats_the_first_mask_on_most_frames_is_counted():
    frames, first = _sequence()  # 5 later frames
    assert run_tracker(FrozenTracker({1, 2, 4}), frames, first, INFO).events == {"first_mask_repeated": 3}
    assert run_tracker(FrozenTracker({1, 2}), frames, first, INFO).events == {}
