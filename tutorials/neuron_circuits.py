"""Neuron-level circuits of a wrapped PyG model, the way MINAR counts them (tutorials 4 and 5).

MINAR's computation graph has one node per neuron and one edge per entry ``W[j, i]`` of
every ``Linear``: its circuits are sets of weight entries, evaluated by zeroing every
other entry. In hookgnn those are the :class:`~hookgnn.patching.WeightEdge` s whose link
carries a weight; the other links of a wrapped model (activations, the min aggregation,
concatenations, gathers) have no weight to zero and join the neurons up.

* :func:`linear_edges`: the weight-entry edges of EAP scores, with their scores;
* :func:`sweep_sizes`: circuit-only and circuit-ablated metric of the top ``n`` edges for each ``n``;
* :func:`published_formula`: the score the published code computes (see tutorial 4);
* :func:`connections`: the weightless links joining a circuit's neurons, and
  :func:`plot_circuit`: a drawing of a circuit with them, columns in the order data flows.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any

import torch
from torch import Tensor

from hookgnn import Graph
from hookgnn.circuits import Circuit, evaluate
from hookgnn.nn.wiring import links_of
from hookgnn.nn.wiring import ResolvedLink
from hookgnn.patching import Attribution, EdgeScores
from hookgnn.patching.components import WeightEdge, weight_edges


def all_links(hooked: Any) -> dict[str, ResolvedLink]:
    """Every link of every round, by the label its weight edges carry."""
    return {f"layers.{l.round}:{l.name}": l for l in links_of(hooked, range(hooked.num_rounds))}


def linear_edges(hooked: Any, scores: EdgeScores) -> dict[WeightEdge, float]:
    """The scores of the edges that are entries of a weight matrix (MINAR's edges)."""
    links = all_links(hooked)
    return {e: s for e, s in scores.as_dict().items()
            if isinstance(e, WeightEdge) and links[e.link].weight is not None}


def weight_of(hooked: Any, edge: WeightEdge) -> float:
    """The entry ``W[j, i]`` that carries ``edge``."""
    w = all_links(hooked)[edge.link].weight
    return float(w[edge.dst.feature, edge.src.feature])


def short(c: Any) -> str:
    """``convs.0.msg_mlp.2.hook_out`` feature 42 -> ``convs.0.msg_mlp.2[42]``."""
    return f"{c.hook.removesuffix('.hook_out').removeprefix('hook_')}[{c.feature}]"


def label(edge: WeightEdge) -> str:
    """``src -> dst`` in short names."""
    return f"{short(edge.src)} -> {short(edge.dst)}"


def sweep_sizes(hooked: Any, graph: Graph, metric: Callable[..., Tensor], ranked: Sequence[WeightEdge],
                sizes: Iterable[int]) -> list[dict[str, float]]:
    """For each ``n``: the metric with only the top ``n`` edges of ``ranked`` kept (every
    other weight entry zeroed, through hooks) and with those ``n`` zeroed (the rest kept)."""
    universe = list(ranked)
    rows = []
    for n in sizes:
        kept = Circuit.of(universe[:n])
        rows.append({"edges": n,
                     "circuit": evaluate(hooked, graph, graph, metric, kept, universe, ablation="zero"),
                     "ablated": evaluate(hooked, graph, graph, metric, Circuit.of(universe[n:]), universe,
                                         ablation="zero")})
    return rows


def ranked(scores: dict[WeightEdge, float]) -> list[WeightEdge]:
    """Every edge by decreasing absolute score (zero scores included, last)."""
    return sorted(scores, key=lambda e: -abs(scores[e]))


def _activation_after(links: dict[str, ResolvedLink], hook: str) -> str | None:
    """The output hook of the activation a Linear's output goes through next, if any
    (following identity links, as the next module the published code sees)."""
    for _ in range(8):
        nxt = [l for l in links.values() if l.src == hook and l.weight is None and l.rows == "same"]
        if not nxt:
            return None
        if nxt[0].act != "identity":
            return nxt[0].dst
        hook = nxt[0].dst
    return None


def published_formula(hooked: Any, attr: Attribution) -> dict[WeightEdge, float]:
    """The score of each weight entry as the published code computes it.

    For a Linear ``z = W u + b`` the code multiplies the *output*'s activation difference
    (after the activation that follows, if one does) by the gradient at the Linear's
    *input*, and has no weight: :math:`S_{i \\to j} = |\\sum_r \\Delta a_{r,j}\\, (\\bar g_r W)_{r,i}|`
    with :math:`\\bar g = \\partial m / \\partial z`. The textbook EAP(-IG) score (hookgnn's
    :func:`~hookgnn.attribution.eap`) is :math:`W_{ji} \\sum_r \\Delta u_{r,i}\\, \\bar g_{r,j}`.
    ``attr`` is :func:`~hookgnn.attribution.attribute` (``ig_steps > 0``: EAP-IG) over every hook, so
    both formulas read the same differences and gradients.
    """
    links = all_links(hooked)
    out: dict[WeightEdge, float] = {}
    for name, link in links.items():
        if link.weight is None:
            continue
        after = _activation_after(links, link.dst)
        delta_out = attr.delta[after if after is not None else link.dst]  # [rows, d_out]
        grad_in = attr.grad[link.dst] @ link.weight.to(attr.grad[link.dst])  # [rows, d_in]: this Linear's share
        mat = (delta_out.T @ grad_in).abs()  # [d_out, d_in]
        for e in weight_edges(link, link.weight.shape[1], link.weight.shape[0], include_zero=True):
            out[e] = float(mat[e.dst.feature, e.src.feature])
    return out


def connections(hooked: Any, edges: Iterable[WeightEdge]) -> list[WeightEdge]:
    """The weightless links (activations, aggregation, gathers, ...) on paths from one of
    the circuit's neurons to another, feature by feature: drawn with the circuit, they
    show it as one network."""
    edges = list(edges)
    links = [l for l in all_links(hooked).values() if l.weight is None]
    heads = {e.dst for e in edges}
    tails = {e.src for e in edges}
    found: list[WeightEdge] = []
    frontier = set(heads)
    reached = set(heads)
    steps: list[WeightEdge] = []
    for _ in range(8):  # forward from the circuit's outputs along weightless links
        new = set()
        for l in links:
            for c in frontier:
                if c.hook == l.src:
                    e = WeightEdge(c, type(c)(l.dst, None, c.feature), l.name, l.round)
                    steps.append(e)
                    if e.dst not in reached:
                        new.add(e.dst)
                        reached.add(e.dst)
        frontier = new
    useful = set(tails)
    changed = True
    while changed:  # keep the steps that lead on to a circuit edge's source
        changed = False
        for e in steps:
            if e.dst in useful and e.src not in useful:
                useful.add(e.src)
                changed = True
    for e in steps:
        if e.dst in useful and e not in found:
            found.append(e)
    return found


def plot_circuit(hooked: Any, edges: Iterable[WeightEdge], scores: dict[WeightEdge, float], title: str = "",
                 groups: dict[WeightEdge, str] | None = None, caption: str | None = None) -> Any:
    """The circuit neuron by neuron (:func:`hookgnn.viz.plot_neuron_circuit`): one column per hook
    point, in the order of the forward pass; weight entries as lines coloured by the sign of
    their score (or by ``groups``: task-only vs shared) and as wide as its size, the weightless
    links that join them (:func:`connections`) dotted."""
    from hookgnn.viz import plot_neuron_circuit

    edges = list(edges)
    links = [e for e in connections(hooked, edges) if e not in edges]
    known = [p.name for p in hooked.list_hooks()]
    order = [h for h in dict.fromkeys(c.hook for e in edges + links for c in (e.src, e.dst)) if h not in known] + known
    return plot_neuron_circuit(edges, {e: scores[e] for e in edges}, links=links, groups=groups, order=order,
                               title=title or None, caption=caption)
