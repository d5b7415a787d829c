"""The tracker registry: build a tracker by name (its Settings as options: model/settings.py).

Tracker modules are imported lazily, so the copy baseline never pulls in torch.
"""

from __future__ import annotations

import importlib
from typing import Any

from model.errors import InputError
from model.trackers.base import Tracker

# name -> "module:Class", imported on first use.
TRACKER_CLASSES: dict[str, str] = {
    "copy": "model.trackers.copy:CopyTracker",
    "optical-flow": "model.trackers.optical_flow:OpticalFlowTracker",
    "template": "model.trackers.template:TemplateTracker",
    "xmem": "model.trackers.xmem:XMemTracker",
}


def available_trackers() -> list[str]:
    return sorted(TRACKER_CLASSES)


def tracker_class(name: str) -> type[Tracker]:
    """The class registered under `name` (imports its module)."""
    try:
        target = TRACKER_CLASSES[name]
    except KeyError:
        raise ValueError(f"unknown tracker {name!r}; choose one of {', '.join(available_trackers())}") from None
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
