"""Interactive views, as circuitsvis gives TransformerLens users: self-contained HTML.

* :func:`scores_heatmap`: a round x node / round x edge heatmap of a
  :class:`~hookgnn.patching.results.HookScores`, with ``u->v``, round and value on hover;
* :func:`circuit_explorer`: a message circuit unrolled in time, a round slider, and the
  graph with that round's messages, side by side.

Both return a :class:`RenderedHTML`: it renders in Jupyter (``_repr_html_``), ``save(path)``
writes a page that works offline (inline script and style, no CDN), and ``data`` is the
JSON it embeds. Needs nothing beyond hookgnn (networkx, when installed, lays the graph out).
"""

from __future__ import annotations

import html
import itertools
import json
import math
import os
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

from hookgnn.graph import Graph
from hookgnn.viz._js import CSS, JS
from hookgnn.viz._checks import checked_messages, effect_scale, finite, item_labels, node_marks

if TYPE_CHECKING:
    from hookgnn.patching.components import MessageEdge
    from hookgnn.patching.results import HookScores

_ids = itertools.count()


class RenderedHTML:
    """A view: an HTML fragment (``str(view)``) that draws ``data`` with an inline script.

    >>> import torch
    >>> from hookgnn.patching.results import HookScores
    >>> view = scores_heatmap(HookScores(torch.tensor([[0.5, -1.0]]), ("layers.0.hook_update",),
    ...                                  ("round", "node"), baseline=0.0))
    >>> view.data["values"], "<svg" in view.page()
    ([[0.5, -1.0]], False)

    :param data: what the view draws (JSON-serialisable: ``kind``, rows, items, values, scale ... as its builder
        sets them).
    :param title: the heading shown above the view.
    """

    def __init__(self, data: dict[str, Any], title: str) -> None:
        self.data = data
        self.title = title
        self.id = f"hookgnn-view-{os.getpid()}-{next(_ids)}"

    def __str__(self) -> str:
        payload = json.dumps(self.data, allow_nan=False).replace("</", "<\\/")
        return (f'<div class="hg-view" id="{self.id}"><style>{CSS}</style>'
                f"<h4>{html.escape(self.title)}</h4>{self._controls()}"
                f'<div class="hg-tip"></div><div class="hg-panels"></div><pre class="hg-errors"></pre>'
                f'<script type="application/json" class="hg-data">{payload}</script>'
                f'<script>{JS}\nwindow.hookgnnRender("{self.id}");</script></div>')

    def _controls(self) -> str:
        if self.data["kind"] != "circuit":
            return ""
        last = max(0, self.data["rounds"] - 1)
        return (f'<label>round <input type="range" class="hg-slider" min="0" max="{last}" step="1" '
                f'value="{self.data["start_round"]}"></label> <span class="hg-round-label"></span>')

    def _repr_html_(self) -> str:
        return str(self)

    def page(self) -> str:
        """A whole HTML document holding the view (what :meth:`save` writes)."""
        return (f'<!DOCTYPE html>\n<html><head><meta charset="utf-8"><title>{html.escape(self.title)}</title>'
                f"</head><body>\n{self}\n</body></html>\n")

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write :meth:`page` to ``path`` (UTF-8): it opens offline in any browser."""
        with open(path, "w", encoding="utf-8") as f:
            f.write(self.page())


def scores_heatmap(scores: HookScores, graph: Graph | None = None, title: str | None = None) -> RenderedHTML:
    """An interactive heatmap of ``scores.values[round, item]``; hovering a cell shows its round
    (row and hook), its item (``u->v`` for an edge when ``graph`` is given, else the index) and
    its value. Colours as in :func:`~hookgnn.viz.plot_scores`: white is no effect, diverging
    only when both signs occur. Every cell carries ``data-round``, ``data-item`` and
    ``data-value`` attributes.

    >>> import torch
    >>> from hookgnn.patching.results import HookScores
    >>> g = Graph(x=torch.zeros(2, 1), edge_index=torch.tensor([[0, 1], [1, 0]]))
    >>> view = scores_heatmap(HookScores(torch.tensor([[0.0, -2.0]]), ("layers.0.hook_src",), ("round", "edge"),
    ...                                  baseline=1.0), graph=g)
    >>> view.data["items"], view.data["scale"]["kind"]
    (['0->1', '1->0'], 'negative')

    :param scores: the effects to show (one row per hook, e.g. ``[round, edge]``).
    :param graph: the scored graph, for ``u->v`` labels of edge columns.
    :param title: the heading (default: the direction and the baseline).
    """
    vals = scores.values.detach().cpu().double()
    rows = [finite(r, f"scores_heatmap row {h!r}") for r, h in zip(vals.tolist(), scores.hooks)]
    kind, vmin, vmax = effect_scale([v for r in rows for v in r])
    data = {"kind": "heatmap", "rows": list(scores.hooks), "row_axis": scores.axes[0], "item_axis": scores.axes[1],
            "items": item_labels(scores.axes[1], vals.shape[1], graph), "values": rows,
            "baseline": float(scores.baseline), "direction": scores.direction,
            "scale": {"kind": kind, "vmin": vmin, "vmax": vmax}}
    return RenderedHTML(data, title or f"effects ({scores.direction}; baseline {scores.baseline:.4g})")


def _layout(graph: Graph, seed: int) -> list[list[float]]:
    """Node positions in [-1, 1]^2: networkx's spring layout when installed, else a circle."""
    n = graph.num_nodes
    try:
        import networkx as nx
    except ImportError:
        return [[math.cos(2 * math.pi * i / max(n, 1)), math.sin(2 * math.pi * i / max(n, 1))] for i in range(n)]
    g = nx.Graph()
    g.add_nodes_from(range(n))
    g.add_edges_from((u, v) for u, v in zip(*graph.edge_index.tolist()) if u != v)
    pos = nx.spring_layout(g, seed=seed)
    return [[float(pos[i][0]), float(pos[i][1])] for i in range(n)]


def parallel_ranks(messages: Iterable[MessageEdge]) -> list[tuple[MessageEdge, int]]:
    """Each message with its rank among the earlier messages of the same round on the same
    ordered pair ``u -> v`` (0 for the first, 1 for a parallel edge after it ...): how far the
    views curve it away from the others.

    >>> from hookgnn.patching.components import MessageEdge
    >>> msgs = [MessageEdge(0, 2, 1, 2), MessageEdge(0, 3, 1, 2), MessageEdge(0, 4, 2, 1), MessageEdge(1, 3, 1, 2)]
    >>> [rank for _, rank in parallel_ranks(msgs)]
    [0, 1, 0, 0]

    :param messages: the messages, in the order ranks are given (e.g. by round, then edge).
    """
    seen: dict[tuple[int, int, int], int] = {}
    ranked = []
    for m in messages:
        key = (m.round, m.u, m.v)
        ranked.append((m, seen.get(key, 0)))
        seen[key] = seen.get(key, 0) + 1
    return ranked


def circuit_explorer(
    graph: Graph,
    circuit: Iterable[MessageEdge],
    scores: Mapping[MessageEdge, float] | None = None,
    query: Iterable[int] | int = (),
    sources: Iterable[int] | int = (),
    title: str | None = None,
    seed: int = 0,
) -> RenderedHTML:
    """An interactive message circuit: left, unrolled in time (the message of round ``t`` on
    ``u -> v`` an arrow from :math:`(t, u)` to :math:`(t+1, v)`, red/blue by the sign of its
    effect, width by its size); a slider picks a round, whose arrows stay opaque and whose
    messages are drawn over the graph on the right. The page opens at the round given by a
    URL hash ``#round=3`` (else the circuit's first round). Each arrow has a hover title and
    ``data-round``, ``data-msg`` (``u->v``) and ``data-value`` attributes. Parallel messages
    (multi-edges ``u -> v`` of one round, in edge order) are curved apart by their ``rank``
    (:func:`parallel_ranks`); ``u -> v`` and ``v -> u`` bend to opposite sides.

    >>> import torch
    >>> from hookgnn.patching.components import MessageEdge
    >>> g = Graph(x=torch.zeros(2, 1), edge_index=torch.tensor([[0, 1], [1, 1]]))
    >>> view = circuit_explorer(g, [MessageEdge(0, 0, 0, 1), MessageEdge(1, 1, 1, 1)], query=1)
    >>> view.data["rounds"], [m["round"] for m in view.data["messages"]]
    (2, [0, 1])

    :param graph: the graph the circuit was found on (its ``edge_index`` must match the messages).
    :param circuit: the messages (:class:`~hookgnn.patching.components.MessageEdge`).
    :param scores: an effect per message (every message of the circuit), for colour and width.
    :param query: the node(s) the metric reads, marked with a star.
    :param sources: source node(s) of the task, marked with a square.
    :param title: the heading (default: the number of messages and of rounds).
    :param seed: seed of the spring layout of the graph view.
    """
    msgs, score = checked_messages(graph, circuit, scores)
    rounds = max((m.round for m in msgs), default=0) + 1
    data = {"kind": "circuit", "nodes": graph.num_nodes, "rounds": rounds,
            "start_round": min((m.round for m in msgs), default=0),
            "edges": [list(e) for e in zip(*graph.edge_index.tolist())], "pos": _layout(graph, seed),
            "messages": [{"round": m.round, "edge": m.edge, "u": m.u, "v": m.v, "score": score[m], "rank": rank}
                         for m, rank in parallel_ranks(sorted(msgs, key=lambda m: (m.round, m.edge)))],
            "query": node_marks(query, graph, "query"), "sources": node_marks(sources, graph, "source")}
    return RenderedHTML(data, title or f"circuit: {len(msgs)} messages over {rounds} rounds")
