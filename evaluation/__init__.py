"""Scoring and benchmarking of trackers on labelled cases: the official metrics (metrics.py),
one case through a tracker (evaluate.py), the benchmark, the calibration, the harness, timings.

The names below are the package's interface for the other packages (training imports only
these, test/test_import_graph.py checks it). They load on first use (PEP 562), so importing one
submodule, e.g. `python -m evaluation.network_speed`, does not import the others.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from evaluation.evaluate import evaluate_case
    from evaluation.metrics import METRICS, CaseMeans, mean_over_cases

_SOURCES = {
    "METRICS": "evaluation.metrics",
    "CaseMeans": "evaluation.metrics",
    "mean_over_cases": "evaluation.metrics",
    "evaluate_case": "evaluation.evaluate",
}

__all__ = ["METRICS", "CaseMeans", "evaluate_case", "mean_over_cases"]


def __getattr__(name: str) -> Any:
    if name not in _SOURCES:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(_SOURCES[name]), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
