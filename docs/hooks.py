"""MkDocs hooks: the tutorials on the site are the notebooks ``make tutorials`` executed.

``make tutorials`` executes every tutorial once, at its quick setting, and keeps each
executed notebook (outputs and figures embedded) as ``out/notebooks/<name>.ipynb``
(git-ignored; ``HOOKGNN_TUTORIAL_NOTEBOOKS`` in ``tests/test_tutorials.py``). Before
mkdocs-jupyter renders ``tutorials/<name>.py``, this hook points the page at that notebook,
so the site shows outputs without running the tutorials a second time. ``make docs`` runs
``make tutorials`` first when a notebook is missing or older than its script.

* no executed notebook: the page shows the source without outputs (info message);
* a notebook older than its script: a warning, which fails ``mkdocs build --strict``.

The site also works offline: every built page is checked for a script, stylesheet or
module import loaded over ``http(s)://`` (a warning names the page and the address).
nbconvert's notebook template imports mermaid from a CDN when a notebook has mermaid
diagrams; the tutorials have none, so that block is dropped from their pages.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path
from typing import Any

from mkdocs.plugins import event_priority
from mkdocs.structure.files import Files

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = ROOT / "out" / "notebooks"  # mkdocs.yml: mkdocs-jupyter includes "notebooks/0*.ipynb"
log = logging.getLogger("mkdocs.hooks.tutorials")


@event_priority(-100)  # after mkdocs-jupyter has wrapped the tutorial files (it matches "tutorials/0*.py")
def on_files(files: Files, config: Any) -> Files:
    """Point each tutorial page at its executed notebook when there is one (mkdocs-jupyter
    renders ``file.abs_src_path``; ``mkdocs.yml`` includes ``notebooks/0*.ipynb`` too)."""
    for file in files:
        if not (file.src_uri.startswith("tutorials/0") and file.src_uri.endswith(".py")):
            continue
        script = Path(file.abs_src_path).resolve()
        notebook = NOTEBOOKS / f"{script.stem}.ipynb"
        if not notebook.exists():
            log.info("tutorial %s: no executed notebook %s (run `make tutorials`); showing it without outputs",
                     script.stem, notebook)
            continue
        if notebook.stat().st_mtime < script.stat().st_mtime:
            log.warning("tutorial %s: %s is older than %s; run `make tutorials` again",
                        script.stem, notebook, script)
        file.abs_src_path = str(notebook)
    return files


_EMPTY_SCRIPT = re.compile(r'<script src="">\s*</script>')  # nbconvert's MathJax slot, left empty
_MERMAID = re.compile(r'<script type="module">\s*document\.addEventListener\("DOMContentLoaded".*?mermaid.*?</script>',
                      re.S)
_REMOTE = re.compile(r'<script[^>]*\ssrc="(https?://[^"]+)"|<link[^>]*rel="stylesheet"[^>]*href="(https?://[^"]+)"'
                     r'|import\(\s*"(https?://[^"]+)"')


def on_post_page(output: str, page: Any, config: Any) -> str:
    """Drop nbconvert's unused mermaid loader and empty MathJax script; warn about anything still loaded from the network."""
    output = _EMPTY_SCRIPT.sub("", _MERMAID.sub("", output))
    for match in _REMOTE.finditer(output):
        address = next(g for g in match.groups() if g)
        log.warning("page %s loads %s from the network: the site must work offline", page.file.src_uri, address)
    return output
