"""Where a metamer search starts: noise, the reference permuted, or another graph.

* ``"noise"``: the reference with everything that is optimised drawn at random (node and
  edge feature blocks from their constraint's :meth:`noise`, the edge set at random among
  the candidates); what is not optimised stays the reference's.
* ``"permuted"``: the reference with its nodes relabelled by a random permutation
  (:func:`permute`), one per metamer; it is isomorphic to the reference, yet node ``i``
  is compared with reference node ``i``.
* a :class:`~hookgnn.graph.Graph`: one graph (used for every metamer) or a batch of
  ``num`` graphs, each with the reference's number of nodes and feature widths.

Whatever is not optimised keeps the start's values.
"""

from __future__ import annotations

from typing import Literal, Union

import torch
from jaxtyping import Int
from torch import Tensor

from hookgnn.graph import Graph
from hookgnn.metamers.constraints import Constraint

Start = Union[Literal["noise", "permuted"], Graph]


def permute(graph: Graph, perm: Int[Tensor, " node"]) -> Graph:
    """The graph with node ``i`` taken from node ``perm[i]``; edges keep their order.

    Edge ``e = (u, v)`` becomes ``(inv[u], inv[v])`` with ``inv`` the inverse permutation,
    so edge features and edge-axis activations stay row for row.

    >>> g = Graph(x=torch.tensor([[0.], [1.], [2.]]), edge_index=torch.tensor([[0], [2]]))
    >>> p = permute(g, torch.tensor([2, 0, 1]))
    >>> p.x.flatten().tolist(), p.edge_index.tolist()
    ([2.0, 0.0, 1.0], [[1], [0]])
    """
    if graph.num_graphs != 1:
        raise ValueError(f"permute takes a single graph, got a batch of {graph.num_graphs}")
    n = graph.num_nodes
    perm = torch.as_tensor(perm, dtype=torch.long, device=graph.device)
    if perm.shape != (n,) or not bool((perm.sort().values == torch.arange(n, device=perm.device)).all()):
        raise ValueError(f"perm must be a permutation of range({n}), got {perm.tolist()}")
    inv = torch.empty_like(perm)
    inv[perm] = torch.arange(n, device=perm.device)
    return Graph(x=graph.x[perm], edge_index=inv[graph.edge_index], edge_attr=graph.edge_attr,
                 graph_attr=graph.graph_attr)


def _check_like(reference: Graph, g: Graph, i: int) -> None:
    if g.num_nodes != reference.num_nodes:
        raise ValueError(f"start graph {i} has {g.num_nodes} nodes but the reference has {reference.num_nodes}; "
                         "metamer nodes are compared with reference nodes one to one")
    for attr in ("x", "edge_attr", "graph_attr"):
        a, b = getattr(reference, attr), getattr(g, attr)
        if (a is None) != (b is None) or (a is not None and a.shape[1] != b.shape[1]):
            want = None if a is None else a.shape[1]
            got = None if b is None else b.shape[1]
            raise ValueError(f"start graph {i} has {attr} with {got} columns, the reference {want}")


def start_graphs(
    reference: Graph,
    start: Start,
    num: int,
    generator: torch.Generator,
    node_blocks: list[tuple[Constraint, int, int]],
    edge_blocks: list[tuple[Constraint, int, int]],
    fixed_nodes: Tensor,
) -> Graph:
    """The ``num`` start graphs as one batch (edge sets for a structure search are drawn
    by the caller; here a noise start keeps the reference's edges).

    >>> from hookgnn.metamers.constraints import Box
    >>> ref = Graph(x=torch.ones(3, 1), edge_index=torch.tensor([[0], [1]]))
    >>> s = start_graphs(ref, "noise", 2, torch.Generator().manual_seed(0), [(Box(0, 0.5), 0, 1)], [],
    ...                  torch.tensor([], dtype=torch.long))
    >>> s.num_graphs, bool((s.x <= 0.5).all())
    (2, True)
    """
    if isinstance(start, Graph):
        parts = start.split()
        if len(parts) not in (1, num):
            raise ValueError(f"a start batch must hold 1 or num={num} graphs, got {len(parts)}")
        for i, g in enumerate(parts):
            _check_like(reference, g, i)
        parts = [Graph(x=g.x, edge_index=g.edge_index, edge_attr=g.edge_attr, graph_attr=g.graph_attr)
                 for g in (parts * num if len(parts) == 1 else parts)]
        return Graph.collate(parts)
    if start == "permuted":
        n = reference.num_nodes
        perms = [torch.randperm(n, generator=generator).to(reference.device) for _ in range(num)]
        return Graph.collate([permute(reference, p) for p in perms])
    if start != "noise":
        raise ValueError(f"start must be 'noise', 'permuted' or a Graph, got {start!r}")
    base = Graph(x=reference.x, edge_index=reference.edge_index, edge_attr=reference.edge_attr,
                 graph_attr=reference.graph_attr)
    batch = Graph.collate([base] * num)
    x = batch.x.clone()
    free = torch.ones(batch.num_nodes, dtype=torch.bool, device=x.device)
    if fixed_nodes.numel():
        free.view(num, -1)[:, fixed_nodes] = False
    for c, a, b in node_blocks:
        drawn = c.noise(batch.x[:, a:b], batch.batch, num, generator)
        x[:, a:b] = torch.where(free.unsqueeze(1), drawn, x[:, a:b])
    edge_attr = batch.edge_attr
    if edge_blocks and edge_attr is not None:
        edge_attr = edge_attr.clone()
        for c, a, b in edge_blocks:
            edge_attr[:, a:b] = c.noise(batch.edge_attr[:, a:b], batch.edge_batch, num, generator)
    return batch.replace(x=x, edge_attr=edge_attr)
