"""A Griffe extension for the API reference: hookgnn's docstrings use reStructuredText
roles (``:math:``, ``:func:``, double backquotes, ``.. math::``) and doctest blocks; the
site renders Markdown. Each docstring is rewritten before rendering:

* ``>>>`` blocks (with their output lines) become fenced ``pycon`` code blocks, so that
  ``x[0][1]`` in an example is code, not a Markdown reference link;
* ``:math:`...``` becomes ``$...$`` and a ``.. math::`` block ``$$ ... $$`` (MathJax via
  pymdownx.arithmatex);
* ``:func:`~a.b.c``` and friends become code spans (``c``), double backquotes single ones.
"""

from __future__ import annotations

import re
from typing import Any

from griffe import Extension, Object

_ROLE = re.compile(r":(?:func|class|meth|mod|data|attr|obj|exc):`~?([^`]+)`")
_MATH = re.compile(r":math:`([^`]+)`")


def _role(match: re.Match[str]) -> str:
    target = match.group(1)
    return f"`{target.rsplit('.', 1)[-1] if match.group(0).count('~') else target}`"


def _inline(line: str) -> str:
    line = _MATH.sub(lambda m: f"${m.group(1)}$", line)
    line = _ROLE.sub(_role, line)
    return line.replace("``", "`")


def convert(text: str) -> str:
    """The Markdown form of one docstring (see the module docstring)."""
    lines, out, i = text.splitlines(), [], 0
    while i < len(lines):
        line = lines[i]
        stripped = line.lstrip()
        indent = line[: len(line) - len(stripped)]
        if stripped.startswith(">>>"):
            block = []
            while i < len(lines) and lines[i].strip():
                block.append(lines[i][len(indent):] if lines[i].startswith(indent) else lines[i].lstrip())
                i += 1
            out += [f"{indent}```pycon", *(indent + b for b in block), f"{indent}```"]
            continue
        if stripped.startswith(".. math::"):
            body = [stripped[len(".. math::"):].strip()]
            i += 1
            while i < len(lines) and (not lines[i].strip() or lines[i].startswith(indent + " ")):
                body.append(lines[i].strip())
                i += 1
            out += [f"{indent}$$", *(indent + b for b in body if b), f"{indent}$$", ""]
            continue
        out.append(_inline(line))
        i += 1
    return "\n".join(out)


class RstDocstrings(Extension):
    """Rewrite every docstring to Markdown when Griffe loads it."""

    def on_instance(self, *, obj: Object, **kwargs: Any) -> None:
        if obj.docstring is not None:
            obj.docstring.value = convert(obj.docstring.value)
