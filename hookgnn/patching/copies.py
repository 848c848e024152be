"""Copies of a graph in one disjoint union: the engine of every batched patch and gradient.

Exact patching runs one patched copy of the base graph per component, EAP-IG one interpolated
copy per step, AtP*'s exact tail one copy per candidate. All of them put ``k`` graphs of the
same structure into one batch (``Graph.collate``), run one forward (and backward), and read the
metric back per copy,

.. math:: m_j = \\frac{1}{G} \\sum_{g=1}^{G} m(\\text{out}, \\text{batch})_{jG + g}, \\qquad j = 0 .. k-1,

for base graphs of :math:`G` graphs each (the metric's per-graph values come copy by copy), and
an activation of a hook whose axis follows the graphs (:data:`COPY_AXES`) per copy as
``[k, rows, ...]``. A hook on another axis (``"none"``: e.g. a layer's own edge list with added
self-loops, appended after *every* copy's edges) forces one copy per forward
(:func:`copies_per_forward`), where its rows are its own.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any, TypeVar

from torch import Tensor

from hookgnn.graph import Graph
from hookgnn.hooks import Axis, HookedRootModule, NameFilter
from hookgnn.metrics.per_graph import Metric

#: What :func:`chunks` cuts: a list (patches, interpolation points) or a 1-D tensor (candidates).
S = TypeVar("S", Sequence[Any], Tensor)

#: Axes whose rows follow the graphs of a batch: in ``Graph.collate([g] * k)`` copy ``j``'s
#: rows are block ``j`` of ``k`` equal blocks (triplets too: :func:`~hookgnn.nn.triplet_index`
#: orders them graph by graph).
COPY_AXES: tuple[Axis, ...] = ("node", "edge", "graph", "triplet")


def copies_per_forward(model: HookedRootModule, hooks: NameFilter, copies: int) -> int:
    """How many copies of a graph one batched forward may hold when it patches or reads the
    activations of ``hooks`` (a name filter: ``None`` is every hook point) copy by copy.

    ``copies`` when every such hook's axis is in :data:`COPY_AXES`, else 1: a hook whose rows
    do not follow the copies (axis ``"none"``, e.g. a layer's own edge list with added
    self-loops) is exact only with one copy per forward, where its rows are its own.

    >>> from hookgnn import HookedGNN
    >>> copies_per_forward(HookedGNN("mpnn", 4, node_in=1, max_steps=2), ["layers.1.hook_src"], 64)
    64
    """
    if copies < 1:
        raise ValueError(f"copies must be >= 1, got {copies}")
    points = model.hook_points(hooks)
    return copies if all(p.axis in COPY_AXES for p in points) else 1


def chunks(items: S, size: int) -> Iterator[tuple[int, S]]:
    """``(start, items[start:start + size])`` for ``start = 0, size, 2 size, ...``: the copies
    of one forward each (``size`` from :func:`copies_per_forward`).

    >>> [(s, list(p)) for s, p in chunks("abcde", 2)]
    [(0, ['a', 'b']), (2, ['c', 'd']), (4, ['e'])]
    """
    if size < 1:
        raise ValueError(f"a chunk holds at least one copy, got size {size}")
    for start in range(0, len(items), size):
        yield start, items[start:start + size]


def disjoint_union(graphs: Sequence[Graph]) -> Graph:
    """The batch of one forward over ``graphs`` (copies of one structure): the graph itself
    for one, else ``Graph.collate`` (copy ``j``'s graphs, nodes and edges are block ``j``).

    >>> import torch
    >>> g = Graph(x=torch.zeros(3, 1), edge_index=torch.tensor([[0, 1], [1, 2]]))
    >>> disjoint_union([g]) is g, disjoint_union([g, g]).num_graphs
    (True, 2)
    """
    if not graphs:
        raise ValueError("no graphs to put into a batch")
    return graphs[0] if len(graphs) == 1 else Graph.collate(list(graphs))


def copy_means(per_graph: Tensor, k: int) -> Tensor:
    """``[k]``: the mean of each copy's block of a per-graph tensor (``per_graph.reshape(k, -1).mean(1)``).

    >>> import torch
    >>> copy_means(torch.tensor([1., 3., 5., 7.]), 2).tolist()
    [2.0, 6.0]
    """
    if per_graph.shape[0] % k:
        raise ValueError(f"a metric of {per_graph.shape[0]} graphs is not {k} copies of one batch's graphs")
    return per_graph.reshape(k, -1).mean(1)


def metric_per_copy(metric: Metric, out: Any, batch: Graph, k: int) -> Tensor:
    """``[k]``: the metric of each of the ``k`` copies in ``batch``, the mean over its graphs
    (``metric(out, batch).reshape(k, -1).mean(1)``; differentiable).

    >>> import torch
    >>> g = Graph(x=torch.zeros(1, 1), edge_index=torch.zeros(2, 0, dtype=torch.long))
    >>> per_graph = lambda out, batch: out  # one value per graph: 2 copies of 2 graphs
    >>> metric_per_copy(per_graph, torch.tensor([1., 3., 5., 7.]), Graph.collate([g] * 4), 2).tolist()
    [2.0, 6.0]
    """
    return copy_means(metric(out, batch), k)


def per_copy(t: Tensor, k: int) -> Tensor:
    """``t`` (rows of ``k`` copies, axis in :data:`COPY_AXES`) as ``[k, rows, ...]`` (a view).

    >>> import torch
    >>> per_copy(torch.arange(6.).reshape(6, 1), 3)[:, :, 0].tolist()
    [[0.0, 1.0], [2.0, 3.0], [4.0, 5.0]]
    """
    if t.shape[0] % k:
        raise ValueError(f"an activation of {t.shape[0]} rows is not {k} copies of one graph's rows")
    return t.reshape(k, t.shape[0] // k, *t.shape[1:])  # not -1: an activation may have no rows
