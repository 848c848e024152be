"""Figures for patching results and circuits (matplotlib and networkx, imported lazily).

* :func:`plot_scores`: heatmap of a :class:`~hookgnn.patching.results.HookScores`
  (round x node / edge / feature);
* :func:`plot_message_circuit`: a circuit of message edges drawn over the input graph;
* :func:`plot_neuron_circuit`: a neuron-level circuit (weight edges) drawn layer by layer;
* :func:`plot_probes`: hint x step heatmaps of a :class:`~hookgnn.causal.tables.ProbeResult`
  (probe score beside its control task).

Install the ``viz`` extra (``matplotlib``, ``networkx``). Every function returns the
``matplotlib.figure.Figure`` and draws into ``ax`` when one is given.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING

from hookgnn.graph import Graph

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

    from hookgnn.causal.tables import ProbeResult
    from hookgnn.patching.components import MessageEdge, WeightEdge
    from hookgnn.patching.results import HookScores


def _axes(ax: Axes | None, figsize: tuple[float, float]) -> tuple[Figure, Axes]:
    import matplotlib.pyplot as plt

    if ax is not None:
        return ax.figure, ax  # type: ignore[return-value]
    fig, ax = plt.subplots(figsize=figsize)
    return fig, ax


def plot_scores(scores: HookScores, ax: Axes | None = None, cmap: str = "RdBu_r", title: str | None = None) -> Figure:
    """Heatmap of the effects ``values[round, item]``, colour scale symmetric around 0 (one cell per score).

    >>> import torch, matplotlib; matplotlib.use("Agg")
    >>> from hookgnn.patching.results import HookScores
    >>> fig = plot_scores(HookScores(torch.randn(2, 3), ("a", "b"), ("round", "node"), baseline=0.0))
    >>> fig.axes[0].images[0].get_array().shape
    (2, 3)
    """
    fig, ax = _axes(ax, (max(4.0, 0.25 * scores.values.shape[1] + 2), max(2.5, 0.3 * len(scores.hooks) + 1.5)))
    vals = scores.values.detach().cpu().float()
    lim = float(vals.abs().max()) or 1.0
    im = ax.imshow(vals.numpy(), cmap=cmap, vmin=-lim, vmax=lim, aspect="auto", interpolation="nearest")
    ax.set_xlabel(scores.axes[1])
    ax.set_ylabel(scores.axes[0])
    ax.set_yticks(range(len(scores.hooks)))
    ax.set_yticklabels([_short(h) for h in scores.hooks], fontsize=7)
    fig.colorbar(im, ax=ax)
    ax.set_title(title or f"effects (baseline {scores.baseline:.3g})", fontsize=9)
    fig.tight_layout()
    return fig


def _short(hook: str) -> str:
    """``layers.3.hook_update`` -> ``3: hook_update`` (a tick label that fits)."""
    parts = hook.split(".", 2)
    return f"{parts[1]}: {parts[2]}" if len(parts) == 3 and parts[0] == "layers" else hook


def plot_message_circuit(
    graph: Graph,
    circuit: Iterable[MessageEdge],
    scores: Mapping[MessageEdge, float] | None = None,
    ax: Axes | None = None,
    seed: int = 0,
) -> Figure:
    """The input graph (grey) with the circuit's messages drawn as arrows labelled by round.

    One arrow per distinct message edge of the circuit (width by |score| when given);
    nodes at a spring layout.
    """
    import networkx as nx

    fig, ax = _axes(ax, (5.0, 5.0))
    g = nx.DiGraph()
    g.add_nodes_from(range(graph.num_nodes))
    src, dst = graph.edge_index.tolist()
    g.add_edges_from((u, v) for u, v in zip(src, dst) if u != v)
    pos = nx.spring_layout(g, seed=seed)
    nx.draw_networkx_nodes(g, pos, ax=ax, node_size=120, node_color="#dddddd")
    nx.draw_networkx_edges(g, pos, ax=ax, edge_color="#cccccc", arrows=False)
    nx.draw_networkx_labels(g, pos, ax=ax, font_size=7)
    msgs = list(circuit)
    top = max((abs(scores[m]) for m in msgs), default=1.0) if scores else 1.0
    for m in msgs:
        w = 1.0 + 3.0 * (abs(scores[m]) / top if scores and top else 1.0)
        ax.annotate("", xy=pos[m.v], xytext=pos[m.u],
                    arrowprops=dict(arrowstyle="-|>", color="C3", lw=w, shrinkA=6, shrinkB=6))
        mid = (pos[m.u] + pos[m.v]) / 2
        ax.text(mid[0], mid[1], f"t{m.round}", fontsize=6, color="C3")
    ax.set_axis_off()
    ax.set_title(f"circuit: {len(msgs)} messages")
    return fig


def plot_neuron_circuit(
    edges: Iterable[WeightEdge], scores: Mapping[WeightEdge, float] | None = None, ax: Axes | None = None
) -> Figure:
    """Neurons as dots in columns (one column per hook, in order of first appearance
    along the edges), circuit edges as lines between them, width by |score|."""
    fig, ax = _axes(ax, (8.0, 4.0))
    edges = list(edges)
    order: list[str] = []
    for e in edges:
        for h in (e.src.hook, e.dst.hook):
            if h not in order:
                order.append(h)
    col = {h: i for i, h in enumerate(order)}
    neurons = sorted({(e.src.hook, e.src.feature) for e in edges} | {(e.dst.hook, e.dst.feature) for e in edges},
                     key=lambda n: (col[n[0]], n[1]))
    top = max((abs(scores[e]) for e in edges), default=1.0) if scores else 1.0
    for e in edges:
        w = 0.5 + 3.0 * (abs(scores[e]) / top if scores and top else 1.0)
        ax.plot([col[e.src.hook], col[e.dst.hook]], [e.src.feature, e.dst.feature], color="C0", lw=w, alpha=0.7)
    ax.scatter([col[h] for h, _ in neurons], [f for _, f in neurons], color="k", s=15, zorder=3)
    ax.set_xticks(range(len(order)))
    ax.set_xticklabels(order, rotation=60, ha="right", fontsize=6)
    ax.set_ylabel("neuron")
    ax.set_title(f"neuron circuit: {len(edges)} edges, {len(neurons)} neurons")
    fig.tight_layout()
    return fig


def plot_probes(result: ProbeResult, values: tuple[str, ...] = ("score", "control"), cmap: str = "viridis") -> Figure:
    """One ``hint x step`` heatmap per column of ``values`` (default: the held-out probe score
    and its control task), on one colour scale from 0 to 1 (R^2 below 0 shows as 0).

    >>> import matplotlib; matplotlib.use("Agg")
    >>> from hookgnn.causal.tables import ProbeResult
    >>> rows = [{"hint": "d", "step": k, "score": 0.9, "control": 0.1} for k in (1, 2)]
    >>> plot_probes(ProbeResult(rows, {})).axes[0].images[0].get_array().shape
    (1, 2)
    """
    import matplotlib.pyplot as plt

    hints, steps, _ = result.matrix(values[0])
    fig, axes = plt.subplots(1, len(values), figsize=(2.0 + 0.5 * len(steps) * len(values), 1.2 + 0.4 * len(hints)),
                             squeeze=False)
    for ax, value in zip(axes[0], values):
        _, _, m = result.matrix(value)
        im = ax.imshow(m.numpy(), cmap=cmap, vmin=0.0, vmax=1.0, aspect="auto", interpolation="nearest")
        ax.set_xticks(range(len(steps)))
        ax.set_xticklabels([str(k) for k in steps], fontsize=7)
        ax.set_yticks(range(len(hints)))
        ax.set_yticklabels(hints, fontsize=7)
        ax.set_xlabel("step")
        ax.set_title(value, fontsize=9)
    fig.colorbar(im, ax=list(axes[0]))
    return fig
