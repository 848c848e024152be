"""Metrics for patching neural algorithmic reasoners, computed per graph of a batch.

Every metric is a callable ``metric(output, graph) -> Tensor [num_graphs]``: one value
per graph of the (disjoint-union) batch. Batched patching runs ``k`` copies of a batch
in one forward and reads the ``k * G`` values back per copy; a scalar for gradients is
the mean (:func:`scalar`). Targets are a field name of the graph (tiled by
``Graph.collate`` automatically) or a tensor for one copy (tiled here when the batch
holds several copies).

Pointer outputs are logits per edge ``u -> v``; the distribution of node ``v`` is the
softmax over its incoming edges, and targets are 0/1 edge masks (:mod:`hookgnn.spec`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal, Protocol, runtime_checkable

import torch
from jaxtyping import Float
from torch import Tensor

from hookgnn.graph import Graph, Location
from hookgnn.ops import scatter, scatter_log_softmax
from hookgnn.spec import FeatureSpec
from hookgnn.training.metrics import item_correct

_POINTER = FeatureSpec("output", "node", "pointer")


@runtime_checkable
class Metric(Protocol):
    """``metric(output, graph)`` -> one value per graph of the batch."""

    def __call__(self, out: object, graph: Graph) -> Float[Tensor, " graph"]: ...


def scalar(metric: Metric, graph: Graph) -> Callable[[object], Tensor]:
    """The mean over graphs of ``metric``: a scalar for ``run_with_cache(grad_metric=...)``."""
    return lambda out: metric(out, graph).mean()


def tile(t: Tensor, n: int) -> Tensor:
    """``t`` (rows of one copy) repeated to ``n`` rows when the batch holds ``n / len(t)`` copies.

    >>> tile(torch.tensor([1, 2]), 4).tolist()
    [1, 2, 1, 2]
    """
    if t.shape[0] == n:
        return t
    if t.shape[0] == 0 or n % t.shape[0]:
        raise ValueError(f"a target with {t.shape[0]} rows cannot be tiled to {n} rows")
    return t.repeat(n // t.shape[0], *([1] * (t.dim() - 1)))


def _target(target: str | Tensor, graph: Graph, n: int) -> Tensor:
    return tile(graph[target] if isinstance(target, str) else target.to(graph.device), n)


def per_graph_mean(values: Float[Tensor, " item"], owner: Tensor, weight: Tensor, num_graphs: int) -> Float[Tensor, " graph"]:
    """Weighted mean of item values within each graph (0 for a graph with no weight).

    >>> per_graph_mean(torch.tensor([1., 3., 5.]), torch.tensor([0, 0, 1]), torch.ones(3), 2).tolist()
    [2.0, 5.0]
    """
    w = weight.to(values.dtype)
    num = scatter(values * w, owner, num_graphs, "sum")
    den = scatter(w, owner, num_graphs, "sum")
    return num / den.clamp_min(1e-12)


def _weights(select: Tensor | None, graph: Graph, loc: Literal["node", "edge"]) -> Tensor:
    n = graph.count(loc)
    return torch.ones(n, device=graph.device) if select is None else tile(select.to(graph.device), n).float()


@dataclass(frozen=True)
class OutputSum:
    """Sum of a raw output over selected nodes (or edges) per graph, e.g. a queried distance.

    >>> from hookgnn.models.gnn import ModelOutput
    >>> g = Graph(x=torch.zeros(3, 1), edge_index=torch.zeros(2, 0, dtype=torch.long))
    >>> OutputSum("d", select=torch.tensor([0., 1., 0.]))(ModelOutput({"d": torch.tensor([1., 2., 3.])}), g).tolist()
    [2.0]
    """

    name: str
    select: Tensor | None = None
    location: Literal["node", "edge"] = "node"

    def __call__(self, out: object, graph: Graph) -> Float[Tensor, " graph"]:
        pred = out[self.name]  # type: ignore[index]
        w = _weights(self.select, graph, self.location)
        return scatter(pred * w, graph.owner(self.location), graph.num_graphs, "sum")


@dataclass(frozen=True)
class DistanceMSE:
    """Mean squared error of a scalar node output against a target, per graph.

    .. math:: m_g = \\frac{1}{|V_g|} \\sum_{v \\in V_g} (\\hat d_v - d_v)^2
    """

    name: str = "d"
    target: str | Tensor = "d"
    select: Tensor | None = None

    def __call__(self, out: object, graph: Graph) -> Float[Tensor, " graph"]:
        pred = out[self.name]  # type: ignore[index]
        err = (pred - _target(self.target, graph, pred.shape[0]).to(pred.dtype)) ** 2
        return per_graph_mean(err, graph.batch, _weights(self.select, graph, "node"), graph.num_graphs)


def pointer_log_probs(logits: Float[Tensor, " edge"], graph: Graph) -> Float[Tensor, " edge"]:
    """log p(edge u -> v) under the softmax over the incoming edges of each node v."""
    return scatter_log_softmax(logits, graph.edge_index[1], graph.num_nodes)


@dataclass(frozen=True)
class PointerLogProb:
    """Mean over nodes of the log-probability of the target pointer, per graph.

    .. math:: m_g = \\frac{1}{|V_g|} \\sum_v \\sum_{u \\to v} \\pi_{uv} \\log p_{uv}

    with :math:`\\pi` the 0/1 target edge mask. Differentiable.
    """

    name: str = "pi"
    target: str | Tensor = "pi"
    select: Tensor | None = None

    def __call__(self, out: object, graph: Graph) -> Float[Tensor, " graph"]:
        logp = pointer_log_probs(out[self.name], graph)  # type: ignore[index]
        tgt = _target(self.target, graph, graph.num_edges).to(logp.dtype)
        per_node = scatter(tgt * logp, graph.edge_index[1], graph.num_nodes, "sum")
        return per_graph_mean(per_node, graph.batch, _weights(self.select, graph, "node"), graph.num_graphs)


@dataclass(frozen=True)
class PointerAccuracy:
    """Fraction of (selected) nodes whose predicted pointer is the target's, per graph.

    Same rule as the training metric (:func:`hookgnn.training.metrics.item_correct`): a
    node's pointer is the *source* of its highest-scoring incoming edge, ties going to
    the lowest edge index, so parallel edges ``u -> v`` are one pointer; a node with no
    incoming edge counts as right.

    >>> from hookgnn.models.gnn import ModelOutput
    >>> g = Graph(x=torch.zeros(2, 1), edge_index=torch.tensor([[0, 1, 1], [0, 0, 1]]))
    >>> PointerAccuracy(target=torch.tensor([0., 1., 1.]))(ModelOutput({"pi": torch.tensor([2., 2., 0.])}), g).tolist()
    [0.5]
    """

    name: str = "pi"
    target: str | Tensor = "pi"
    select: Tensor | None = None

    def __call__(self, out: object, graph: Graph) -> Float[Tensor, " graph"]:
        logits = out[self.name].detach()  # type: ignore[index]
        tgt = _target(self.target, graph, graph.num_edges)
        hit = item_correct(_POINTER, logits, tgt, graph).float()  # [node]
        return per_graph_mean(hit, graph.batch, _weights(self.select, graph, "node"), graph.num_graphs)


@dataclass(frozen=True)
class MaskAccuracy:
    """Fraction of items whose mask logit has the target's sign (logit > 0 iff target 1)."""

    name: str
    target: str | Tensor
    location: Literal["node", "edge"] = "node"

    def __call__(self, out: object, graph: Graph) -> Float[Tensor, " graph"]:
        logits = out[self.name].detach()  # type: ignore[index]
        tgt = _target(self.target, graph, logits.shape[0]) > 0.5
        hit = ((logits > 0) == tgt).float()
        return per_graph_mean(hit, graph.owner(self.location), torch.ones_like(hit), graph.num_graphs)


@dataclass(frozen=True)
class PointerKL:
    """KL divergence from reference pointer logits (e.g. the clean run's) to the output's.

    .. math:: m_g = \\frac{1}{|V_g|}\\sum_v \\sum_{u \\to v} p^{ref}_{uv} (\\log p^{ref}_{uv} - \\log p_{uv})
    """

    reference: Tensor
    name: str = "pi"

    def __call__(self, out: object, graph: Graph) -> Float[Tensor, " graph"]:
        logp = pointer_log_probs(out[self.name], graph)  # type: ignore[index]
        ref = pointer_log_probs(tile(self.reference.to(logp), graph.num_edges), graph)
        per_node = scatter(ref.exp() * (ref - logp), graph.edge_index[1], graph.num_nodes, "sum")
        return per_graph_mean(per_node, graph.batch, torch.ones_like(per_node), graph.num_graphs)


@dataclass(frozen=True)
class LossMetric:
    """A PyTorch-style loss as a per-graph metric (built by :func:`from_loss`)."""

    loss: Callable[..., Tensor]
    target: str | Tensor | None = None
    output: str | None = None
    location: Location | None = None

    def __call__(self, out: object, graph: Graph) -> Float[Tensor, " graph"]:
        pred = out if self.output is None else out[self.output]  # type: ignore[index]
        if not isinstance(pred, Tensor) or pred.dim() == 0:
            raise TypeError(f"from_loss needs the model output as a tensor with a row per node, edge or graph, got "
                            f"{type(pred).__name__ if not isinstance(pred, Tensor) else 'a 0-d tensor'}"
                            + ("" if self.output else " (pass output=<name> for a model returning a mapping)"))
        loc = self.location or _location(pred.shape[0], graph)
        owner = graph.owner(loc)
        if self.target is not None:
            tgt = _target(self.target, graph, pred.shape[0]).to(pred.dtype)
            if tgt.shape != pred.shape and tgt.numel() == pred.numel():
                tgt = tgt.reshape(pred.shape)  # [N] targets for [N, 1] predictions
            per_item = self.loss(pred, tgt, reduction="none")
            if per_item.shape[:1] != pred.shape[:1]:
                raise ValueError(f"loss(pred, target, reduction='none') returned shape {tuple(per_item.shape)}; "
                                 f"expected one row per {loc} ({pred.shape[0]})")
            per_item = per_item.reshape(pred.shape[0], -1).mean(1)
            return per_graph_mean(per_item, owner, torch.ones_like(per_item), graph.num_graphs)
        from hookgnn.interop.data import graph_to_pyg

        values = []
        for i, data in enumerate(graph.split()):
            try:
                data = graph_to_pyg(data)
            except ImportError:  # pragma: no cover - without PyG the loss gets the hookgnn Graph
                pass
            v = self.loss(pred[owner == i], data)
            if not isinstance(v, Tensor) or v.numel() != 1:
                raise ValueError(f"loss(output, data) must return a scalar tensor, got "
                                 f"{tuple(v.shape) if isinstance(v, Tensor) else type(v).__name__}")
            values.append(v.reshape(()))
        return torch.stack(values) if values else pred.new_zeros(0)


def _location(rows: int, graph: Graph) -> Location:
    for loc in ("node", "edge", "graph"):
        if graph.count(loc) == rows:  # type: ignore[arg-type]
            return loc  # type: ignore[return-value]
    raise ValueError(f"the output has {rows} rows, but the batch has {graph.num_nodes} nodes, {graph.num_edges} edges "
                     f"and {graph.num_graphs} graphs; pass location=... or select the output with output=...")


def from_loss(
    loss: Callable[..., Tensor],
    target: str | Tensor | None = None,
    output: str | None = None,
    location: Location | None = None,
) -> LossMetric:
    """A per-graph metric from a PyG user's loss: one value per graph of the batch.

    * With ``target`` (a field name such as ``"y"``, or a tensor for one copy), ``loss`` is
      elementwise, like ``F.l1_loss`` or ``F.mse_loss``: it is called as
      ``loss(pred, target, reduction="none")`` and graph ``g`` gets
      :math:`\\frac{1}{|I_g|} \\sum_{i \\in I_g} \\mathrm{mean}_k\\, \\ell(\\hat y_{ik}, y_{ik})`,
      the loss with ``reduction="mean"`` on that graph alone (``I_g``: its rows).
    * Without ``target``, ``loss(output, data) -> scalar`` (the PyG training-loop form,
      reading ``data.y``, masks, ...) is called once per graph, with that graph's rows of
      the output and a PyG ``Data`` of that graph holding every field.

    Rows of the output are nodes, edges or graphs by their count (or ``location``);
    ``output`` picks one entry of a model output mapping.

    >>> import torch.nn.functional as F
    >>> from hookgnn.graph import Field
    >>> g = Graph.collate([Graph(x=torch.zeros(2, 1), edge_index=torch.zeros(2, 0, dtype=torch.long),
    ...                          fields={"y": Field(torch.tensor([1., 2.]), "node")})] * 2)
    >>> from_loss(F.l1_loss, target="y")(torch.tensor([[1.], [4.], [1.], [2.]]), g).tolist()
    [1.0, 0.0]
    """
    if not callable(loss):
        raise TypeError(f"loss must be callable, got {type(loss).__name__}")
    return LossMetric(loss, target, output, location)


def faithfulness(m_circuit: Tensor | float, m_full: Tensor | float, m_corrupted: Tensor | float) -> Tensor:
    """Normalized faithfulness :math:`(m(C) - m(\\text{corr})) / (m(\\text{full}) - m(\\text{corr}))`.

    1 means the circuit recovers the full model, 0 the corrupted run.

    >>> float(faithfulness(0.5, 1.0, 0.0))
    0.5
    """
    m_c, m_f, m_0 = (torch.as_tensor(v, dtype=torch.float64) for v in (m_circuit, m_full, m_corrupted))
    return (m_c - m_0) / (m_f - m_0)
