"""CLRS-style evaluation metrics of raw predictions against stored targets.

Per output type (all averages are over every item of the whole batch, "micro"):

* ``pointer``: ``accuracy`` - the fraction of nodes ``v`` whose predicted pointer, the
  source of the highest-scoring incoming edge (lowest edge index on ties), is the node
  the target points to (parallel edges ``u -> v`` count as the same pointer);
  ``graph_accuracy`` - the fraction of graphs with every pointer right.
* numbered ``pointer`` (:func:`~hookgnn.spec.is_numbered_pointer`: an edge pointer, or a
  node pointer with ``any_node``): ``accuracy`` - the fraction of edges (resp. nodes) whose
  highest-scoring node (lowest on ties) is the target; ``graph_accuracy``.
* ``mask``: ``accuracy`` - fraction of items with ``(logit > 0) == target``; ``f1`` -
  :math:`2TP / (2TP + FP + FN)` over all items (1 when there is nothing to find and
  nothing is predicted); ``graph_accuracy``.
* ``mask_one``: ``accuracy`` - fraction of graphs whose highest-scoring item is the target.
* ``categorical``: ``accuracy`` - fraction of items whose argmax class is the target.
* ``scalar``: ``mse`` - mean squared error; ``mae``.

"Node accuracy" in the benchmarks is the ``accuracy`` of a node-level output: a
node counts as right when its own prediction (its mask bit, or its pointer) is right.
"""

from __future__ import annotations

import torch
from jaxtyping import Bool, Int
from torch import Tensor

from hookgnn.graph import Graph
from hookgnn.ops import scatter, scatter_max
from hookgnn.spec import FeatureSpec, check_edge_pointer_target, is_numbered_pointer


def pointer_sources(logits_or_mask: Tensor, graph: Graph) -> Int[Tensor, " node"]:
    """For each node, the source of its highest-scoring incoming edge (-1 if none).

    Works for raw logits and for stored 0/1 pointer masks alike; ties go to the
    lowest edge index.

    >>> g = Graph(x=torch.zeros(2, 1), edge_index=torch.tensor([[0, 1, 0], [0, 1, 1]]))
    >>> pointer_sources(torch.tensor([0.0, -1.0, 2.0]), g).tolist()
    [0, 0]
    """
    src, dst = graph.edge_index
    _, arg = scatter_max(logits_or_mask.detach().float(), dst, graph.num_nodes)
    return torch.where(arg >= 0, src[arg.clamp(min=0)], torch.full_like(arg, -1))


def item_correct(spec: FeatureSpec, pred: Tensor, target: Tensor, graph: Graph) -> Bool[Tensor, " item"]:
    """Whether each item is predicted right (not defined for scalars).

    Items: nodes for pointers, graphs for ``mask_one``, else the feature's location.

    >>> g = Graph(x=torch.zeros(2, 1), edge_index=torch.zeros(2, 0, dtype=torch.long))
    >>> item_correct(FeatureSpec("output", "node", "mask"), torch.tensor([2.0, 1.0]), torch.tensor([1.0, 0.0]), g).tolist()
    [True, False]
    """
    if is_numbered_pointer(spec):
        y = check_edge_pointer_target("target", target, graph, spec.field_location)  # type: ignore[arg-type]
        return pred.detach().argmax(-1) == y
    if spec.type == "pointer":
        return pointer_sources(pred, graph) == pointer_sources(target, graph)
    if spec.type == "mask":
        return (pred > 0) == (target > 0.5)
    if spec.type == "categorical":
        return pred.argmax(-1) == target.argmax(-1)
    if spec.type == "mask_one":
        owner = graph.owner(spec.location)
        _, p = scatter_max(pred.detach().float(), owner, graph.num_graphs)
        _, y = scatter_max(target.float(), owner, graph.num_graphs)
        return p == y
    raise ValueError(f"correctness is not defined for {spec.type} features; use the mse")


def feature_metrics(spec: FeatureSpec, pred: Tensor, target: Tensor, graph: Graph) -> dict[str, float]:
    """The metrics of one output (module docstring), by metric name.

    >>> g = Graph(x=torch.zeros(2, 1), edge_index=torch.zeros(2, 0, dtype=torch.long))
    >>> feature_metrics(FeatureSpec("output", "node", "scalar"), torch.tensor([1.0, 3.0]), torch.tensor([0.0, 1.0]), g)
    {'mse': 2.5, 'mae': 1.5}
    """
    pred, target = pred.detach(), (target if is_numbered_pointer(spec) else target.to(pred.dtype))
    if spec.type == "scalar":
        err = pred - target
        return {"mse": float((err**2).mean()) if err.numel() else 0.0,
                "mae": float(err.abs().mean()) if err.numel() else 0.0}
    correct = item_correct(spec, pred, target, graph)
    out = {"accuracy": float(correct.float().mean()) if correct.numel() else 1.0}
    if spec.type == "mask":
        p, y = pred > 0, target > 0.5
        tp, fp, fn = int((p & y).sum()), int((p & ~y).sum()), int((~p & y).sum())
        out["f1"] = 1.0 if tp + fp + fn == 0 else 2 * tp / (2 * tp + fp + fn)
    if spec.type in ("pointer", "mask"):
        node_items = spec.type == "pointer" and spec.location == "node"
        owner = graph.batch if node_items else graph.owner(spec.field_location)
        wrong = scatter((~correct).float(), owner, graph.num_graphs, "sum")
        out["graph_accuracy"] = float((wrong == 0).float().mean())
    return out


def primary_metric(spec: FeatureSpec) -> str:
    """The headline metric of a feature type: ``"mse"`` for scalars, else ``"accuracy"``.

    >>> primary_metric(FeatureSpec("output", "node", "pointer"))
    'accuracy'
    """
    return "mse" if spec.type == "scalar" else "accuracy"
