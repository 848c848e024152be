"""Check a built site: tutorials with their figures, maths typeset offline.

``make docs`` runs this after ``mkdocs build``::

    python docs/check_site.py site

* every tutorial page shows outputs and at least one embedded figure (a PNG);
* no page loads a script or stylesheet over ``http(s)://`` (``docs/hooks.py`` warns too);
* with Chromium installed (CI installs it), a few pages are opened in headless Chromium from
  a local server, with nothing else reachable: every maths span of an API page and the
  maths of a tutorial page must come out typeset by the vendored MathJax, without errors.
  Without Chromium the browser part is skipped, saying so.

Exit status 1 with one line per problem.
"""

from __future__ import annotations

import functools
import http.server
import re
import shutil
import subprocess
import sys
import threading
from pathlib import Path

_REMOTE = re.compile(r'<script[^>]*\ssrc="https?://|<link[^>]*rel="stylesheet"[^>]*href="https?://')
_OUTPUT = re.compile(r'<div class="[^"]*\bjp-OutputArea-output\b')  # a cell output (the CSS names it too)
_FIGURE = re.compile(r'<img[^>]*\ssrc="data:image/png')  # an embedded figure
MATH_PAGES = ("api/patching/", "api/metrics/", "tutorials/04_minar_bellman_ford/")


def static_problems(site: Path) -> list[str]:
    """Problems visible in the HTML files alone."""
    out = []
    tutorials = sorted((site / "tutorials").glob("0*/index.html"))
    if not tutorials:
        out.append(f"{site}/tutorials: no tutorial pages")
    for page in tutorials:
        text = page.read_text()
        if not (_OUTPUT.search(text) and _FIGURE.search(text)):
            out.append(f"{page.relative_to(site)}: no outputs or no figure (run `make tutorials` before the build)")
    for page in sorted(site.rglob("*.html")):
        if _REMOTE.search(page.read_text()):
            out.append(f"{page.relative_to(site)}: loads a script or stylesheet from the network")
    return out


def _dom(chromium: str, url: str) -> str:
    done = subprocess.run([chromium, "--headless=new", "--no-sandbox", "--disable-gpu", "--virtual-time-budget=20000",
                           "--dump-dom", url], capture_output=True, text=True, timeout=180)
    return done.stdout


def browser_problems(site: Path, chromium: str) -> list[str]:
    """Problems only a browser sees: maths that MathJax did not typeset."""
    handler = functools.partial(_QuietHandler, directory=str(site))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    out = []
    try:
        for page in MATH_PAGES:
            dom = _dom(chromium, f"http://127.0.0.1:{server.server_address[1]}/{page}")
            spans = dom.count('class="arithmatex"')
            typeset = dom.count("<mjx-container")
            errors = dom.count("<mjx-merror")
            if not dom:
                out.append(f"{page}: Chromium returned no page")
            elif typeset == 0 or typeset < spans or errors:
                out.append(f"{page}: {typeset} formulas typeset of {spans} maths spans, {errors} MathJax errors")
    finally:
        server.shutdown()
    return out


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - the base class's name
        pass


def main(argv: list[str]) -> int:
    """Check the site folder ``argv[0]`` (default ``site``); 0 when nothing is wrong."""
    site = Path(argv[0] if argv else "site")
    problems = static_problems(site)
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        print("check_site: no Chromium, maths rendering not checked (CI installs it)")
    else:
        problems += browser_problems(site, chromium)
    for line in problems:
        print(line, file=sys.stderr)
    print(f"check_site: {site}: {len(problems)} problem(s)")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
