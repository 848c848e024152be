"""Per-graph metrics of edge pointers (an edge points to a node: Floyd-Warshall's ``Pi``).

An edge pointer output is ``[E, K]`` logits, row ``e`` over the nodes of edge ``e``'s graph
(:func:`~hookgnn.spec.edge_pointer_slots`); its target ``[E]`` holds in-graph node numbers.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from jaxtyping import Float
from torch import Tensor

from hookgnn.graph import Graph
from hookgnn.metrics.per_graph import _target, per_graph_mean
from hookgnn.spec import check_edge_pointer_target


def _rows(metric: object, name: str, raw: Tensor, graph: Graph) -> Tensor:
    if raw.dim() != 2 or raw.shape[0] != graph.num_edges:
        raise ValueError(f"{type(metric).__name__}: output {name!r} has shape {tuple(raw.shape)}, but an edge pointer "
                         f"output is [E, K] logits with E = {graph.num_edges} (the edges of the batch)")
    return raw


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

    :param name: the edge-pointer output (logits ``[E, K]``).
    :param target: the target: a field name or an ``[E]`` tensor of in-graph node numbers.
    """

    name: str = "Pi"
    target: str | Tensor = "Pi"

    def __call__(self, out: object, graph: Graph) -> Float[Tensor, " graph"]:
        raw = _rows(self, self.name, out[self.name], graph)  # type: ignore[index]
        y = check_edge_pointer_target(self.name, _target(self.target, graph, graph.num_edges), graph)
        logp = torch.log_softmax(raw, dim=-1).gather(1, y.unsqueeze(1)).squeeze(1)
        return per_graph_mean(logp, graph.owner("edge"), torch.ones_like(logp), graph.num_graphs)


@dataclass(frozen=True)
class EdgePointerAccuracy:
    """Fraction of edges whose highest-scoring node (lowest on ties) is the target, per graph.

    >>> g = Graph(x=torch.zeros(2, 1), edge_index=torch.tensor([[0, 1], [1, 0]]))
    >>> EdgePointerAccuracy(target=torch.tensor([0, 0]))({"Pi": torch.tensor([[1.0, 0.0], [0.0, 9.0]])}, g).tolist()
    [0.5]

    :param name: the edge-pointer output (logits ``[E, K]``).
    :param target: the target: a field name or an ``[E]`` tensor of in-graph node numbers.
    """

    name: str = "Pi"
    target: str | Tensor = "Pi"

    def __call__(self, out: object, graph: Graph) -> Float[Tensor, " graph"]:
        raw = _rows(self, self.name, out[self.name], graph)  # type: ignore[index]
        y = check_edge_pointer_target(self.name, _target(self.target, graph, graph.num_edges), graph)
        right = (raw.detach().argmax(-1) == y).float()
        return per_graph_mean(right, graph.owner("edge"), torch.ones_like(right), graph.num_graphs)
