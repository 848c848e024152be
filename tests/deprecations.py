"""The suite's rule against 0.1 names, for code the suite runs in another interpreter.

``pyproject.toml``'s pytest ``filterwarnings`` turns hookgnn's deprecation warnings into
errors in the test process only; the tutorial notebooks and the demo run in a kernel or a
subprocess of their own, so they start with :func:`preamble`, the same filters as code.
"""

from __future__ import annotations

import tomllib
from pathlib import Path

PYPROJECT = Path(__file__).resolve().parents[1] / "pyproject.toml"


def error_filters() -> list[str]:
    """The ``error:...`` entries of the pytest ``filterwarnings`` setting."""
    filters = tomllib.loads(PYPROJECT.read_text())["tool"]["pytest"]["ini_options"]["filterwarnings"]
    return [f for f in filters if f.startswith("error:")]


def preamble() -> str:
    """Python source installing :func:`error_filters` (``action:message:category``, message a regex).

    >>> "DeprecationWarning" in preamble()
    True
    """
    lines = ["import warnings"]
    for entry in error_filters():
        action, message, category = entry.split(":")[:3]
        lines.append(f"warnings.filterwarnings({action!r}, message={message!r}, category={category})")
    return "\n".join(lines) + "\n"
