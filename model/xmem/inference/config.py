"""Inference configuration of the XMem memory (docs/network.md, "The per-frame step"): one object holds every knob."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class InferenceConfig:
    top_k: int = 30  # memory elements kept per query pixel in the readout softmax
    mem_every: int = 5  # r: a memory frame every r frames (frames with a given mask always are)
    deep_update_every: int = -1  # < 0: deep sensory update on memory frames; > 0: every n frames
    enable_long_term: bool = True
    # None = decide per sequence from the expected frame count (see count_long_term_usage).
    enable_long_term_count_usage: bool | None = None
    max_mid_term_frames: int = 10  # T_max: working-memory frames that trigger consolidation
    min_mid_term_frames: int = 5  # T_min: working-memory frames kept after it (first frame incl.)
    max_long_term_elements: int = 10000
    num_prototypes: int = 128

    def __post_init__(self) -> None:
        positive = {
            "top_k": self.top_k,
            "mem_every": self.mem_every,
            "min_mid_term_frames": self.min_mid_term_frames,
            "num_prototypes": self.num_prototypes,
        }
        for name, value in positive.items():
            if value < 1:
                raise ValueError(f"{name} must be at least 1, got {value}")
        if self.deep_update_every == 0:
            raise ValueError(
                "deep_update_every must be negative (synchronised with memory frames) or a "
                "positive frame interval, got 0"
            )
        if self.max_mid_term_frames <= self.min_mid_term_frames:
            raise ValueError(
                f"max_mid_term_frames ({self.max_mid_term_frames}) must exceed "
                f"min_mid_term_frames ({self.min_mid_term_frames})"
            )
        if self.max_long_term_elements <= self.num_prototypes:
            raise ValueError(
                f"max_long_term_elements ({self.max_long_term_elements}) must exceed "
                f"num_prototypes ({self.num_prototypes}): each consolidation adds that many"
            )

    def count_long_term_usage(self, expected_frames: int | None) -> bool:
        """Whether long-term usage is counted (needed for long-term eviction) for a sequence.

        XMem's rule: count iff n_frames · P / (T_max − T_min) ≥ LT_max, i.e. iff the sequence can
        fill the long-term memory. An unknown length counts usage, so memory stays bounded.
        """
        if self.enable_long_term_count_usage is not None:
            return self.enable_long_term_count_usage
        if expected_frames is None:
            return True
        frames_per_consolidation = self.max_mid_term_frames - self.min_mid_term_frames
        return expected_frames * self.num_prototypes / frames_per_consolidation >= self.max_long_term_elements
