"""Settings dataclasses as command-line options, and the one parser of a setting's value from text.

A field's annotation names its value type: `int`, `float`, `str`, `bool` (each optionally
`| None`), `AutoFloat` ("auto" or a number) or `AutoInt` ("auto" or a whole number). The same
parser reads a value from the command line (`add_settings_options`) and from a benchmark spec
such as `xmem[margin-mm=auto,guard=off]`.

A settings class may be made of groups (`GroupedSettings`, each group a settings dataclass of
its own, declared with `group`): users still name every setting by its own name, on the command
line, in a spec and in a settings file (`setting_fields`, `setting_values`), and the code reads
it from its group (`settings.motion.prior_weight`).
"""

from __future__ import annotations

import argparse
import dataclasses
from collections.abc import Callable, Mapping
from typing import Any, Literal

AUTO = "auto"
AutoFloat = float | Literal["auto"]
AutoInt = int | Literal["auto"]
_BOOLEANS = {"on": True, "true": True, "yes": True, "1": True, "off": False, "false": False, "no": False, "0": False}


def parse_bool(text: str) -> bool:
    """on/off, true/false, yes/no, 1/0 (any case)."""
    try:
        return _BOOLEANS[text.strip().lower()]
    except KeyError:
        raise ValueError(f"expected on or off, got {text!r}") from None


def auto_or_float(value: str | float) -> AutoFloat:
    """ "auto", or the number `value` is or spells."""
    if isinstance(value, str) and value.strip().lower() == AUTO:
        return AUTO
    try:
        return float(value)
    except (TypeError, ValueError):
        raise ValueError(f"expected 'auto' or a number, got {value!r}") from None


def auto_or_int(value: str | int) -> AutoInt:
    """ "auto", or the whole number `value` is or spells."""
    if isinstance(value, str) and value.strip().lower() == AUTO:
        return AUTO
    if isinstance(value, bool) or isinstance(value, float) and not value.is_integer():
        raise ValueError(f"expected 'auto' or a whole number, got {value!r}")
    try:
        return int(value)
    except (TypeError, ValueError):
        raise ValueError(f"expected 'auto' or a whole number, got {value!r}") from None


_PARSERS: dict[str, Callable[[str], Any]] = {
    "int": int,
    "float": float,
    "str": str,
    "bool": parse_bool,
    "AutoFloat": auto_or_float,
    "AutoInt": auto_or_int,
}


def value_kind(field: dataclasses.Field) -> str:
    """The field's value type by name: int, float, str, bool, AutoFloat or AutoInt."""
    annotation = field.type if isinstance(field.type, str) else field.type.__name__
    return annotation.removesuffix(" | None")


def value_parser(field: dataclasses.Field) -> Callable[[str], Any]:
    """The field's value from text; ValueError when the text is not one."""
    if "type" in field.metadata:
        return field.metadata["type"]
    return _PARSERS[value_kind(field)]


def group(settings_cls: type) -> Any:
    """A field of a GroupedSettings that holds one group: `motion: MotionSettings = group(MotionSettings)`."""
    return dataclasses.field(default_factory=settings_cls, metadata={"group": settings_cls})


def setting_fields(settings_cls: type) -> list[dataclasses.Field]:
    """The settings a user names, in order: the dataclass's fields, each group's in its place."""
    fields = []
    for field in dataclasses.fields(settings_cls):
        fields.extend(setting_fields(field.metadata["group"]) if "group" in field.metadata else [field])
    names = [field.name for field in fields]
    if len(set(names)) != len(names):  # a name users type must say which group it sets
        raise TypeError(f"{settings_cls.__name__}: a setting name appears in two groups")
    return fields


def setting_values(settings: Any) -> dict[str, Any]:
    """Every setting's value by its name (groups flattened), e.g. for a run's report."""
    values = {}
    for field in dataclasses.fields(settings):
        value = getattr(settings, field.name)
        values.update(setting_values(value) if "group" in field.metadata else {field.name: value})
    return values


class GroupedSettings:
    """Base of a frozen settings dataclass whose fields are groups (`group`), built from the
    settings by name as users give them: `XMemSettings(prior_weight=0.5)` puts 0.5 in the motion
    group and leaves every other group at its defaults. Each group checks its own values. Declare it
    `@dataclass(frozen=True, init=False)`."""

    def __init__(self, **values: Any) -> None:
        remaining = dict(values)
        for field in dataclasses.fields(self):
            group_cls = field.metadata["group"]
            names = [setting.name for setting in setting_fields(group_cls)]
            own = {name: remaining.pop(name) for name in names if name in remaining}
            object.__setattr__(self, field.name, group_cls(**own))
        if remaining:
            raise TypeError(f"unexpected setting {sorted(remaining)[0]!r}")


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
    for field in setting_fields(settings_cls):
        if field.name in skip:
            continue
        option = "--" + field.name.replace("_", "-")
        extra = {key: value for key, value in field.metadata.items() if key != "help"}
        default = (defaults or {}).get(field.name, field.default)
        help_text = f"{field.metadata.get('help', '')} (default {default})".strip()
        if value_kind(field) == "bool":
            group.add_argument(
                option, dest=field.name, action=argparse.BooleanOptionalAction, default=default, help=help_text
            )
        else:
            extra["type"] = value_parser(field)
            group.add_argument(option, dest=field.name, default=default, help=help_text, **extra)
        names.append(field.name)
    return names
