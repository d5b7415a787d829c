"""The packages import one way: training -> evaluation -> sequences -> model (README.md, "Layout").

Read from the source with `ast`, nothing is imported: every import statement, nested ones too,
and `importlib.import_module` / `__import__` calls with a literal name.

- model/ (the runtime) and inference.py, all the container holds, import none of training,
  evaluation, sequences;
- sequences/ (the generators) imports neither training nor evaluation;
- evaluation/ does not import training;
- training/ reaches evaluation only through the names `evaluation/__init__.py` lists in
  `__all__` (`from evaluation import X`), never a submodule;
- nothing imports the entry script `inference`.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

from conftest import REPO

PACKAGES = ("model", "sequences", "evaluation", "training")
ENTRY = "inference"
# Package (or the entry script) -> the first-party top-level names it must not import.
FORBIDDEN = {
    "model": {"training", "evaluation", "sequences", ENTRY},
    ENTRY: {"training", "evaluation", "sequences", ENTRY},
    "sequences": {"training", "evaluation", ENTRY},
    "evaluation": {"training", ENTRY},
    "training": {ENTRY},
}


def _sources(root: Path) -> list[Path]:
    return [root / f"{ENTRY}.py", *(path for package in PACKAGES for path in sorted((root / package).rglob("*.py")))]


def _module_name(root: Path, path: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(root: Path, path: Path) -> Iterator[tuple[int, str, str, list[str]]]:
    """(line, source text, absolute module, names taken from it) for every import in `path`."""
    text = path.read_text()
    package = _module_name(root, path) if path.name == "__init__.py" else _module_name(root, path).rpartition(".")[0]
    for node in ast.walk(ast.parse(text, str(path))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, ast.get_source_segment(text, node), alias.name, []
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative: resolved against the file's package
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module
            yield node.lineno, ast.get_source_segment(text, node), module, [alias.name for alias in node.names]
        elif (
            isinstance(node, ast.Call)
            and node.args
            and isinstance(node.args[0], ast.Constant)
            and isinstance(node.args[0].value, str)
            and (
                (isinstance(node.func, ast.Name) and node.func.id == "__import__")
                or (isinstance(node.func, ast.Attribute) and node.func.attr == "import_module")
            )
        ):
            yield node.lineno, ast.get_source_segment(text, node), node.args[0].value, []


def _evaluation_interface(root: Path) -> set[str]:
    """The names in `evaluation/__init__.py`'s `__all__`."""
    tree = ast.parse((root / "evaluation" / "__init__.py").read_text())
    for node in tree.body:
        if isinstance(node, ast.Assign | ast.AnnAssign):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            if any(isinstance(target, ast.Name) and target.id == "__all__" for target in targets):
                return set(ast.literal_eval(node.value))
    return set()


def violations(root: Path) -> list[str]:
    """One line per import that breaks the rules: the file, the line, the statement, the rule."""
    interface = _evaluation_interface(root)
    found = []
    for path in _sources(root):
        owner = _module_name(root, path).split(".")[0]
        where = path.relative_to(root)
        for line, statement, module, names in _imports(root, path):
            top = module.split(".")[0]
            if top in FORBIDDEN[owner]:
                found.append(f"{where}:{line}: {statement!r}: {owner} must not import {top}")
            elif owner == "training" and top == "evaluation":
                if module != "evaluation":
                    found.append(
                        f"{where}:{line}: {statement!r}: training imports evaluation's names "
                        f"(from evaluation import ...), not its submodule {module}"
                    )
                elif outside := sorted(set(names) - interface):
                    found.append(
                        f"{where}:{line}: {statement!r}: {', '.join(outside)} not in evaluation.__all__ "
                        "(export it from evaluation/__init__.py)"
                    )
    return found


def test_the_packages_import_one_way() -> None:
    broken = violations(REPO)
    assert broken == [], "imports against the package layering (test/test_import_graph.py):\n" + "\n".join(broken)


def test_the_evaluation_interface_exists() -> None:
    """Every name in evaluation.__all__ is there (the lazy exports resolve)."""
    import evaluation

    assert _evaluation_interface(REPO), "evaluation/__init__.py has no __all__"
    for name in _evaluation_interface(REPO):
        assert getattr(evaluation, name) is not None, name


def test_the_check_sees_each_kind_of_breach(tmp_path: Path) -> None:
    for package in PACKAGES:
        (tmp_path / package).mkdir()
        (tmp_path / package / "__init__.py").write_text("")
    (tmp_path / "evaluation" / "__init__.py").write_text('__all__ = ["METRICS"]\n')
    (tmp_path / f"{ENTRY}.py").write_text("import model\n")
    (tmp_path / "evaluation" / "speed.py").write_text("from training.loop import train\n")
    (tmp_path / "sequences" / "cases.py").write_text("def f():\n    from evaluation.metrics import METRICS\n")
    (tmp_path / "model" / "run.py").write_text("import inference\nfrom . import io\n")
    (tmp_path / "training" / "loop.py").write_text(
        "from evaluation import METRICS\nfrom evaluation.metrics import METRICS\nfrom evaluation import metrics\n"
    )
    assert violations(tmp_path) == [
        "model/run.py:1: 'import inference': model must not import inference",
        "sequences/cases.py:2: 'from evaluation.metrics import METRICS': sequences must not import evaluation",
        "evaluation/speed.py:1: 'from training.loop import train': evaluation must not import training",
        "training/loop.py:2: 'from evaluation.metrics import METRICS': training imports evaluation's names "
        "(from evaluation import ...), not its submodule evaluation.metrics",
        "training/loop.py:3: 'from evaluation import metrics': metrics not in evaluation.__all__ "
        "(export it from evaluation/__init__.py)",
    ]
