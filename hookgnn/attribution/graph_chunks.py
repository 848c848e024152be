"""Cutting a batch into runs of consecutive graphs and stacking a graph's IG copies, for
:mod:`hookgnn.attribution.edge_sums`.

A chunk of graphs ``lo .. hi`` is cut from a batch without splitting it into single graphs
(:class:`_Ranges`); its ``K`` interpolated copies are stacked as ``Graph.collate([g] * K)``
would stack them, but with one tensor operation per feature or field instead of one per copy
(:func:`_copies`), and the clean graph's fields that a metric reads are tiled onto the same
structure once per forward (:func:`_with_fields_of`), where
:func:`~hookgnn.metrics.targets.with_clean_fields` would check the structure and tile them again
at every call of the metric.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import Tensor

from hookgnn.attribution.interpolate import interpolate
from hookgnn.graph import Field, Graph
from hookgnn.metrics.per_graph import Metric
from hookgnn.metrics.targets import CleanTargets, LazyFields, clean_targets, tiled_fields

#: Hook axes whose rows of graphs ``lo .. hi`` are one contiguous block of a cut (:meth:`_Ranges.rows`).
SLICEABLE = ("node", "edge", "graph")


def _chunks(base: Graph, budget: int, copies: int) -> list[tuple[int, int]]:
    """Ranges of consecutive graphs whose ``copies`` copies hold about ``budget`` rows (at least one graph)."""
    n_edges = torch.bincount(base.edge_batch, minlength=base.num_graphs)
    sizes = (base.ptr.diff() + n_edges).tolist()
    out, start, total = [], 0, 0
    for i, s in enumerate(sizes):
        if i > start and (total + s) * copies > budget:
            out.append((start, i))
            start, total = i, 0
        total += s
    out.append((start, len(sizes)))
    return out


class _Ranges:
    """Consecutive graphs ``lo .. hi`` of a batch as one batch, cut without copying the rest
    (what ``Graph.collate(batch.split()[lo:hi])`` gives, without a ``Graph`` per graph)."""

    def __init__(self, g: Graph) -> None:
        self.g = g
        counts = torch.bincount(g.edge_batch, minlength=g.num_graphs)
        self.order = torch.argsort(g.edge_batch, stable=True)
        self.edge_ptr = torch.cat([counts.new_zeros(1), counts.cumsum(0)]).tolist()
        self.ptr = g.ptr.tolist()

    def edges(self, lo: int, hi: int) -> Tensor:
        """The positions in the batch of the edges of graphs ``lo .. hi``, in the order of the cut."""
        return self.order[self.edge_ptr[lo]:self.edge_ptr[hi]]

    def rows(self, axis: str, lo: int, hi: int) -> slice:
        """The rows of graphs ``lo .. hi`` in an activation on ``axis`` (one of :data:`SLICEABLE`) of a
        forward of this batch; edge rows are one block only where the batch's edges are in graph
        order (as in a cut)."""
        ptr = {"node": self.ptr, "edge": self.edge_ptr}.get(axis)
        return slice(lo, hi) if ptr is None else slice(ptr[lo], ptr[hi])

    def cut(self, lo: int, hi: int) -> Graph:
        g, n0, n1 = self.g, self.ptr[lo], self.ptr[hi]
        idx = self.edges(lo, hi)
        spans = {"node": (n0, n1), "graph": (lo, hi)}

        def part(name: str) -> Callable[[], Field]:
            def make() -> Field:
                f = g.fields[name]  # read only now: ``g.fields`` may be lazy itself
                if f.location == "edge":
                    return Field(f.value.index_select(f.item_dim, idx), f.location, f.time)
                a, b = spans[f.location]
                return Field(f.value.narrow(f.item_dim, a, b - a), f.location, f.time)
            return make

        out = object.__new__(Graph)  # rows of a valid batch, offsets kept inside each graph: valid
        out.x = g.x[n0:n1]
        out.edge_index = g.edge_index[:, idx] - n0
        out.edge_attr = None if g.edge_attr is None else g.edge_attr[idx]
        out.graph_attr = None if g.graph_attr is None else g.graph_attr[lo:hi]
        out.ptr = g.ptr[lo:hi + 1] - n0
        out.batch = g.batch[n0:n1] - lo
        out.fields = LazyFields({k: part(k) for k in g.fields})  # cut when read
        out.meta = dict(g.meta)
        return out


def _copies(base: Graph, src: Graph, alphas: Sequence[float], fields: Sequence[str]) -> Graph:
    """The ``len(alphas)`` interpolated copies of ``base`` (towards ``src``) in one disjoint union,
    entry for entry ``Graph.collate([interpolate(base, src, a, fields) for a in alphas])``."""
    if fields or len(alphas) == 1:
        parts = [interpolate(base, src, a, fields) for a in alphas]
        return parts[0] if len(parts) == 1 else Graph.collate(parts)
    k = len(alphas)

    def lerp(a: Tensor | None, b: Tensor | None) -> Tensor | None:
        if a is None or b is None:
            return None
        w = torch.tensor(alphas, dtype=a.dtype, device=a.device).reshape(-1, *([1] * a.dim()))
        out = (a + w * (b - a)).reshape(-1, *a.shape[1:])
        if not bool(torch.isfinite(out).all()):
            raise ValueError("an interpolated input is not finite (base and source features too large?)")
        return out

    shift = torch.arange(k, device=base.device)
    union = object.__new__(Graph)  # k copies of a valid graph, each offset past the last: valid
    union.x = lerp(base.x, src.x)
    union.edge_attr = lerp(base.edge_attr, src.edge_attr)
    union.graph_attr = lerp(base.graph_attr, src.graph_attr)
    union.edge_index = (base.edge_index.unsqueeze(1) + (shift * base.num_nodes).view(1, k, 1)).reshape(2, -1)
    union.ptr = torch.cat([base.ptr[:1], (base.ptr[1:] + (shift * base.num_nodes).view(k, 1)).flatten()])
    union.batch = (base.batch + (shift * base.num_graphs).view(k, 1)).flatten()
    union.fields = tiled_fields(base, k, base.device)
    union.meta = dict(base.meta)
    return union


class _ReadsFieldsOf:
    """A metric called on a graph of fixed structure, reading its fields from ``graph`` (the
    run's structure with the clean graph's fields already tiled, :func:`_with_fields_of`)."""

    def __init__(self, metric: Metric, graph: Graph) -> None:
        self.metric, self.graph = metric, graph

    def __call__(self, out: object, graph: Graph) -> Tensor:
        if graph.num_nodes != self.graph.num_nodes or graph.num_edges != self.graph.num_edges:
            raise ValueError(f"the metric was set up for a run of {self.graph.num_nodes} nodes and "
                             f"{self.graph.num_edges} edges, but got {graph.num_nodes} and {graph.num_edges}")
        return self.metric(out, self.graph)


def _with_fields_of(metric: Metric, run: Graph, clean: Graph, k: int) -> Metric:
    """``clean_targets(metric, clean)`` for a ``run`` known to be ``k`` copies of ``clean``'s structure
    (built here, by :func:`_copies`): the clean fields are tiled once, not checked and tiled at every call."""
    if run is clean:
        return clean_targets(metric, clean)
    inner = metric.metric if isinstance(metric, CleanTargets) else metric
    graph = object.__new__(Graph)
    graph.__dict__.update(run.__dict__)
    graph.fields = tiled_fields(clean, k, run.device)
    return _ReadsFieldsOf(inner, graph)
