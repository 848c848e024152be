"""Per-graph metrics of numbered pointers: edge pointers (an edge points to a node:
Floyd-Warshall's ``Pi``) and node pointers to any node (``any_node``: topological sort's
``topo``, Kosaraju's ``scc_id``, Kruskal's ``pi``).

An edge pointer output is ``[E, K]`` logits, row ``e`` over the nodes of edge ``e``'s graph
(:func:`~hookgnn.spec.edge_pointer_slots`); its target ``[E]`` holds in-graph node numbers.
With ``location="node"`` the items are nodes: logits ``[N, K]``, target ``[N]``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
from jaxtyping import Float
from torch import Tensor

from hookgnn.graph import Graph
from hookgnn.metrics.per_graph import _target, per_graph_mean
from hookgnn.spec import check_edge_pointer_target


def _rows(metric: object, name: str, raw: Tensor, graph: Graph, location: Literal["node", "edge"]) -> Tensor:
    if location not in ("node", "edge"):
        raise ValueError(f"{type(metric).__name__}: location must be 'node' or 'edge', got {location!r}")
    items = graph.count(location)
    if raw.dim() != 2 or raw.shape[0] != items:
        letter, kind = ("E", "an edge") if location == "edge" else ("N", "a node")
        raise ValueError(f"{type(metric).__name__}: output {name!r} has shape {tuple(raw.shape)}, but {kind} "
                         f"pointer output is [{letter}, K] logits with {letter} = {items} (the {location}s of the "
                         "batch)")
    return raw


def _numbered(metric: object, name: str, target: str | Tensor, graph: Graph, location: Literal["node", "edge"]
              ) -> Tensor:
    return check_edge_pointer_target(name, _target(target, graph, graph.count(location)), graph, location)


@dataclass(frozen=True)
class EdgePointerLogProb:
    """Mean over edges of the log-probability of the target node, per graph.

    .. math:: m_g = \\frac{1}{|E_g|} \\sum_{e \\in E_g} \\log \\mathrm{softmax}(p_e)_{y_e}

    Differentiable. ``target`` is a field name or an ``[E]`` tensor of in-graph node numbers
    (a copy for one graph is tiled over a batch of copies).

    >>> g = Graph(x=torch.zeros(2, 1), edge_index=torch.tensor([[0, 1], [1, 0]]))
    >>> m = EdgePointerLogProb(target=torch.tensor([0, 1]))
    >>> round(float(m({"Pi": torch.tensor([[0.0, 0.0], [0.0, 9.0]])}, g)), 4)  # (log 1/2 + log ~1) / 2
    -0.3466

    :param name: the numbered-pointer output (logits ``[E, K]``, or ``[N, K]`` with ``location="node"``).
    :param target: the target: a field name or a tensor of in-graph node numbers, one per item.
    :param location: ``"edge"`` (edge pointers) or ``"node"`` (node pointers with ``any_node``).
    """

    name: str = "Pi"
    target: str | Tensor = "Pi"
    location: Literal["node", "edge"] = "edge"

    def __call__(self, out: object, graph: Graph) -> Float[Tensor, " graph"]:
        raw = _rows(self, self.name, out[self.name], graph, self.location)  # type: ignore[index]
        y = _numbered(self, self.name, self.target, graph, self.location)
        logp = torch.log_softmax(raw, dim=-1).gather(1, y.unsqueeze(1)).squeeze(1)
        return per_graph_mean(logp, graph.owner(self.location), torch.ones_like(logp), graph.num_graphs)


@dataclass(frozen=True)
class EdgePointerAccuracy:
    """Fraction of edges whose highest-scoring node (lowest on ties) is the target, per graph.

    >>> g = Graph(x=torch.zeros(2, 1), edge_index=torch.tensor([[0, 1], [1, 0]]))
    >>> EdgePointerAccuracy(target=torch.tensor([0, 0]))({"Pi": torch.tensor([[1.0, 0.0], [0.0, 9.0]])}, g).tolist()
    [0.5]

    :param name: the numbered-pointer output (logits ``[E, K]``, or ``[N, K]`` with ``location="node"``).
    :param target: the target: a field name or a tensor of in-graph node numbers, one per item.
    :param location: ``"edge"`` (edge pointers) or ``"node"`` (node pointers with ``any_node``).
    """

    name: str = "Pi"
    target: str | Tensor = "Pi"
    location: Literal["node", "edge"] = "edge"

    def __call__(self, out: object, graph: Graph) -> Float[Tensor, " graph"]:
        raw = _rows(self, self.name, out[self.name], graph, self.location)  # type: ignore[index]
        y = _numbered(self, self.name, self.target, graph, self.location)
        right = (raw.detach().argmax(-1) == y).float()
        return per_graph_mean(right, graph.owner(self.location), torch.ones_like(right), graph.num_graphs)
