"""Metrics for patching neural algorithmic reasoners, computed per graph of a batch.

Every metric is a callable ``metric(output, graph) -> Tensor [num_graphs]``: one value
per graph of the (disjoint-union) batch. Batched patching runs ``k`` copies of a batch
in one forward and reads the ``k * G`` values back per copy; a scalar for gradients is
the mean (:func:`scalar`). Targets are a field name of the graph (tiled by
``Graph.collate`` automatically) or a tensor for one copy (tiled here when the batch
holds several copies).

**Targets come from the clean graph.** Every patching, attribution and circuit function
calls its metric through :func:`hookgnn.metrics.targets.clean_targets`: the graph the metric receives has the
structure and features of the run (corrupted, clean, interpolated, ``k`` copies) and the
*fields of the clean graph*, so a field-name target such as ``"pi"`` means the clean
graph's ``pi`` in both directions, in sweeps, estimators and circuit evaluation alike.

Inputs and outputs are checked: a value per node (edge) is ``[n]`` or ``[n, 1]``; any
other shape raises ``ValueError`` naming the metric and the shapes it was given.

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

from hookgnn.graph import Graph, Location, converter
from hookgnn.metrics.features import item_correct
from hookgnn.ops import scatter, scatter_log_softmax
from hookgnn.spec import FeatureSpec

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


def _shapes(**tensors: Tensor | None) -> str:
    return ", ".join(f"{k} {tuple(v.shape)}" for k, v in tensors.items() if v is not None)


def _per_item(t: Tensor, n: int, loc: str, what: str, metric: object, shapes: str) -> Tensor:
    """``t`` as ``[n]`` (one value per ``loc`` of the batch) from ``[m]`` or ``[m, 1]``: an output needs
    ``m = n``; a target, mask or reference may hold one copy (``n`` a multiple of ``m``, tiled). Anything
    else raises, naming the metric and the shapes."""
    v = t[:, 0] if t.dim() == 2 and t.shape[1] == 1 else t
    m = v.shape[0] if v.dim() == 1 else -1
    ok = m == n or (not what.startswith("output") and m > 0 and n % m == 0)
    if not ok:
        rows = f"[{n}] or [{n}, 1]" + ("" if what.startswith("output") else ", or the rows of one copy")
        raise ValueError(f"{type(metric).__name__}: {what} has shape {tuple(t.shape)}, but the metric needs one value "
                         f"per {loc} ({rows}, for the {n} {loc}s of the batch); got {shapes}")
    return tile(v, n)


def per_graph_mean(values: Float[Tensor, " item"], owner: Tensor, weight: Tensor, num_graphs: int) -> Float[Tensor, " graph"]:
    """Weighted mean of item values within each graph (0 for a graph with no weight).

    >>> per_graph_mean(torch.tensor([1., 3., 5.]), torch.tensor([0, 0, 1]), torch.ones(3), 2).tolist()
    [2.0, 5.0]
    """
    w = weight.to(values.dtype)
    num = scatter(values * w, owner, num_graphs, "sum")
    den = scatter(w, owner, num_graphs, "sum")
    return num / den.clamp_min(1e-12)


def _weights(select: Tensor | None, graph: Graph, loc: Literal["node", "edge"], metric: object, shapes: str) -> Tensor:
    n = graph.count(loc)
    if select is None:
        return torch.ones(n, device=graph.device)
    return _per_item(select.to(graph.device), n, loc, "select", metric, shapes).float()


@dataclass(frozen=True)
class OutputSum:
    """Sum of a raw output over selected nodes (or edges) per graph, e.g. a queried distance.

    The output is one value per node (edge): ``[n]`` or ``[n, 1]``; ``select`` is a 0/1
    (or weight) vector ``[n]`` for the batch or for one copy of it. Other shapes raise.

    >>> from hookgnn.models.gnn import ModelOutput
    >>> g = Graph(x=torch.zeros(3, 1), edge_index=torch.zeros(2, 0, dtype=torch.long))
    >>> OutputSum("d", select=torch.tensor([0., 1., 0.]))(ModelOutput({"d": torch.tensor([1., 2., 3.])}), g).tolist()
    [2.0]

    :param name: the output feature.
    :param select: a 0/1 (or weight) vector ``[n]`` over nodes (edges), for the batch or one copy of it; ``None``:
        every node (edge).
    :param location: ``"node"`` or ``"edge"``.
    """

    name: str
    select: Tensor | None = None
    location: Literal["node", "edge"] = "node"

    def __call__(self, out: object, graph: Graph) -> Float[Tensor, " graph"]:
        raw = out[self.name]  # type: ignore[index]
        shapes = _shapes(output=raw, select=self.select)
        pred = _per_item(raw, graph.count(self.location), self.location, f"output {self.name!r}", self, shapes)
        w = _weights(self.select, graph, self.location, self, shapes)
        return scatter(pred * w, graph.owner(self.location), graph.num_graphs, "sum")


@dataclass(frozen=True)
class DistanceMSE:
    """Mean squared error of a scalar node output against a target, per graph.

    .. math:: m_g = \\frac{1}{|V_g|} \\sum_{v \\in V_g} (\\hat d_v - d_v)^2

    >>> from hookgnn.models.gnn import ModelOutput
    >>> g = Graph(x=torch.zeros(2, 1), edge_index=torch.zeros(2, 0, dtype=torch.long))
    >>> DistanceMSE(target=torch.tensor([1., 1.]))(ModelOutput({"d": torch.tensor([1., 3.])}), g).tolist()
    [2.0]

    :param name: the scalar node output.
    :param target: the target: a field name of the graph or a ``[n]`` tensor.
    :param select: a 0/1 node vector ``[n]``: average over these nodes only (``None``: every node).
    """

    name: str = "d"
    target: str | Tensor = "d"
    select: Tensor | None = None

    def __call__(self, out: object, graph: Graph) -> Float[Tensor, " graph"]:
        raw = out[self.name]  # type: ignore[index]
        tgt = graph[self.target] if isinstance(self.target, str) else self.target.to(graph.device)
        shapes = _shapes(output=raw, target=tgt, select=self.select)
        n = graph.num_nodes
        pred = _per_item(raw, n, "node", f"output {self.name!r}", self, shapes)
        err = (pred - _per_item(tgt, n, "node", "target", self, shapes).to(pred.dtype)) ** 2
        return per_graph_mean(err, graph.batch, _weights(self.select, graph, "node", self, shapes), graph.num_graphs)


def pointer_log_probs(logits: Float[Tensor, " edge"], graph: Graph) -> Float[Tensor, " edge"]:
    """log p(edge u -> v) under the softmax over the incoming edges of each node v."""
    return scatter_log_softmax(logits, graph.edge_index[1], graph.num_nodes)


def _pointer_target(target: str | Tensor, graph: Graph, raw: Tensor, select: Tensor | None) -> tuple[Tensor, str]:
    tgt = graph[target] if isinstance(target, str) else target.to(graph.device)
    return tgt, _shapes(output=raw, target=tgt, select=select)


@dataclass(frozen=True)
class PointerLogProb:
    """Mean over nodes of the log-probability of the target pointer, per graph.

    .. math:: m_g = \\frac{1}{|V_g|} \\sum_v \\sum_{u \\to v} \\pi_{uv} \\log p_{uv}

    with :math:`\\pi` the 0/1 target edge mask. Differentiable.

    >>> from hookgnn.models.gnn import ModelOutput
    >>> g = Graph(x=torch.zeros(2, 1), edge_index=torch.tensor([[0, 1, 1], [0, 0, 1]]))
    >>> m = PointerLogProb(target=torch.tensor([1., 0., 1.]))  # node 0 points to 0, node 1 to 1
    >>> round(float(m(ModelOutput({"pi": torch.zeros(3)}), g)), 4)  # (log 1/2 + log 1) / 2
    -0.3466

    :param name: the pointer output (logits per edge).
    :param target: the target pointers: a field name of the graph or a 0/1 edge tensor.
    :param select: a 0/1 node vector ``[n]``: average over these nodes only (``None``: every node).
    """

    name: str = "pi"
    target: str | Tensor = "pi"
    select: Tensor | None = None

    def __call__(self, out: object, graph: Graph) -> Float[Tensor, " graph"]:
        raw = out[self.name]  # type: ignore[index]
        tgt, shapes = _pointer_target(self.target, graph, raw, self.select)
        logp = pointer_log_probs(_per_item(raw, graph.num_edges, "edge", f"output {self.name!r}", self, shapes), graph)
        tgt = _per_item(tgt, graph.num_edges, "edge", "target", self, shapes).to(logp.dtype)
        per_node = scatter(tgt * logp, graph.edge_index[1], graph.num_nodes, "sum")
        return per_graph_mean(per_node, graph.batch, _weights(self.select, graph, "node", self, shapes), graph.num_graphs)


@dataclass(frozen=True)
class PointerAccuracy:
    """Fraction of (selected) nodes whose predicted pointer is the target's, per graph.

    Same rule as the training metric (:func:`hookgnn.metrics.features.item_correct`): a
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
        raw = out[self.name].detach()  # type: ignore[index]
        tgt, shapes = _pointer_target(self.target, graph, raw, self.select)
        logits = _per_item(raw, graph.num_edges, "edge", f"output {self.name!r}", self, shapes)
        tgt = _per_item(tgt, graph.num_edges, "edge", "target", self, shapes)
        hit = item_correct(_POINTER, logits, tgt, graph).float()  # [node]
        return per_graph_mean(hit, graph.batch, _weights(self.select, graph, "node", self, shapes), graph.num_graphs)


@dataclass(frozen=True)
class MaskAccuracy:
    """Fraction of items whose mask logit has the target's sign (logit > 0 iff target 1)."""

    name: str
    target: str | Tensor
    location: Literal["node", "edge"] = "node"

    def __call__(self, out: object, graph: Graph) -> Float[Tensor, " graph"]:
        raw = out[self.name].detach()  # type: ignore[index]
        tgt = graph[self.target] if isinstance(self.target, str) else self.target.to(graph.device)
        shapes, n = _shapes(output=raw, target=tgt), graph.count(self.location)
        logits = _per_item(raw, n, self.location, f"output {self.name!r}", self, shapes)
        hit = ((logits > 0) == (_per_item(tgt, n, self.location, "target", self, shapes) > 0.5)).float()
        return per_graph_mean(hit, graph.owner(self.location), torch.ones_like(hit), graph.num_graphs)


@dataclass(frozen=True)
class PointerKL:
    """KL divergence from reference pointer logits (e.g. the clean run's) to the output's.

    .. math:: m_g = \\frac{1}{|V_g|}\\sum_v \\sum_{u \\to v} p^{ref}_{uv} (\\log p^{ref}_{uv} - \\log p_{uv})
    """

    reference: Tensor
    name: str = "pi"

    def __call__(self, out: object, graph: Graph) -> Float[Tensor, " graph"]:
        raw = out[self.name]  # type: ignore[index]
        shapes, n = _shapes(output=raw, reference=self.reference), graph.num_edges
        logp = pointer_log_probs(_per_item(raw, n, "edge", f"output {self.name!r}", self, shapes), graph)
        ref = pointer_log_probs(_per_item(self.reference.to(logp), n, "edge", "reference", self, shapes), graph)
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
        values = []
        for i, data in enumerate(graph.split()):
            try:
                data = converter("to_pyg_union")(data)  # registered by hookgnn.interop
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


#: Relative tolerance below which ``m_full - m_corrupted`` counts as zero in :func:`faithfulness`.
FAITHFULNESS_RTOL = 1e-5


def faithfulness(m_circuit: Tensor | float, m_full: Tensor | float, m_corrupted: Tensor | float) -> Tensor:
    """Normalized faithfulness :math:`(m(C) - m(\\text{corr})) / (m(\\text{full}) - m(\\text{corr}))`.

    1 means the circuit recovers the full model, 0 the corrupted run. Scalars or tensors
    (e.g. one value per graph), broadcast together.

    It is undefined when the full model and the corrupted (empty-circuit) run score the
    same: ``ValueError`` naming both values is raised when
    :math:`|m(\\text{full}) - m(\\text{corr})| \\le 10^{-5} \\max(|m(\\text{full})|, |m(\\text{corr})|)`
    (for any graph of tensor inputs: never an inf or a NaN), and when any value is not finite.

    >>> float(faithfulness(0.5, 1.0, 0.0))
    0.5

    :param m_circuit: the metric with only the circuit kept.
    :param m_full: the metric of the full model.
    :param m_corrupted: the metric of the corrupted run (the empty circuit).
    """
    m_c, m_f, m_0 = (torch.as_tensor(v, dtype=torch.float64) for v in (m_circuit, m_full, m_corrupted))
    m_c, m_f, m_0 = torch.broadcast_tensors(m_c, m_f, m_0)
    bad = ~(torch.isfinite(m_c) & torch.isfinite(m_f) & torch.isfinite(m_0))
    den = m_f - m_0
    flat = (den.abs() <= FAITHFULNESS_RTOL * torch.maximum(m_f.abs(), m_0.abs()))
    for mask, why in ((bad, "a value is not finite"), (flat, "m_full and m_corrupted are equal (within a relative "
                                                            f"{FAITHFULNESS_RTOL:g}): the ablated components do not "
                                                            "change the metric")):
        if bool(mask.any()):
            i = tuple(int(j) for j in mask.nonzero()[0]) if mask.dim() else ()
            where = f" at index {i}" if i else ""
            raise ValueError(f"faithfulness is undefined{where}: m_circuit = {float(m_c[i])}, m_full = {float(m_f[i])}, "
                             f"m_corrupted = {float(m_0[i])}; {why}")
    return (m_c - m_0) / den
