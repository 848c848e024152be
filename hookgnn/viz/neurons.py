"""Neuron-level circuits: weight edges drawn between neurons, one column per hook point."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING

from hookgnn.viz._checks import finite
from hookgnn.viz._style import NEGATIVE, NEUTRAL, POSITIVE, add_caption, new_axes, sign_colour, width

if TYPE_CHECKING:
    from matplotlib.figure import Figure
    from matplotlib.axes import Axes

    from hookgnn.patching.components import WeightEdge

#: Colours of the groups of a joint circuit, in order of first appearance; "shared" is always black.
GROUP_COLOURS = ("#1b9e77", "#d95f02", "#7570b3", "#e7298a", "#66a61e")
SHARED = "shared"


def plot_neuron_circuit(
    edges: Iterable[WeightEdge],
    scores: Mapping[WeightEdge, float] | None = None,
    ax: Axes | None = None,
    links: Iterable[WeightEdge] = (),
    groups: Mapping[WeightEdge, str] | None = None,
    order: Sequence[str] | None = None,
    title: str | None = None,
    caption: str | None = None,
) -> Figure:
    """Neurons as dots in columns (one per hook point), circuit edges as lines between them.

    An edge's width is :math:`0.8 + 3.2\\,|s| / \\max |s|` for its score ``s`` (a weight or an
    attribution score). Its colour is its sign (red positive, blue negative, grey
    without scores), or, with ``groups``, its group: the edges labelled ``"shared"`` in
    black, each other group (e.g. one per task of a joint circuit) in its own colour, and
    the sign then as the line style (solid positive, dashed negative). ``links``
    (weightless connections such as an activation or an aggregation) are dotted grey.
    Each line's ``gid`` is ``"{src hook}[{feature}]->{dst hook}[{feature}]"``.

    >>> import matplotlib; matplotlib.use("Agg")
    >>> from hookgnn.patching.components import Component, WeightEdge
    >>> e = [WeightEdge(Component("a", None, 0), Component("b", None, 1), "w"),
    ...      WeightEdge(Component("b", None, 1), Component("c", None, 0), "w")]
    >>> fig = plot_neuron_circuit(e, {e[0]: 2.0, e[1]: -1.0})
    >>> [line.get_color() for line in fig.axes[0].lines]
    ['#b2182b', '#2166ac']

    :param edges: the circuit's weight edges.
    :param scores: a score per edge (every edge), for colour and width.
    :param ax: axes to draw into.
    :param links: weightless edges drawn dotted to show how the circuit's edges connect.
    :param groups: a group name per edge (every edge); ``"shared"`` for edges of several tasks.
    :param order: the hook points' column order (default: first appearance along ``edges`` then ``links``).
    :param title: the title.
    :param caption: a note printed under the figure.
    """
    from matplotlib.lines import Line2D

    edges, links = list(edges), list(links)
    for what, table in (("scores", scores), ("groups", groups)):
        missing = [e for e in edges if table is not None and e not in table]
        if missing:
            raise ValueError(f"{what} has no entry for {len(missing)} edge(s) of the circuit, e.g. {missing[0]}")
    score = dict(zip(edges, finite([scores[e] for e in edges], "edge scores"))) if scores is not None else {}
    hooks = list(dict.fromkeys(h for e in edges + links for h in (e.src.hook, e.dst.hook)))
    if order is not None:
        unknown = [h for h in hooks if h not in order]
        if unknown:
            raise ValueError(f"order does not list the hook point(s) {unknown} of the circuit")
        hooks = [h for h in order if h in hooks]
    col = {h: i for i, h in enumerate(hooks)}
    fig, ax = new_axes(ax, (max(6.0, 0.5 * len(hooks) + 2), 4.0))
    top = max((abs(s) for s in score.values()), default=0.0)
    names = list(dict.fromkeys(g for g in (groups or {}).values() if g != SHARED))
    palette = {g: GROUP_COLOURS[i % len(GROUP_COLOURS)] for i, g in enumerate(names)} | {SHARED: "k"}
    for e in links:
        ax.plot([col[e.src.hook], col[e.dst.hook]], [e.src.feature, e.dst.feature], color="0.6", lw=0.8, ls=":",
                gid=f"link:{e.src.hook}[{e.src.feature}]->{e.dst.hook}[{e.dst.feature}]")
    for e in edges:
        s = score.get(e)
        colour = palette[groups[e]] if groups is not None else sign_colour(s)
        style = "--" if groups is not None and s is not None and s < 0 else "-"
        ax.plot([col[e.src.hook], col[e.dst.hook]], [e.src.feature, e.dst.feature], color=colour, ls=style,
                lw=width(s, top), alpha=0.85, gid=f"{e.src.hook}[{e.src.feature}]->{e.dst.hook}[{e.dst.feature}]")
    neurons = sorted({(c.hook, c.feature) for e in edges + links for c in (e.src, e.dst)},
                     key=lambda n: (col[n[0]], n[1]))
    ax.scatter([col[h] for h, _ in neurons], [f for _, f in neurons], color="k", s=14, zorder=3)
    ax.set_xticks(range(len(hooks)))
    ax.set_xticklabels(hooks, rotation=60, ha="right", fontsize=6)
    ax.set_ylabel("neuron (feature)")
    handles = []
    if groups is not None:
        handles += [Line2D([], [], color=palette[g], lw=2.5, label=f"{g} only") for g in names]
        if SHARED in groups.values():
            handles.append(Line2D([], [], color="k", lw=2.5, label="shared"))
        if scores is not None:
            handles.append(Line2D([], [], color="0.3", ls="--", lw=1.5, label="score < 0"))
    elif scores is not None:
        handles += [Line2D([], [], color=POSITIVE, lw=2.5, label="score > 0"),
                    Line2D([], [], color=NEGATIVE, lw=2.5, label="score < 0")]
    else:
        handles.append(Line2D([], [], color=NEUTRAL, lw=2.5, label="weight edge"))
    if links:
        handles.append(Line2D([], [], color="0.6", lw=0.8, ls=":", label="weightless link"))
    ax.legend(handles=handles, fontsize=7, loc="upper left", bbox_to_anchor=(1.0, 1.0), frameon=False)
    ax.set_title(title or f"neuron circuit: {len(edges)} edges, {len(neurons)} neurons (width: |score|)", fontsize=9)
    add_caption(fig, caption)
    fig.tight_layout()
    return fig
