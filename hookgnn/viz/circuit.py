"""Message circuits, unrolled in time (rounds as columns, nodes as rows) and over the graph."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING

from hookgnn.graph import Graph
from hookgnn.viz._checks import checked_messages, node_marks
from hookgnn.viz._style import NEGATIVE, NEUTRAL, POSITIVE, add_caption, sign_colour, width

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

    from hookgnn.patching.components import MessageEdge

#: The graph panel is drawn next to the unrolled one up to this many nodes and messages.
GRAPH_PANEL_NODES, GRAPH_PANEL_MESSAGES = 30, 40
QUERY_COLOUR, SOURCE_COLOUR = "#f0a500", "#2ca02c"


def plot_message_circuit(
    graph: Graph,
    circuit: Iterable[MessageEdge],
    scores: Mapping[MessageEdge, float] | None = None,
    query: Iterable[int] | int = (),
    sources: Iterable[int] | int = (),
    ax: Axes | None = None,
    seed: int = 0,
    title: str | None = None,
    caption: str | None = None,
) -> Figure:
    """A message circuit unrolled in time, and (for small circuits) over the graph.

    Left panel: one column per node state :math:`h^{(t)}`, one row per node; the message
    of round ``t`` on edge ``u -> v`` is an arrow from :math:`(t, u)` to :math:`(t+1, v)`
    (a self-loop is a horizontal arrow), so messages of different rounds never merge.
    With ``scores`` (effects), an arrow is red for a positive effect, blue for a negative
    one, of width :math:`0.8 + 3.2\\,|s| / \\max |s|`; without, grey. Query nodes are marked
    by a star at the last column, source nodes by a square at column 0.

    Right panel (when ``ax`` is not given and the graph has at most 30 nodes and the
    circuit at most 40 messages): the graph at a spring layout, each message a curved
    arrow coloured by its round (parallel messages of several rounds bend apart), a
    self-loop message a loop above its node.

    Each arrow's ``gid`` is ``"t{round}:{u}->{v}#{edge}"`` (``"graph:" + ...`` in the
    right panel), so tests and tools can find it.

    >>> import torch, matplotlib; matplotlib.use("Agg")
    >>> from hookgnn.patching.components import MessageEdge
    >>> g = Graph(x=torch.zeros(3, 1), edge_index=torch.tensor([[0, 1, 1], [1, 1, 2]]))
    >>> circuit = [MessageEdge(0, 0, 0, 1), MessageEdge(1, 1, 1, 1), MessageEdge(1, 2, 1, 2)]
    >>> fig = plot_message_circuit(g, circuit, {circuit[0]: 1.0, circuit[1]: -0.5, circuit[2]: 2.0}, query=2)
    >>> sorted(a.get_gid() for a in fig.axes[0].texts if a.arrow_patch is not None)
    ['t0:0->1#0', 't1:1->1#1', 't1:1->2#2']

    :param graph: the graph the circuit was found on (its ``edge_index`` must match the messages).
    :param circuit: the messages (:class:`~hookgnn.patching.components.MessageEdge`).
    :param scores: an effect per message (every message of the circuit), for colour and width.
    :param query: the node(s) the metric reads, marked with a star.
    :param sources: source node(s) of the task, marked with a square.
    :param ax: draw only the unrolled panel into these axes.
    :param seed: seed of the spring layout of the graph panel.
    :param title: the title (default: the number of messages and of rounds).
    :param caption: a note printed under the figure.
    """
    import matplotlib.pyplot as plt
    from matplotlib.lines import Line2D

    msgs, score = checked_messages(graph, circuit, scores)
    queries, srcs = node_marks(query, graph, "query"), node_marks(sources, graph, "source")
    two = ax is None and graph.num_nodes <= GRAPH_PANEL_NODES and len(msgs) <= GRAPH_PANEL_MESSAGES
    last = max((m.round for m in msgs), default=0) + 1
    shown = sorted({n for m in msgs for n in (m.u, m.v)} | set(queries) | set(srcs))
    rows = list(range(graph.num_nodes)) if graph.num_nodes <= GRAPH_PANEL_NODES else shown
    if ax is None:
        height = max(3.0, 0.28 * len(rows) + 1.5)
        fig, axs = plt.subplots(1, 2 if two else 1, figsize=(max(4.5, 0.7 * last + 2.5) + (5.0 if two else 0), height),
                                gridspec_kw={"width_ratios": [max(4.5, 0.7 * last + 2.5), 5.0]} if two else None,
                                squeeze=False)
        ax, gax = axs[0][0], (axs[0][1] if two else None)
    else:
        fig, gax = ax.figure, None
    y = {n: i for i, n in enumerate(rows)}
    top = max((abs(s) for s in score.values() if s is not None), default=0.0)
    for t in range(last + 1):
        ax.scatter([t] * len(rows), [y[n] for n in rows], s=10, color="0.8", zorder=1)
    seen: Counter[tuple[int, int, int]] = Counter()
    for m in sorted(msgs, key=lambda m: (m.round, m.edge)):
        k = seen[(m.round, m.u, m.v)]
        seen[(m.round, m.u, m.v)] += 1
        s = score[m]
        ax.annotate("", xy=(m.round + 1, y[m.v]), xytext=(m.round, y[m.u]), gid=f"t{m.round}:{m.u}->{m.v}#{m.edge}",
                    arrowprops=dict(arrowstyle="-|>", color=sign_colour(s), lw=width(s, top), shrinkA=4, shrinkB=4,
                                    connectionstyle=f"arc3,rad={0.15 * k}", alpha=0.9), zorder=2)
    if queries:
        ax.scatter([last] * len(queries), [y[q] for q in queries], marker="*", s=160, color=QUERY_COLOUR,
                   edgecolor="k", zorder=3, gid="query")
    if srcs:
        ax.scatter([0] * len(srcs), [y[q] for q in srcs], marker="s", s=70, color=SOURCE_COLOUR, edgecolor="k",
                   zorder=3, gid="source")
    ax.set_yticks(range(len(rows)))
    ax.set_yticklabels([f"node {n}" for n in rows], fontsize=7)
    ax.set_ylim(max(len(rows), 1) - 0.5, -0.5)
    ax.set_xticks(range(last + 1))
    ax.set_xticklabels([f"h{t}" for t in range(last + 1)], fontsize=7)
    ax.set_xlim(-0.5, last + 0.5)
    ax.set_xlabel("node state after round (arrow t -> t+1: a message of round t)", fontsize=8)
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)
    handles = [Line2D([], [], color=POSITIVE, lw=2.5, label="effect > 0"),
               Line2D([], [], color=NEGATIVE, lw=2.5, label="effect < 0")] if scores is not None else \
              [Line2D([], [], color=NEUTRAL, lw=2.5, label="message")]
    if queries:
        handles.append(Line2D([], [], marker="*", ls="", ms=11, color=QUERY_COLOUR, mec="k", label="query"))
    if srcs:
        handles.append(Line2D([], [], marker="s", ls="", ms=7, color=SOURCE_COLOUR, mec="k", label="source"))
    ax.legend(handles=handles, fontsize=7, loc="upper left", bbox_to_anchor=(1.0, 1.0), frameon=False)
    ax.set_title(title or f"circuit: {len(msgs)} messages over {last} rounds (width: |effect|)", fontsize=9)
    if gax is not None:
        _graph_panel(gax, graph, msgs, queries, srcs, seed, last)
    add_caption(fig, caption)
    fig.tight_layout()
    return fig


def _graph_panel(ax: Axes, graph: Graph, msgs: list[MessageEdge], queries: list[int], srcs: list[int], seed: int,
                 last: int) -> None:
    """The graph (grey) with each message a curved arrow coloured by round, labels upright."""
    import matplotlib as mpl
    import networkx as nx
    import numpy as np
    from matplotlib.patches import Circle

    g = nx.Graph()
    g.add_nodes_from(range(graph.num_nodes))
    g.add_edges_from((u, v) for u, v in zip(*graph.edge_index.tolist()) if u != v)
    pos = nx.spring_layout(g, seed=seed)
    colour = {n: QUERY_COLOUR if n in queries else SOURCE_COLOUR if n in srcs else "#e0e0e0" for n in g.nodes}
    nx.draw_networkx_edges(g, pos, ax=ax, edge_color="#d0d0d0", width=0.8)
    nx.draw_networkx_nodes(g, pos, ax=ax, node_size=170, node_color=[colour[n] for n in g.nodes], edgecolors="0.4")
    nx.draw_networkx_labels(g, pos, ax=ax, font_size=7)
    rounds = max(1, last)
    cmap = mpl.colors.ListedColormap(mpl.colormaps["viridis"](np.linspace(0.0, 0.85, rounds)))
    norm = mpl.colors.BoundaryNorm(np.arange(rounds + 1) - 0.5, rounds)
    per_edge: Counter[tuple[int, int]] = Counter()
    loops: Counter[int] = Counter()
    label = dict(fontsize=7, ha="center", va="center", rotation=0, zorder=5,
                 bbox=dict(boxstyle="round,pad=0.1", fc="white", ec="none", alpha=0.8))
    for m in sorted(msgs, key=lambda m: (m.round, m.edge)):
        c = cmap(norm(m.round))
        if m.u == m.v:
            k = loops[m.u]
            loops[m.u] += 1
            x, yy = pos[m.u]
            r = 0.09 + 0.04 * k
            ax.add_patch(Circle((x, yy + r + 0.07), r, fill=False, ec=c, lw=1.8, zorder=4,
                                gid=f"graph:t{m.round}:{m.u}->{m.v}#{m.edge}"))
            continue
        k = per_edge[(m.u, m.v)]
        per_edge[(m.u, m.v)] += 1
        rad = 0.12 + 0.12 * k
        ax.annotate("", xy=pos[m.v], xytext=pos[m.u], gid=f"graph:t{m.round}:{m.u}->{m.v}#{m.edge}", zorder=4,
                    arrowprops=dict(arrowstyle="-|>", color=c, lw=1.8, shrinkA=7, shrinkB=7,
                                    connectionstyle=f"arc3,rad={rad}"))
        (x0, y0), (x1, y1) = pos[m.u], pos[m.v]
        # the arc's midpoint (a quadratic Bezier with control point mid + rad * (dy, -dx)): mid + rad / 2 * (dy, -dx)
        mx, my = (x0 + x1) / 2 + rad / 2 * (y1 - y0), (y0 + y1) / 2 - rad / 2 * (x1 - x0)
        ax.text(mx, my, f"t{m.round}", **label)
    for n, k in loops.items():  # one upright label per node above its loops: "t2,t3"
        rounds_here = ",".join(f"t{m.round}" for m in sorted(msgs, key=lambda m: m.round) if m.u == m.v == n)
        ax.text(pos[n][0], pos[n][1] + 2 * (0.09 + 0.04 * (k - 1)) + 0.13, rounds_here, **label)
    bar = ax.figure.colorbar(mpl.cm.ScalarMappable(cmap=cmap, norm=norm), ax=ax, label="round", fraction=0.04,
                             ticks=range(rounds))
    bar.ax.tick_params(labelsize=7)
    ax.set_axis_off()
    ax.set_aspect("equal")
    ax.margins(0.12)
    ax.set_title("over the graph (colour: round)", fontsize=9)
