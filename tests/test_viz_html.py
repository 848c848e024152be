"""Interactive views in a real browser: headless Chromium loads the saved page, runs its
script, and we read the rendered DOM back (``--dump-dom``). The page must load without a
JavaScript error, carry hover data per cell / arrow, show exactly the numbers it was built
from, and the round slider must change the round shown.

Without a Chromium the browser tests skip, except in CI (``CI`` set), where they fail:
CI installs it (``apt-get install chromium``, see ``.ci/run``).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import pytest
import torch

from hookgnn.graph import Graph
from hookgnn.patching import HookScores, MessageEdge
from hookgnn.viz import RenderedHTML, circuit_explorer, scores_heatmap

BROWSERS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
#: Installed first thing in the page: any uncaught error becomes a <pre class="js-error"> element.
CATCH = ("<script>window.onerror = function(msg, src, line){ var p = document.createElement('pre');"
         " p.className = 'js-error'; p.textContent = msg + ' (line ' + line + ')';"
         " document.documentElement.appendChild(p); };</script>")


def browser() -> str:
    found = next((shutil.which(b) for b in BROWSERS if shutil.which(b)), None)
    if found is None:
        if os.environ.get("CI"):
            pytest.fail("no headless Chromium found for the interactive-view tests: apt-get install -y chromium")
        pytest.skip("no Chromium found (apt-get install chromium); CI runs these tests")
    return found


class Elements(HTMLParser):
    """Every element as (tag, attributes, text of its <title> child), in document order."""

    def __init__(self) -> None:
        super().__init__()
        self.found: list[dict] = []
        self.stack: list[dict] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        node = {"tag": tag, "attrs": dict(attrs), "title": "", "text": ""}
        self.found.append(node)
        if tag not in ("br", "input", "meta"):
            self.stack.append(node)

    def handle_endtag(self, tag: str) -> None:
        while self.stack:
            node = self.stack.pop()
            if node["tag"] == tag:
                if tag == "title" and self.stack:
                    self.stack[-1]["title"] = node["text"]
                break

    def handle_data(self, data: str) -> None:
        if self.stack:
            self.stack[-1]["text"] += data


def render(view: RenderedHTML, tmp_path: Path, extra: str = "", url_hash: str = "") -> tuple[list[dict], str]:
    """Save ``view`` with the error catcher (and ``extra`` script at the end), load it in
    Chromium, return the parsed DOM and the DOM text."""
    page = view.page().replace("<head>", "<head>" + CATCH, 1).replace("</body>", extra + "</body>", 1)
    path = tmp_path / "view.html"
    path.write_text(page, encoding="utf-8")
    run = subprocess.run([browser(), "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
                          f"--user-data-dir={tmp_path / 'profile'}", "--virtual-time-budget=3000", "--dump-dom",
                          path.as_uri() + url_hash], capture_output=True, text=True, timeout=120)
    assert run.returncode == 0 and "<html" in run.stdout, run.stderr[-2000:]
    parser = Elements()
    parser.feed(run.stdout)
    errors = [n["text"] for n in parser.found if "js-error" in n["attrs"].get("class", "")
              or ("hg-errors" in n["attrs"].get("class", "") and n["text"].strip())]
    assert errors == [], errors
    return parser.found, run.stdout


def of_class(found: list[dict], cls: str) -> list[dict]:
    return [n for n in found if cls in (n["attrs"].get("class") or "").split()]


def graph() -> Graph:
    """0->1, 1->1 (self-loop), 1->2 twice (parallel), 2->3, 3->0."""
    return Graph(x=torch.zeros(4, 1), edge_index=torch.tensor([[0, 1, 1, 1, 2, 3], [1, 1, 2, 2, 3, 0]]))


def test_view_is_self_contained_and_embeds_its_data_as_json(tmp_path: Path):
    torch.manual_seed(0)
    scores = HookScores(torch.randn(2, 6), ("layers.0.hook_src", "layers.1.hook_src"), ("round", "edge"), baseline=0.0)
    view = scores_heatmap(scores, graph())
    assert view._repr_html_() == str(view)
    assert not re.search(r"<script[^>]*\bsrc=|<link\b|@import", view.page())  # nothing fetched: works offline
    view.save(tmp_path / "v.html")
    text = (tmp_path / "v.html").read_text(encoding="utf-8")
    embedded = json.loads(re.search(r'<script type="application/json" class="hg-data">(.*?)</script>', text, re.S)[1])
    assert embedded == view.data
    torch.testing.assert_close(torch.tensor(embedded["values"], dtype=torch.float64), scores.values.double(),
                               rtol=1e-6, atol=1e-9)


def test_heatmap_in_a_browser_shows_every_score_with_hover_data(tmp_path: Path):
    torch.manual_seed(1)
    values = torch.randn(3, 6)
    values[1, 2] = 0.0
    g = graph()
    hooks = ("layers.0.hook_src", "layers.1.hook_src", "layers.2.hook_src")
    found, _ = render(scores_heatmap(HookScores(values, hooks, ("round", "edge"), baseline=0.25), g), tmp_path)
    cells = of_class(found, "hg-cell")
    assert len(cells) == values.numel()
    src, dst = g.edge_index.tolist()
    labels = [f"{u}->{v}" for u, v in zip(src, dst)]
    for cell in cells:
        a = cell["attrs"]
        r, item, shown = int(a["data-round"]), a["data-item"], float(a["data-value"])
        j = labels.index(item) if labels.count(item) == 1 else None
        expected = [float(values[r, k]) for k, lab in enumerate(labels) if lab == item]
        assert any(shown == pytest.approx(e, rel=1e-6, abs=1e-9 * float(values.abs().max())) for e in expected)
        if j is not None:
            assert shown == pytest.approx(float(values[r, j]), rel=1e-6, abs=1e-9)
        assert f"round {r}" in cell["title"] and item in cell["title"] and a["data-value"] in cell["title"]
    assert sorted(float(c["attrs"]["data-value"]) for c in cells) == pytest.approx(sorted(values.flatten().tolist()),
                                                                                     rel=1e-6, abs=1e-9)
    zero = next(c for c in cells if float(c["attrs"]["data-value"]) == 0.0)
    assert zero["attrs"]["fill"] == "rgb(255,255,255)"
    for c in cells:  # red for a positive effect, blue for a negative one
        red, _, blue = map(int, re.findall(r"\d+", c["attrs"]["fill"]))
        v = float(c["attrs"]["data-value"])
        assert (red > blue) if v > 0 else (blue > red) if v < 0 else red == blue


#: After load: record the round shown, move the slider to round 0 and record again.
MOVE = """<script>window.addEventListener('load', function(){
  var root = document.querySelector('.hg-view');
  function seen(){ return root.getAttribute('data-round') + '|' + root.querySelector('.hg-round-label').textContent
    + '|' + Array.prototype.map.call(root.querySelectorAll('.hg-graph-msg'), function(p){
      return p.getAttribute('data-round') + ':' + p.getAttribute('data-msg'); }).join(','); }
  document.body.setAttribute('data-before', seen());
  var s = root.querySelector('input.hg-slider'); s.value = 0; s.dispatchEvent(new Event('input'));
  document.body.setAttribute('data-after', seen());
});</script>"""


def test_circuit_explorer_in_a_browser_shows_the_scores_and_the_slider_changes_the_round(tmp_path: Path):
    g = graph()
    circuit = [MessageEdge(0, 0, 0, 1), MessageEdge(1, 1, 1, 1), MessageEdge(1, 2, 1, 2), MessageEdge(1, 3, 1, 2),
               MessageEdge(2, 4, 2, 3), MessageEdge(2, 0, 0, 1)]
    torch.manual_seed(2)
    effects = torch.randn(len(circuit))
    scores = {m: float(s) for m, s in zip(circuit, effects)}
    found, dom = render(circuit_explorer(g, circuit, scores, query=3, sources=0), tmp_path, MOVE, "#round=2")
    arrows = of_class(found, "hg-msg")
    assert sorted((int(a["attrs"]["data-round"]), a["attrs"]["data-msg"], int(a["attrs"]["data-edge"]))
                  for a in arrows) == sorted((m.round, f"{m.u}->{m.v}", m.edge) for m in circuit)
    for a in arrows:
        key = (int(a["attrs"]["data-round"]), int(a["attrs"]["data-edge"]))
        m = next(m for m in circuit if (m.round, m.edge) == key)
        assert float(a["attrs"]["data-value"]) == pytest.approx(scores[m], rel=1e-6, abs=1e-9)
        assert f"round {m.round}, {m.u}->{m.v}" in a["title"]
    body = next(n for n in found if n["tag"] == "body")["attrs"]
    by_round = {t: sorted(f"{t}:{m.u}->{m.v}" for m in circuit if m.round == t) for t in range(3)}
    r, label, drawn = body["data-before"].split("|")
    assert (r, label) == ("2", "round 2: 2 messages") and sorted(drawn.split(",")) == by_round[2]
    r, label, drawn = body["data-after"].split("|")
    assert (r, label) == ("0", "round 0: 1 message") and sorted(drawn.split(",")) == by_round[0]
    assert len(of_class(found, "hg-slider")) == 1 and len(of_class(found, "hg-query")) == 1
    assert "hookgnn-view" in dom


def multi_graph() -> Graph:
    """0->1 and 1->0 (antiparallel), 1->2 three times (multi-edges), the self-loop 1->1 twice."""
    return Graph(x=torch.zeros(3, 1), edge_index=torch.tensor([[0, 1, 1, 1, 1, 1, 1], [1, 0, 2, 2, 1, 2, 1]]))


def test_parallel_messages_are_ranked_in_edge_order_within_a_round():
    g = multi_graph()
    circuit = [MessageEdge(0, e, u, v) for e, (u, v) in enumerate(zip(*g.edge_index.tolist()))]
    circuit += [MessageEdge(1, 3, 1, 2)]  # another round: its own count
    view = circuit_explorer(g, circuit)
    ranks = {(m["round"], m["edge"]): m["rank"] for m in view.data["messages"]}
    # by hand: edges 2, 3, 5 are 1->2 (ranks 0, 1, 2); 4 and 6 are 1->1 (0, 1); 0->1 and 1->0 are different pairs
    assert ranks == {(0, 0): 0, (0, 1): 0, (0, 2): 0, (0, 3): 1, (0, 4): 0, (0, 5): 2, (0, 6): 1, (1, 3): 0}


def test_parallel_and_antiparallel_messages_draw_distinct_paths(tmp_path: Path):
    g = multi_graph()
    circuit = [MessageEdge(0, e, u, v) for e, (u, v) in enumerate(zip(*g.edge_index.tolist()))]
    found, _ = render(circuit_explorer(g, circuit, query=2), tmp_path)
    for cls in ("hg-msg", "hg-graph-msg"):  # the unrolled view and the graph view (round 0 shown)
        paths = {i: n["attrs"].get("d") or tuple(n["attrs"].get(k) for k in ("x1", "y1", "x2", "y2"))
                 for i, n in enumerate(of_class(found, cls))}  # a path's d, or a straight line's ends
        assert len(paths) == len(circuit), cls
        assert len(set(paths.values())) == len(circuit), (cls, paths)


def test_views_reject_bad_input():
    with pytest.raises(ValueError, match="not finite"):
        scores_heatmap(HookScores(torch.tensor([[float("inf")]]), ("h",), ("round", "node"), baseline=0.0))
    with pytest.raises(ValueError, match="edge 4 of the graph is 2->3, not 1->2"):
        circuit_explorer(graph(), [MessageEdge(0, 4, 1, 2)])


def test_missing_browser_fails_in_ci_and_skips_elsewhere(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr(shutil, "which", lambda name: None)
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="apt-get install -y chromium"):
        browser()
    monkeypatch.delenv("CI")
    with pytest.raises(pytest.skip.Exception, match="no Chromium found"):
        browser()
