"""The tracker interface every tracker implements, and the registry that builds them by name.

A tracker sees the sequence strictly causally: `start` gets frame 0 and its mask, then
`track` is called once per later frame, in order, and never sees a frame before it is due.
Frames are 2-D float32 numpy arrays in the numpy axis order of the TrackRAD arrays
(`frames[:, :, t]`, i.e. shape (W, H)); masks are 2-D bool arrays of the same shape.
"""
from __future__ import annotations

import argparse
import dataclasses
import importlib
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from model.errors import InputError


@dataclass(frozen=True)
class SequenceInfo:
    """What a tracker may know about a sequence before it starts (no pixel data)."""

    frame_shape: tuple[int, int]  # numpy shape of one frame, (W, H) in the contract's words
    n_frames: int  # length of the sequence; trackers must not use it to look ahead
    pixel_spacing_mm: tuple[float, float]  # spacing along numpy axis 0 and axis 1
    frame_rate: float  # frames per second
    field_strength: float  # tesla, 0.35 or 1.5
    scanned_region: str  # e.g. "abdomen", "thorax", "lung", "pelvis"


class Tracker(ABC):
    """One target, one sequence at a time. Build a new tracker (or call start) per sequence."""

    name: str = "tracker"
    # A dataclass whose fields (int/float/str/bool, each with a default and
    # `metadata={"help": ...}`) are the tracker's user-facing settings; inference.py turns
    # every field into a `--field-name` option. None for trackers without settings.
    Settings: ClassVar[type | None] = None

    @abstractmethod
    def start(self, first_frame: np.ndarray, first_mask: np.ndarray, info: SequenceInfo) -> None:
        """Initialise on frame 0 and its (non-empty, bool) mask."""

    @abstractmethod
    def track(self, frame: np.ndarray) -> np.ndarray:
        """Return the bool mask of the next frame (same shape as the frame)."""

    def settings(self) -> dict[str, Any]:
        """What the tracker resolved for this sequence beyond its Settings fields (e.g. the
        value an 'auto' setting took, the weights file); the run report adds it to the fields."""
        return {}

    def events(self) -> dict[str, int]:
        """Counters of notable events during the run (e.g. fallbacks), for the run report."""
        return {}


# name -> "module:Class"; imported lazily so the copy baseline never pulls in torch.
TRACKER_CLASSES: dict[str, str] = {
    "copy": "model.baselines:CopyTracker",
    "optical-flow": "model.peers:OpticalFlowTracker",
    "template": "model.peers:TemplateTracker",
    "xmem": "model.pipeline.tracker:XMemTracker",
}


def available_trackers() -> list[str]:
    return sorted(TRACKER_CLASSES)


def tracker_class(name: str) -> type[Tracker]:
    """The class registered under `name` (imports its module)."""
    try:
        target = TRACKER_CLASSES[name]
    except KeyError:
        raise ValueError(
            f"unknown tracker {name!r}; choose one of {', '.join(available_trackers())}"
        ) from None
    module_name, class_name = target.split(":")
    return getattr(importlib.import_module(module_name), class_name)


def build_tracker(name: str, **settings: Any) -> Tracker:
    """Instantiate a registered tracker; keyword settings override its Settings defaults.

    A tracker with a Settings dataclass is constructed as `cls(cls.Settings(**settings))`,
    one without as `cls()`.
    """
    cls = tracker_class(name)
    if cls.Settings is None:
        if settings:
            raise InputError(f"tracker {name!r} takes no settings, got {sorted(settings)}")
        return cls()
    try:
        chosen = cls.Settings(**settings)
    except (TypeError, ValueError) as error:  # Settings.__post_init__ validates values
        raise InputError(f"{name} settings: {error}") from None
    return cls(chosen)


_OPTION_TYPES = {"int": int, "float": float, "str": str, "bool": bool}


def add_settings_options(
    group: argparse._ActionsContainer, settings_cls: type, skip: tuple[str, ...] = ()
) -> list[str]:
    """Add one --field-name option per field of a Settings dataclass; return the field names.

    Fields named in `skip` get no option (a caller that sets them another way).
    """
    names = []
    for field in dataclasses.fields(settings_cls):
        if field.name in skip:
            continue
        kind = _OPTION_TYPES[field.type if isinstance(field.type, str) else field.type.__name__]
        option = "--" + field.name.replace("_", "-")
        help_text = f"{field.metadata.get('help', '')} (default {field.default})".strip()
        if kind is bool:
            group.add_argument(option, dest=field.name, action=argparse.BooleanOptionalAction,
                               default=field.default, help=help_text)
        else:
            group.add_argument(option, dest=field.name, type=kind, default=field.default, help=help_text)
        names.append(field.name)
    return names
