"""The docs name only what the tree holds: every backticked repository path exists, every
backticked `module.attribute` imports and has the attribute, every `python -m MODULE` runs a module.

The reference pages (README.md, docs/*.md, docs/experiments/README.md, resources/MODEL_CARD.md)
must match the tree. An experiment record describes the tree of its day: it may name a path or
an attribute that has gone since, but only in, or listed in, its closing "## Since" section,
which says where each one went.
"""

from __future__ import annotations

import importlib
import re
from pathlib import Path

import pytest
from conftest import REPO

REFERENCE_PAGES = sorted(
    [REPO / "README.md", REPO / "resources" / "MODEL_CARD.md", REPO / "docs" / "experiments" / "README.md"]
    + list((REPO / "docs").glob("*.md"))
)
RECORDS = sorted(p for p in (REPO / "docs" / "experiments").glob("*.md") if p.name != "README.md")
SINCE = "\n## Since"

# Written by the docs' commands, not kept in git (.gitignore).
NOT_KEPT = {"data", "runs", "results"}
# Made on the user's machine by a command the docs give next to them.
MADE_BY_COMMANDS = {"resources/XMem.pth", "resources/pipeline.json"}
FIRST_PARTY = {"model", "evaluation", "training", "sequences", "tools", "inference"}

_FENCE = re.compile(r"^```.*?^```", re.DOTALL | re.MULTILINE)
_SPAN = re.compile(r"`([^`]+)`")
_DOTTED = re.compile(r"[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)+")
_MODULE_RUN = re.compile(r"python -m\s+([A-Za-z_][\w.]*)")
_TOP_LEVEL = sorted({p.name for p in REPO.iterdir()} - NOT_KEPT)
_REPO_PATH = re.compile(rf"(?<![\w./$-])((?:{'|'.join(map(re.escape, _TOP_LEVEL))})/[\w.\-/*]*)")


def _code(text: str) -> list[str]:
    """The inline code spans and the fenced blocks."""
    return _FENCE.findall(text) + _SPAN.findall(_FENCE.sub("", text))


def _repo_paths(code: str) -> list[str]:
    """Paths (or glob patterns) from a top-level entry of the tree, whole or within commands."""
    return [path.rstrip(".") for path in _REPO_PATH.findall(code)]


def _in_tree(path: str) -> bool:
    if "*" in path:
        return any(REPO.glob(path))
    return path in MADE_BY_COMMANDS or (REPO / path).exists()


def _is_reference(token: str) -> bool:
    return _DOTTED.fullmatch(token) is not None and token.split(".")[0] in FIRST_PARTY and not token.endswith(".py")


def _resolves(reference: str) -> bool:
    parts = reference.split(".")
    for split in range(len(parts), 0, -1):
        try:
            target = importlib.import_module(".".join(parts[:split]))
        except ModuleNotFoundError:
            continue
        for name in parts[split:]:
            if not hasattr(target, name):
                return False
            target = getattr(target, name)
        return True
    return False


def _runnable(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except ModuleNotFoundError:
        return False


def broken_references(text: str) -> list[str]:
    """What `text` names that the tree does not hold."""
    broken = []
    for code in _code(text):
        broken += [path for path in _repo_paths(code) if not _in_tree(path)]
        if _is_reference(code) and not _resolves(code):
            broken.append(code)
    broken += [module for module in _MODULE_RUN.findall(text) if not _runnable(module)]
    return broken


@pytest.mark.parametrize("page", REFERENCE_PAGES, ids=lambda p: str(p.relative_to(REPO)))
def test_reference_pages_name_only_what_the_tree_holds(page: Path) -> None:
    assert broken_references(page.read_text()) == []


@pytest.mark.parametrize("record", RECORDS, ids=lambda p: p.name)
def test_records_say_where_what_they_name_went(record: Path) -> None:
    body, _, since = record.read_text().partition(SINCE)
    assert [name for name in broken_references(body) if f"`{name}`" not in since] == []


def test_the_check_sees_a_missing_path_and_a_missing_attribute() -> None:
    text = "`model/pipeline/tracker.py`, `model.pipeline.crop.no_such_name`, `python -m model.gone`"
    assert broken_references(text) == ["model/pipeline/tracker.py", "model.pipeline.crop.no_such_name", "model.gone"]
    assert broken_references("`model/pipeline/crop.py`, `model.pipeline.preprocess.normalise_frame`") == []
