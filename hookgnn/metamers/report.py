"""Invariance report: models side by side on the same references, one table, one figure.

For every model, every *search* (a named set of :func:`~hookgnn.metamers.metamer`
arguments, e.g. "weights in a box" or "edge set with fixed size") and every reference,
``num`` metamers are searched at the same hooks and tolerance, and each is measured
against its reference:

==================  =============================================================
``converged``       :math:`\\max_k D_k \\le` tol (activation distance, hooks only)
``distance``        :math:`\\max_k D_k` of the returned graph
``x_dist``          :func:`~hookgnn.metamers.metrics.feature_distance` of ``x``
``edge_dist``       the same for ``edge_attr`` (NaN when the edge sets differ)
``jaccard``         :func:`~hookgnn.metamers.metrics.edge_jaccard` (1: same edges)
``ged``             :func:`~hookgnn.metamers.metrics.graph_edit_distance` (NaN above 7 nodes)
==================  =============================================================

and, once per model and reference, the linearised invariance at the reference:
``node_null`` (mean over nodes of the local metamer dimension of the node features,
divided by their width) and ``edge_null`` (metamer dimension of all edge features
divided by their number): the fraction of input directions the hooks do not see.
A more invariant model has larger distances at the same tolerance and larger null
fractions.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

import torch

from hookgnn.graph import Graph
from hookgnn.hooks import HookedRootModule
from hookgnn.metamers.activations import hook_names
from hookgnn.metamers.metrics import (edge_jaccard, feature_distance, graph_edit_distance, local_metamer_dimension,
                                      metamer_space)
from hookgnn.metamers.optimize import metamer

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

Search = Callable[[Graph], Mapping[str, Any]]
COLUMNS = ("converged", "distance", "x_dist", "edge_dist", "jaccard", "ged", "node_null", "edge_null")


@dataclass
class Row:
    """One metamer of one reference for one model and search (see the module doc)."""

    model: str
    search: str
    reference: int
    converged: bool
    steps: int
    distance: float
    x_dist: float
    edge_dist: float
    jaccard: float
    ged: float
    node_null: float
    edge_null: float


@dataclass
class InvarianceReport:
    """The rows of a comparison, the metamers themselves and the hooks compared."""

    rows: list[Row]
    metamers: dict[tuple[str, str, int], Graph] = field(default_factory=dict)
    references: list[Graph] = field(default_factory=list)
    hooks: dict[str, list[str]] = field(default_factory=dict)
    tol: float = 0.0

    def summary(self) -> list[dict[str, Any]]:
        """Per (model, search): the fraction converged and the median of every other column
        over the converged metamers (over all of them when none converged; NaN skipped)."""
        out = []
        keys = list(dict.fromkeys((r.model, r.search) for r in self.rows))
        for model, search in keys:
            rows = [r for r in self.rows if r.model == model and r.search == search]
            ok = [r for r in rows if r.converged] or rows
            entry: dict[str, Any] = {"model": model, "search": search, "n": len(rows),
                                     "converged": sum(r.converged for r in rows) / len(rows)}
            for col in COLUMNS[1:]:
                vals = [getattr(r, col) for r in ok if not math.isnan(getattr(r, col))]
                entry[col] = statistics.median(vals) if vals else math.nan
            entry["steps"] = statistics.median([r.steps for r in ok])
            out.append(entry)
        return out

    def table(self) -> str:
        """The summary as a text table (medians over converged metamers).

        >>> rep = InvarianceReport([Row("relu", "w", 0, True, 10, 5e-4, 0.0, 0.3, 1.0, 0.0, 0.0, 0.5)])
        >>> print(rep.table().splitlines()[0])
        model  search  conv  steps  distance  x_dist  edge_dist  jaccard    ged  node_null  edge_null
        """
        head = ["model", "search", "conv", "steps", *COLUMNS[1:]]
        lines = [[e["model"], e["search"], f"{e['converged']:.2f}", f"{e['steps']:.0f}",
                  *(_fmt(e[c]) for c in COLUMNS[1:])] for e in self.summary()]
        widths = [max(len(h), *(len(row[i]) for row in lines)) for i, h in enumerate(head)]
        fmt = lambda cells: "  ".join(c.ljust(w) if i < 2 else c.rjust(w)  # noqa: E731
                                      for i, (c, w) in enumerate(zip(cells, widths))).rstrip()
        return "\n".join([fmt(head)] + [fmt(row) for row in lines])

    def to_dict(self) -> dict[str, Any]:
        """Rows and summary as plain data (for JSON)."""
        return {"tol": self.tol, "hooks": self.hooks, "rows": [asdict(r) for r in self.rows],
                "summary": self.summary()}

    def figure(self, search: str, reference: int = 0) -> Figure:
        """Reference and one metamer side by side, one row per model (see :func:`plot_pair`)."""
        import matplotlib.pyplot as plt

        models = list(dict.fromkeys(r.model for r in self.rows if r.search == search))
        fig, axes = plt.subplots(len(models), 2, figsize=(7.0, 3.2 * len(models)), squeeze=False)
        for (left, right), name in zip(axes, models):
            row = next(r for r in self.rows if (r.model, r.search, r.reference) == (name, search, reference))
            plot_pair(self.references[reference], self.metamers[(name, search, reference)], row, (left, right))
            left.set_ylabel(name)
        fig.suptitle(f"{search} metamers of reference {reference}\ngrey: shared edges, red dashed: only in the "
                     "reference, green: only in the metamer; width: weight; colour: x[:, 0]", fontsize=8)
        fig.tight_layout(rect=(0, 0, 1, 1 - 0.5 / (3.2 * len(models))))
        return fig


def _fmt(v: float) -> str:
    if math.isnan(v):
        return "-"
    return f"{v:.2e}" if 0 < abs(v) < 1e-2 else f"{v:.3f}"


def invariance_report(
    models: Mapping[str, HookedRootModule],
    references: Sequence[Graph],
    hooks: str | Sequence[str] | Callable[[HookedRootModule], str | Sequence[str]],
    searches: Mapping[str, Search],
    *,
    num: int = 2,
    tol: float = 1e-3,
    max_steps: int = 1000,
    restarts: int = 2,
    seed: int = 0,
    forward: Callable[[HookedRootModule, Graph], Any] | None = None,
) -> InvarianceReport:
    """Search ``num`` metamers per model, search and reference, and measure them.

    ``hooks`` are names, or a function of the model giving them
    (``lambda m: f"layers.{m.max_steps - 1}.hook_update"``: models of different depth);
    ``searches[name](reference)`` gives the :func:`metamer` arguments of that search;
    ``forward(model, graph)`` runs a model (default ``model(graph)``).

    >>> from hookgnn import HookedGNN
    >>> from hookgnn.metamers import Box
    >>> _ = torch.manual_seed(0)
    >>> g = Graph(x=torch.randn(3, 1), edge_index=torch.tensor([[0, 1], [1, 2]]), edge_attr=torch.rand(2, 1))
    >>> models = {"a": HookedGNN("mpnn", 4, 1, 1, max_steps=1), "b": HookedGNN("minagg", 4, 1, 1, max_steps=1)}
    >>> rep = invariance_report(models, [g], "layers.0.hook_update",
    ...                         {"weights": lambda ref: {"features": None, "edge_features": Box()}}, num=1)
    >>> [e["model"] for e in rep.summary()]
    ['a', 'b']
    """
    if not models or not references or not searches:
        raise ValueError("invariance_report needs at least one model, one reference and one search")
    rep = InvarianceReport([], references=list(references), tol=tol)
    for name, model in models.items():
        names = hooks(model) if callable(hooks) else hooks
        fwd = None if forward is None else (lambda g, m=model: forward(m, g))
        rep.hooks[name] = hook_names(model, names)
        for i, ref in enumerate(references):
            node_null, edge_null = _null_fractions(model, ref, rep.hooks[name], fwd)
            for search, make in searches.items():
                res = metamer(model, ref, rep.hooks[name], num=num, tol=tol, max_steps=max_steps, seed=seed + i,
                              restarts=restarts, forward=fwd, **dict(make(ref)))
                best = int(res.distance.argmin())
                rep.metamers[(name, search, i)] = res.graph(best)
                jac = edge_jaccard(ref, res.graphs)
                ged = graph_edit_distance(ref, res.graphs)
                for j in range(num):
                    same = bool(jac[j] == 1.0) and res.graph(j).num_edges == ref.num_edges
                    edge = (float(feature_distance(ref, res.graph(j), inputs="edge_attr")[0])
                            if same and ref.edge_attr is not None and bool(ref.edge_attr.norm() > 0) else math.nan)
                    x = float(feature_distance(ref, res.graph(j))[0]) if bool(ref.x.norm() > 0) else math.nan
                    rep.rows.append(Row(name, search, i, bool(res.converged[j]), int(res.steps[j]),
                                        float(res.distance[j]), x, edge, float(jac[j]), float(ged[j]),
                                        node_null, edge_null))
    return rep


def _null_fractions(model: HookedRootModule, ref: Graph, hooks: list[str],
                    forward: Callable[[Graph], Any] | None) -> tuple[float, float]:
    """Mean local metamer dimension of node features / width, and of all edge features / count,
    at the first hook (rtol 1e-5)."""
    hook = hooks[0]
    width = ref.x.shape[1]
    node = (statistics.mean(local_metamer_dimension(model, ref, hook, v, forward=forward) for v in range(ref.num_nodes))
            / width if width else math.nan)
    if ref.edge_attr is None or ref.num_edges == 0 or ref.edge_attr.shape[1] == 0:
        return node, math.nan
    space = metamer_space(model, ref, hook, inputs="edge_attr", forward=forward)
    return node, space.dimension / (ref.num_edges * ref.edge_attr.shape[1])


def plot_pair(reference: Graph, other: Graph, row: Row | None = None,
              axes: tuple[Axes, Axes] | None = None, seed: int = 0) -> Figure:
    """Reference (left) and metamer (right) on the same node positions (a circle up to 40 nodes).

    Edges in both graphs are grey, edges only in the reference red dashed (left), edges
    only in the metamer green (right); with one edge feature, line width grows with it.
    Node colour is the first node feature. Self-loops are not drawn. The right title
    carries the activation distance and the structure and feature distances of ``row``.
    """
    import matplotlib.pyplot as plt
    import networkx as nx

    if axes is None:
        fig, (left, right) = plt.subplots(1, 2, figsize=(7.0, 3.2))
    else:
        left, right = axes
        fig = left.figure  # type: ignore[assignment]
    n = reference.num_nodes
    a = {(u, v): i for i, (u, v) in enumerate(reference.edge_index.t().tolist()) if u != v}
    b = {(u, v): i for i, (u, v) in enumerate(other.edge_index.t().tolist()) if u != v}
    g = nx.Graph()
    g.add_nodes_from(range(n))
    g.add_edges_from(list(a) + list(b))
    # the same positions on both sides; a circle keeps every node (isolated ones too) in view
    pos = nx.circular_layout(g) if n <= 40 else nx.spring_layout(g, seed=seed)

    def draw(ax: Axes, graph: Graph, mine: dict, theirs: dict, colour: str, style: str) -> None:
        weights = graph.edge_attr[:, 0].tolist() if graph.edge_attr is not None and graph.edge_attr.shape[1] else None
        for (u, v), i in mine.items():
            w = 0.5 + 2.5 * max(0.0, weights[i]) if weights else 1.5
            shared = (u, v) in theirs
            ax.annotate("", xy=pos[v], xytext=pos[u], arrowprops=dict(
                arrowstyle="-", color="#999999" if shared else colour, lw=w, linestyle="-" if shared else style,
                shrinkA=5, shrinkB=5))
        nx.draw_networkx_nodes(g, pos, ax=ax, node_size=90, node_color=graph.x[:, 0].tolist() if graph.x.shape[1]
                               else "#dddddd", cmap="viridis", edgecolors="k", linewidths=0.5)
        ax.set_xticks([])
        ax.set_yticks([])

    draw(left, reference, a, b, "C3", "--")
    draw(right, other, b, a, "C2", "-")
    left.set_title("reference", fontsize=9)
    if row is not None:
        parts = [f"D = {row.distance:.1e}", f"Jaccard {row.jaccard:.2f}"]
        if not math.isnan(row.edge_dist):
            parts.append(f"weights {row.edge_dist:.2f}")
        if not math.isnan(row.x_dist) and row.x_dist > 0:
            parts.append(f"x {row.x_dist:.2f}")
        right.set_title("metamer: " + ", ".join(parts), fontsize=8)
    else:
        right.set_title("metamer", fontsize=9)
    return fig
