"""The tracker registry: build a tracker by name, and turn its Settings into command-line options.

Tracker modules are imported lazily, so the copy baseline never pulls in torch.
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib
from collections.abc import Mapping
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


_OPTION_TYPES = {"int": int, "float": float, "str": str, "bool": bool}


def add_settings_options(
    group: argparse._ActionsContainer,
    settings_cls: type,
    skip: tuple[str, ...] = (),
    defaults: Mapping[str, Any] | None = None,
) -> list[str]:
    """Add one --field-name option per field of a settings dataclass; return the field names.

    The one way a dataclass becomes command-line options (tracker Settings, the training
    config). A field's metadata gives its help text under "help"; any other metadata entries
    (e.g. `nargs`, `type` for tuple fields) go to `add_argument` as they are. bool fields
    become --name/--no-name. Fields named in `skip` get no option (a caller that sets them
    another way). `defaults` replaces fields' own defaults (a settings file's values).
    """
    names = []
    for field in dataclasses.fields(settings_cls):
        if field.name in skip:
            continue
        option = "--" + field.name.replace("_", "-")
        extra = {key: value for key, value in field.metadata.items() if key != "help"}
        default = (defaults or {}).get(field.name, field.default)
        help_text = f"{field.metadata.get('help', '')} (default {default})".strip()
        if _option_type(field) is bool:
            group.add_argument(
                option, dest=field.name, action=argparse.BooleanOptionalAction, default=default, help=help_text
            )
        else:
            extra.setdefault("type", _option_type(field))
            group.add_argument(option, dest=field.name, default=default, help=help_text, **extra)
        names.append(field.name)
    return names


def _option_type(field: dataclasses.Field) -> type:
    """The option's value type from the field's annotation (`int`, `str | None`, ...)."""
    if "type" in field.metadata:
        return field.metadata["type"]
    annotation = field.type if isinstance(field.type, str) else field.type.__name__
    return _OPTION_TYPES[annotation.removesuffix(" | None")]
