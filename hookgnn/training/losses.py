"""Training losses for CLRS-style features: one rule per feature type, plus hint masking.

Every rule first gives one loss per *item* (:func:`item_losses`), then the caller
averages. Items and rules, for a raw prediction ``p`` (see :mod:`hookgnn.models.heads`)
and the stored target ``y`` (see :mod:`hookgnn.spec`):

==============  ==========  ============================================================
type            item        loss of the item
==============  ==========  ============================================================
scalar          node/edge/  :math:`(p_i - y_i)^2`
                graph
mask            same        :math:`\\mathrm{BCE}(\\sigma(p_i), y_i)` (with logits)
categorical     same        :math:`-\\sum_c y_{ic} \\log \\mathrm{softmax}(p_i)_c`
pointer         node ``v``  :math:`-\\sum_{e: u \\to v} y_e \\log \\mathrm{softmax}_{e' \\to v}(p)_e`
                            (cross-entropy over the incoming edges of ``v``)
mask_one        graph       :math:`-\\sum_{i \\in g} y_i \\log \\mathrm{softmax}_{i' \\in g}(p)_i`
                            (cross-entropy over the graph's nodes/edges)
edge pointer    edge        :math:`-\\log \\mathrm{softmax}_k(p_{e})_{y_e}` (cross-entropy over the
                            nodes of the edge's graph; ``y_e`` its in-graph node number)
pointer to any  node ``v``  :math:`-\\log \\mathrm{softmax}_k(p_{v})_{y_v}` (``any_node``: cross-entropy
node                        over the nodes of ``v``'s graph; ``y_v`` its in-graph node number)
==============  ==========  ============================================================

Hints: ``hints[name][t]`` predicts hint step ``t + 1`` (:class:`~hookgnn.models.ModelOutput`).
Graph ``i`` has ``num_steps[i] = T_i`` steps, so only the predictions ``t < T_i - 1``
are supervised; later steps of a batch are padding (copies of the final state, see
:meth:`Graph.collate`) and are masked out:

.. math::

    L_{hint} = \\frac{\\sum_t \\sum_j [t < T_{g(j)} - 1]\\, \\ell(p^{(t)}_j, y^{(t+1)}_j)}
                    {\\sum_t \\sum_j [t < T_{g(j)} - 1]}

where ``j`` runs over items and ``g(j)`` is the graph of item ``j``.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
import torch.nn.functional as F
from jaxtyping import Float, Int
from torch import Tensor

from hookgnn.graph import Graph
from hookgnn.models import ModelOutput
from hookgnn.ops import scatter, scatter_log_softmax
from hookgnn.spec import FeatureSpec, check_edge_pointer_target, is_numbered_pointer


def item_losses(spec: FeatureSpec, pred: Tensor, target: Tensor, graph: Graph) -> Float[Tensor, " item"]:
    """One loss per item of ``spec``'s type (see the module table); not reduced.

    Pointers give one loss per node, ``mask_one`` one per graph, the other types one
    per item of the feature's location.

    >>> from hookgnn.graph import Graph
    >>> g = Graph(x=torch.zeros(2, 1), edge_index=torch.tensor([[0, 1, 0], [0, 1, 1]]))
    >>> spec = FeatureSpec("output", "node", "pointer")
    >>> logits, target = torch.zeros(3), torch.tensor([1.0, 0.0, 1.0])  # node 1 points to 0
    >>> [round(v, 4) + 0.0 for v in item_losses(spec, logits, target, g).tolist()]  # log 1, log 2
    [0.0, 0.6931]
    """
    if is_numbered_pointer(spec):
        logp = torch.log_softmax(pred, dim=-1)  # padded slots hold EDGE_POINTER_PAD: probability 0
        y = check_edge_pointer_target("target", target, graph, spec.field_location)  # type: ignore[arg-type]
        return -logp.gather(1, y.unsqueeze(1)).squeeze(1)
    target = target.to(pred.dtype)
    if spec.type == "scalar":
        return (pred - target) ** 2
    if spec.type == "mask":
        return F.binary_cross_entropy_with_logits(pred, target, reduction="none")
    if spec.type == "categorical":
        return -(target * torch.log_softmax(pred, dim=-1)).sum(-1)
    if spec.type == "pointer":
        dst = graph.edge_index[1]
        logp = scatter_log_softmax(pred, dst, graph.num_nodes)
        return -scatter(target * logp, dst, graph.num_nodes, "sum")
    owner = graph.owner(spec.location)  # mask_one: a softmax over each graph's items
    logp = scatter_log_softmax(pred, owner, graph.num_graphs)
    return -scatter(target * logp, owner, graph.num_graphs, "sum")


def item_graph(spec: FeatureSpec, graph: Graph) -> Int[Tensor, " item"]:
    """The graph of each item that :func:`item_losses` returns.

    >>> from hookgnn.graph import Graph
    >>> g = Graph(x=torch.zeros(3, 1), edge_index=torch.zeros(2, 0, dtype=torch.long), ptr=torch.tensor([0, 1, 3]))
    >>> item_graph(FeatureSpec("output", "node", "pointer"), g).tolist()
    [0, 1, 1]
    """
    if is_numbered_pointer(spec):
        return graph.owner(spec.field_location)
    if spec.type == "pointer":
        return graph.batch
    if spec.type == "mask_one":
        return torch.arange(graph.num_graphs, device=graph.device)
    return graph.owner(spec.location)


def output_loss(spec: FeatureSpec, pred: Tensor, target: Tensor, graph: Graph) -> Float[Tensor, ""]:
    """Mean of :func:`item_losses` over all items of the batch (0 when there are none).

    >>> from hookgnn.graph import Graph
    >>> g = Graph(x=torch.zeros(2, 1), edge_index=torch.zeros(2, 0, dtype=torch.long))
    >>> output_loss(FeatureSpec("output", "node", "scalar"), torch.tensor([1.0, 3.0]), torch.tensor([0.0, 1.0]), g)
    tensor(2.5000)
    """
    losses = item_losses(spec, pred, target, graph)
    return losses.mean() if losses.numel() else losses.sum()


def hint_valid(spec: FeatureSpec, graph: Graph, rounds: int) -> Float[Tensor, "round item"]:
    """1 where prediction ``t`` of an item is supervised: ``t < num_steps[g] - 1``, else 0.

    >>> from hookgnn.graph import Field, Graph
    >>> g = Graph(x=torch.zeros(2, 1), edge_index=torch.zeros(2, 0, dtype=torch.long), ptr=torch.tensor([0, 1, 2]),
    ...           fields={"num_steps": Field(torch.tensor([2, 4]), "graph")})
    >>> hint_valid(FeatureSpec("hint", "node", "mask"), g, 3).tolist()
    [[1.0, 1.0], [0.0, 1.0], [0.0, 1.0]]
    """
    steps = graph["num_steps"].to(graph.device)[item_graph(spec, graph)]  # [item]
    t = torch.arange(rounds, device=graph.device).unsqueeze(1)
    return (t < steps.unsqueeze(0) - 1).to(graph.x.dtype)


def hint_loss(spec: FeatureSpec, preds: Tensor, trajectory: Tensor, graph: Graph) -> Float[Tensor, ""]:
    """Masked mean hint loss (module docstring); ``preds`` [R, ...], ``trajectory`` [T, ...].

    Prediction ``t`` is compared with step ``min(t + 1, T - 1)``; it only counts when
    ``t < num_steps - 1`` for its graph. 0 when nothing is supervised.

    >>> from hookgnn.graph import Field, Graph
    >>> g = Graph(x=torch.zeros(1, 1), edge_index=torch.zeros(2, 0, dtype=torch.long),
    ...           fields={"num_steps": Field(torch.tensor([2]), "graph")})
    >>> traj = torch.tensor([[0.0], [1.0]])  # T = 2: one supervised prediction
    >>> hint_loss(FeatureSpec("hint", "node", "scalar"), torch.tensor([[3.0], [100.0]]), traj, g)
    tensor(4.)
    """
    total, count = hint_loss_sum(spec, preds, trajectory, graph)
    return total / count.clamp(min=1.0)


def hint_loss_sum(spec: FeatureSpec, preds: Tensor, trajectory: Tensor, graph: Graph) -> tuple[Tensor, Tensor]:
    """The numerator and denominator of :func:`hint_loss`: the summed supervised item losses, and their number.

    >>> from hookgnn.graph import Field, Graph
    >>> g = Graph(x=torch.zeros(1, 1), edge_index=torch.zeros(2, 0, dtype=torch.long),
    ...           fields={"num_steps": Field(torch.tensor([2]), "graph")})
    >>> hint_loss_sum(FeatureSpec("hint", "node", "scalar"), torch.tensor([[3.0], [100.0]]), torch.tensor([[0.0], [1.0]]), g)
    (tensor(4.), tensor(1.))
    """
    rounds, last = preds.shape[0], trajectory.shape[0] - 1
    valid = hint_valid(spec, graph, rounds)  # [round, item]
    total = preds.new_zeros(())
    for t in range(rounds):
        if bool(valid[t].any()):
            target = trajectory[min(t + 1, last)]
            total = total + (item_losses(spec, preds[t], target, graph) * valid[t]).sum()
    return total, valid.sum()


def loss_sums(
    out: ModelOutput,
    graph: Graph,
    spec: Mapping[str, FeatureSpec],
    hint_weight: float = 1.0,
) -> dict[str, tuple[float, Tensor, Tensor]]:
    """Each term of :func:`task_loss` as ``(weight, sum of item losses, number of items)``, keyed like its parts.

    :func:`task_loss` is :math:`\\sum_k w_k\\, S_k / \\max(n_k, 1)`; over a batch split across
    processes, the sums :math:`S_k` and counts :math:`n_k` add up, the means do not
    (:mod:`hookgnn.parallel.training`).

    >>> from hookgnn.models import HookedGNN
    >>> from hookgnn.tasks import get_task
    >>> task = get_task("bfs")
    >>> g = task.sample(2, "path", seed=0, n=4)
    >>> model = HookedGNN("mpnn", 8, node_in=2, edge_in=1, spec=task.spec, max_steps=4)
    >>> sorted(loss_sums(model(g, steps=3), g, task.spec))
    ['hint/pi_h', 'hint/reach_h', 'out/pi', 'out/reach']
    """
    terms: dict[str, tuple[float, Tensor, Tensor]] = {}
    for name, pred in out.outputs.items():
        losses = item_losses(spec[name], pred, graph[name], graph)
        terms[f"out/{name}"] = (1.0, losses.sum(), losses.new_tensor(float(losses.numel())))
    if hint_weight > 0:
        for name, preds in out.hints.items():
            total, count = hint_loss_sum(spec[name], preds, graph[name], graph)
            terms[f"hint/{name}"] = (hint_weight, total, count.to(total.dtype))
    return terms


def task_loss(
    out: ModelOutput,
    graph: Graph,
    spec: Mapping[str, FeatureSpec],
    hint_weight: float = 1.0,
) -> tuple[Float[Tensor, ""], dict[str, float]]:
    """Sum of the output losses plus ``hint_weight`` times the hint losses.

    Every output in ``out.outputs`` and (when ``hint_weight > 0``) every hint in
    ``out.hints`` is compared with the field of the same name on ``graph``. Returns the
    total (differentiable) and the parts as floats, keyed ``"out/<name>"`` and
    ``"hint/<name>"``.

    >>> from hookgnn.models import HookedGNN
    >>> from hookgnn.tasks import get_task
    >>> task = get_task("bfs")
    >>> g = task.sample(2, "path", seed=0, n=4)
    >>> model = HookedGNN("mpnn", 8, node_in=2, edge_in=1, spec=task.spec, max_steps=4)
    >>> total, parts = task_loss(model(g, steps=3), g, task.spec)
    >>> sorted(parts)
    ['hint/pi_h', 'hint/reach_h', 'out/pi', 'out/reach']
    """
    total = graph.x.new_zeros(())
    parts: dict[str, float] = {}
    for name, pred in out.outputs.items():
        loss = output_loss(spec[name], pred, graph[name], graph)
        parts[f"out/{name}"] = float(loss.detach())
        total = total + loss
    if hint_weight > 0:
        for name, preds in out.hints.items():
            loss = hint_loss(spec[name], preds, graph[name], graph)
            parts[f"hint/{name}"] = float(loss.detach())
            total = total + hint_weight * loss
    return total, parts
