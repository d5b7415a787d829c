"""The runtime (inference.py and model/, all the image holds) imports nothing that
requirements.txt, the container's requirements, does not install."""

import ast
import importlib.metadata
import re
import sys

from conftest import REPO


def _requirement_names(path) -> set[str]:
    names = set()
    for line in path.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line and not line.startswith("-"):
            names.add(_normalise(re.split(r"[=<>!~\[; ]", line, maxsplit=1)[0]))
    return names


def _normalise(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _imported_modules(paths) -> dict[str, str]:
    """Top-level module name -> the first file importing it (every import, nested ones too)."""
    found: dict[str, str] = {}
    for path in paths:
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            else:
                continue
            for name in names:
                found.setdefault(name.split(".")[0], str(path.relative_to(REPO)))
    return found


def test_the_runtime_imports_only_what_its_requirements_install():
    runtime = [REPO / "inference.py", *sorted((REPO / "model").rglob("*.py"))]
    required = _requirement_names(REPO / "requirements.txt")
    distributions = importlib.metadata.packages_distributions()
    outside = {}
    for module, where in _imported_modules(runtime).items():
        if module in sys.stdlib_module_names or module in {"model", "inference"}:
            continue
        owners = {_normalise(name) for name in distributions.get(module, [module])}
        if not owners & required:
            outside[module] = where
    assert outside == {}, f"imported by the runtime, not in requirements.txt: {outside}"


def test_the_runtime_requirements_leave_out_the_evaluations_and_trainings():
    runtime = _requirement_names(REPO / "requirements.txt")
    assert {"scipy", "scikit-image"} <= _requirement_names(REPO / "requirements-eval.txt")
    assert not {"scipy", "scikit-image", "dipy", "nibabel", "pydicom", "pytest", "ruff"} & runtime
