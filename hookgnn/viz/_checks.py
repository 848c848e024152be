"""Input checks and data shared by the figures and the interactive views (no matplotlib here:
the views need nothing beyond hookgnn)."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING

from hookgnn.graph import Graph

if TYPE_CHECKING:
    from hookgnn.patching.components import MessageEdge


def finite(values: Iterable[float], what: str) -> list[float]:
    """``values`` as floats; a ``ValueError`` naming ``what`` when one is NaN or infinite."""
    out = [float(v) for v in values]
    bad = [v for v in out if not math.isfinite(v)]
    if bad:
        raise ValueError(f"{what}: {len(bad)} value(s) are not finite (first: {bad[0]}); "
                         "a figure cannot place them on a colour scale")
    return out


def effect_scale(values: Sequence[float]) -> tuple[str, float, float]:
    """``(kind, vmin, vmax)`` of a colour scale for effects: ``"signed"`` (symmetric about 0)
    when both signs occur, else ``"negative"`` (``[-max|v|, 0]``) or ``"positive"`` (``[0, max|v|]``).

    >>> effect_scale([-1.0, 0.5]), effect_scale([-1.0, 0.0]), effect_scale([0.0, 2.0])
    (('signed', -1.0, 1.0), ('negative', -1.0, 0.0), ('positive', 0.0, 2.0))
    """
    lim = max((abs(v) for v in values), default=0.0) or 1.0
    if any(v < 0 for v in values) and any(v > 0 for v in values):
        return "signed", -lim, lim
    if any(v < 0 for v in values):
        return "negative", -lim, 0.0
    return "positive", 0.0, lim


def edge_labels(graph: Graph) -> list[str]:
    """``"u->v"`` for every edge of ``graph`` in ``edge_index`` order.

    >>> import torch
    >>> edge_labels(Graph(x=torch.zeros(2, 1), edge_index=torch.tensor([[0, 1], [1, 1]])))
    ['0->1', '1->1']
    """
    src, dst = graph.edge_index.tolist()
    return [f"{u}->{v}" for u, v in zip(src, dst)]


def item_labels(axis: str, count: int, graph: Graph | None) -> list[str]:
    """Labels of a score row's items: ``u->v`` for edges (with ``graph``), else the index."""
    if axis == "edge" and graph is not None:
        labels = edge_labels(graph)
        if len(labels) != count:
            raise ValueError(f"graph has {len(labels)} edges but the scores have {count} edge columns: "
                             "pass the graph the scores were computed on")
        return labels
    return [str(i) for i in range(count)]


def checked_messages(graph: Graph, circuit: Iterable[MessageEdge], scores: Mapping[MessageEdge, float] | None,
                     ) -> tuple[list[MessageEdge], dict[MessageEdge, float | None]]:
    """The circuit's distinct messages (in order) and their scores; a ``ValueError`` when a message
    is not an edge of ``graph``, has a negative round, or lacks a score."""
    msgs = list(dict.fromkeys(circuit))
    src, dst = graph.edge_index.tolist()
    for m in msgs:
        if not 0 <= m.edge < len(src) or (src[m.edge], dst[m.edge]) != (m.u, m.v):
            found = f"{src[m.edge]}->{dst[m.edge]}" if 0 <= m.edge < len(src) else "no such edge"
            raise ValueError(f"message {m}: edge {m.edge} of the graph is {found}, not {m.u}->{m.v}; "
                             "pass the graph the circuit was found on")
        if m.round < 0:
            raise ValueError(f"message {m}: negative round {m.round}")
    if scores is not None:
        missing = [m for m in msgs if m not in scores]
        if missing:
            raise ValueError(f"scores has no entry for {len(missing)} message(s) of the circuit, e.g. {missing[0]}")
        values = finite([scores[m] for m in msgs], "message scores")
        return msgs, dict(zip(msgs, values))
    return msgs, dict.fromkeys(msgs)


def node_marks(nodes: Iterable[int] | int, graph: Graph, what: str) -> list[int]:
    """``nodes`` (one or several) as a list; a ``ValueError`` naming ``what`` for a node not in ``graph``."""
    out = [nodes] if isinstance(nodes, int) else list(nodes)
    for n in out:
        if not 0 <= int(n) < graph.num_nodes:
            raise ValueError(f"{what} node {n} is not a node of the graph ({graph.num_nodes} nodes)")
    return [int(n) for n in out]
