"""Where a run's tracker settings come from: the one place the entry point resolves them.

A settings file (JSON, written by `python -m evaluation.calibrate`) holds one tracker's settings
and their provenance. The first that applies wins: --settings FILE, $TRACKRAD_SETTINGS,
/opt/ml/model/pipeline.json, resources/pipeline.json, the tracker's built-in defaults.
Entry points: resolve_settings, read_settings_file, write_settings_file, SettingsFileError.
See docs/calibration.md, "The settings file".
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from model.atomic import write_atomically
from model.errors import InputError
from model.releases import file_digest
from model.settings import setting_fields, value_kind
from model.trackers.registry import tracker_class
from model.weights import MODEL_DIR, RESOURCES_DIR

ENV_VAR = "TRACKRAD_SETTINGS"
FILE_NAME = "pipeline.json"
BUILT_IN = "built-in defaults"
_KEYS = {"tracker", "settings", "provenance"}
# JSON value types by value kind (model.settings.value_kind); the Settings check the values.
_TYPES = {
    "int": (int,),
    "float": (int, float),
    "str": (str,),
    "bool": (bool,),
    "AutoFloat": (int, float, str),
    "AutoInt": (int, str),
}


class SettingsFileError(InputError):
    """A settings file that cannot be used; str() is one line naming it."""


@dataclass(frozen=True)
class ResolvedSettings:
    """The settings a run starts from (before command-line options) and where they came from."""

    source: str  # --settings, $TRACKRAD_SETTINGS, /opt/ml/model, resources, or BUILT_IN
    settings: dict[str, Any] = field(default_factory=dict)  # field name -> value; empty for BUILT_IN
    path: Path | None = None
    sha256: str = ""  # of the file
    provenance: dict[str, Any] = field(default_factory=dict)

    def summary(self) -> str:
        """One line: the file, its sha256 prefix and its level, or the built-in defaults."""
        if self.path is None:
            return BUILT_IN
        return f"{self.path} (sha256 {self.sha256[:12]}, from {self.source})"

    def record(self) -> dict[str, Any]:
        """What a run report records about it."""
        return {"source": self.source, "file": str(self.path or ""), "sha256": self.sha256}

    def weights_warning(self, weights_sha256: str) -> str | None:
        """A warning when the file was calibrated for weights other than `weights_sha256`."""
        made_for = str(self.provenance.get("weights_sha256", ""))
        if not made_for or not weights_sha256 or made_for == weights_sha256:
            return None
        return (
            f"{self.path}: its settings were calibrated for weights sha256 {made_for[:12]}, not for these "
            f"({weights_sha256[:12]}); recalibrate with `python -m evaluation.calibrate`"
        )


def resolve_settings(
    tracker: str,
    cli_path: str | os.PathLike[str] | None = None,
    environ: Mapping[str, str] | None = None,
    model_dir: Path | None = None,
    resources_dir: Path | None = None,
) -> ResolvedSettings:
    """The settings for a run of `tracker`, in the order of the module docstring (`model_dir`
    and `resources_dir` stand in for /opt/ml/model and resources/)."""
    environ = os.environ if environ is None else environ
    model_dir = MODEL_DIR if model_dir is None else model_dir
    resources_dir = RESOURCES_DIR if resources_dir is None else resources_dir
    if cli_path is not None:
        resolved = read_settings_file(Path(cli_path), "--settings")
        if resolved[0] != tracker:
            raise SettingsFileError(f"{cli_path}: holds settings of the {resolved[0]} tracker, not of {tracker}")
        return resolved[1]
    candidates = []
    if environ.get(ENV_VAR):
        candidates.append((Path(environ[ENV_VAR]), f"${ENV_VAR}", True))
    candidates += [(model_dir / FILE_NAME, str(model_dir), False), (resources_dir / FILE_NAME, "resources", False)]
    for path, source, named in candidates:
        if not named and not path.is_file():
            continue
        owner, resolved = read_settings_file(path, source)
        if owner == tracker:
            return resolved
    return ResolvedSettings(BUILT_IN)


def read_settings_file(path: Path, source: str) -> tuple[str, ResolvedSettings]:
    """(its tracker, its checked settings); SettingsFileError naming the file otherwise."""
    try:
        _, digest = file_digest(path)
        content = json.loads(path.read_text(encoding="utf-8-sig"))
    except FileNotFoundError:
        raise SettingsFileError(f"{path}: settings file not found (from {source})") from None
    except IsADirectoryError:
        raise SettingsFileError(f"{path}: is a directory, not a settings file (from {source})") from None
    except OSError as error:
        raise SettingsFileError(f"{path}: cannot read the settings file ({error.strerror or error})") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise SettingsFileError(f"{path}: not a JSON settings file ({error})") from None
    if not isinstance(content, dict) or not isinstance(content.get("settings"), dict):
        raise SettingsFileError(f'{path}: a settings file is a JSON object with a "settings" object')
    unknown = sorted(set(content) - _KEYS)
    if unknown:
        raise SettingsFileError(f"{path}: unknown key {unknown[0]!r} (a settings file has {', '.join(sorted(_KEYS))})")
    tracker = content.get("tracker")
    try:
        settings_cls = tracker_class(tracker).Settings if isinstance(tracker, str) else None
    except ValueError as error:
        raise SettingsFileError(f"{path}: {error}") from None
    if settings_cls is None:
        raise SettingsFileError(f'{path}: "tracker" must name a tracker with settings, got {tracker!r}')
    provenance = content.get("provenance", {})
    if not isinstance(provenance, dict):
        raise SettingsFileError(f'{path}: "provenance" must be a JSON object')
    settings = check_settings(settings_cls, tracker, content["settings"], path)
    return tracker, ResolvedSettings(source, settings, path, digest, provenance)


def check_settings(settings_cls: type, tracker: str, values: Mapping[str, Any], path: Path) -> dict[str, Any]:
    """The values by field name, each of its field's type and accepted by `settings_cls`."""
    fields = {f.name: f for f in setting_fields(settings_cls)}
    settings: dict[str, Any] = {}
    for key, value in values.items():
        name = key.replace("-", "_")
        if name not in fields:
            raise SettingsFileError(f"{path}: {key!r} is not a setting of the {tracker} tracker")
        kind = value_kind(fields[name])
        allowed = _TYPES[kind]
        if not isinstance(value, allowed) or (bool not in allowed and isinstance(value, bool)):
            raise SettingsFileError(f"{path}: {key} takes a {kind}, got {json.dumps(value)}")
        settings[name] = value
    try:
        settings_cls(**settings)
    except (TypeError, ValueError) as error:
        raise SettingsFileError(f"{path}: {error}") from None
    return settings


def write_settings_file(path: Path, tracker: str, settings: Mapping[str, Any], provenance: Mapping[str, Any]) -> Path:
    """Write a settings file atomically; it is read back and checked before it replaces `path`."""
    text = json.dumps({"tracker": tracker, "settings": dict(settings), "provenance": dict(provenance)}, indent=2)
    return write_atomically(
        path,
        lambda temporary: temporary.write_text(text + "\n"),
        check=lambda temporary: read_settings_file(temporary, ""),
    )
