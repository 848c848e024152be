"""A Griffe extension for the API reference: hookgnn's docstrings use reStructuredText
roles (``:math:``, ``:func:``, double backquotes, ``.. math::``) and doctest blocks; the
site renders Markdown. Each docstring is rewritten before rendering:

* ``>>>`` blocks (with their output lines) become fenced ``pycon`` code blocks, so that
  ``x[0][1]`` in an example is code, not a Markdown reference link;
* ``:math:`...``` becomes ``$...$`` and a ``.. math::`` block ``$$ ... $$`` (MathJax via
  pymdownx.arithmatex);
* ``:func:`~a.b.c``` and friends become code spans (``c``), double backquotes single ones;
* a reStructuredText *simple table* (columns under ``=====  =====`` borders; a row whose
  first column is blank continues the row above) becomes a Markdown table.
"""

from __future__ import annotations

import re
from typing import Any

from griffe import Extension, Object

_ROLE = re.compile(r":(?:func|class|meth|mod|data|attr|obj|exc):`~?([^`]+)`")
_MATH = re.compile(r":math:`([^`]+)`")
_BORDER = re.compile(r"^\s*=+(?:\s+=+)+\s*$")


def _role(match: re.Match[str]) -> str:
    target = match.group(1)
    return f"`{target.rsplit('.', 1)[-1] if match.group(0).count('~') else target}`"


def _inline(line: str) -> str:
    line = _MATH.sub(lambda m: f"${m.group(1)}$", line)
    line = _ROLE.sub(_role, line)
    return line.replace("``", "`")


def _columns(border: str) -> list[tuple[int, int]]:
    """Start and end of each ``=====`` run of a table border (the last column runs on)."""
    spans = [(m.start(), m.end()) for m in re.finditer(r"=+", border)]
    return [(a, b if i < len(spans) - 1 else 10_000) for i, (a, b) in enumerate(spans)]


def _cells(line: str, columns: list[tuple[int, int]]) -> list[str]:
    return [line[a:b].strip() for a, b in columns]


def table(lines: list[str]) -> list[str]:
    """The Markdown form of one reStructuredText simple table (borders included in ``lines``)."""
    columns = _columns(lines[0])
    borders = [i for i, line in enumerate(lines) if _BORDER.match(line)]
    parts = [lines[a + 1:b] for a, b in zip(borders, borders[1:])]  # [header, body] or [body]
    groups: list[list[list[str]]] = []
    for part in parts:
        rows: list[list[str]] = []
        for line in part:
            if not line.strip():
                continue
            cells = _cells(line, columns)
            if rows and not cells[0]:  # a blank first column continues the row above
                rows[-1] = [f"{old} {new}".strip() for old, new in zip(rows[-1], cells, strict=True)]
            else:
                rows.append(cells)
        groups.append(rows)
    header, body = (groups[0][0], groups[1]) if len(groups) == 2 else (groups[0][0], groups[0][1:])

    def fmt(cells: list[str]) -> str:
        return "| " + " | ".join(_inline(c).replace("|", "\\|") for c in cells) + " |"

    return [fmt(header), "|" + "---|" * len(columns), *(fmt(r) for r in body)]


def _table_end(lines: list[str], start: int) -> int:
    """Index of the last border of the table whose first border is ``lines[start]``: the
    third border when a row follows the second (a header table), else the second."""
    borders = [j for j in range(start + 1, len(lines)) if _BORDER.match(lines[j])]
    if not borders:
        return start
    second = borders[0]
    if len(borders) > 1 and second + 1 < len(lines) and lines[second + 1].strip():
        return borders[1]
    return second


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
        if _BORDER.match(line) and (end := _table_end(lines, i)) > i:
            block = [x[len(indent):] for x in lines[i:end + 1]]
            out += ["", *(indent + row for row in table(block)), ""]
            i = end + 1
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
