"""Distributed alignment search (DAS, Geiger et al.): learn the subspace a hint lives in.

A :class:`~hookgnn.causal.subspaces.Rotation` :math:`R` (orthogonal, ``d x d``) is trained so
that swapping the first ``k`` rotated coordinates of a node's state makes the model output the
algorithm's counterfactual (:mod:`hookgnn.causal.interchange`): Adam on

.. math:: L(R) = \\frac{1}{m} \\sum_i \\sum_{o} \\ell_o\\big(\\text{model}(b_i \\leftarrow_{R_{:k}} s_i)_o,\\
          \\text{counterfactual}_{i, o}\\big)

over the training interventions, with :math:`\\ell` the squared error divided by the squared
largest target of the graph (scalars), binary cross-entropy on logits (masks) and
cross-entropy over a node's in-edges (pointers), its graph's nodes (pointers to any node)
or classes (categoricals). Only :math:`R` is
trained; the model's parameters get no gradient. Report IIA on held-out interventions
(:meth:`InterchangeData.subset <hookgnn.causal.interchange.InterchangeData.subset>`).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor
from torch.nn import functional as F

from hookgnn.graph import Graph
from hookgnn.hooks import HookedRootModule
from hookgnn.patching.copies import chunks, disjoint_union
from hookgnn.spec import FeatureSpec
from hookgnn.tasks.samplers import as_generator
from hookgnn.causal.interchange import InterchangeData, run_interventions
from hookgnn.causal.subspaces import Rotation, Subspace


def output_loss(fs: FeatureSpec, pred: Tensor, target: Tensor, graph: Graph) -> Tensor:
    """The mean per-node loss of a raw model output against a stored target (module docstring)."""
    if fs.type == "scalar":
        scale = torch.zeros(graph.num_graphs, dtype=target.dtype).scatter_reduce(
            0, graph.batch, target.abs(), "amax", include_self=True).clamp_min(1e-6)
        return (((pred - target.to(pred)) / scale[graph.batch].to(pred)) ** 2).mean()
    if fs.type == "mask":
        return F.binary_cross_entropy_with_logits(pred, target.to(pred))
    if fs.type == "categorical":
        return F.cross_entropy(pred, target.argmax(-1))
    if fs.type == "pointer" and fs.any_node:  # logits [N, K] over the node's graph, in-graph node numbers
        return F.cross_entropy(pred, target.long())
    if fs.type == "pointer":
        dst = graph.edge_index[1]
        top = torch.full((graph.num_nodes,), -torch.inf, dtype=pred.dtype).scatter_reduce(
            0, dst, pred.detach(), "amax")
        z = torch.zeros(graph.num_nodes, dtype=pred.dtype).index_add(0, dst, (pred - top[dst]).exp())
        log_p = pred - top[dst] - z.log()[dst]
        return -(log_p * target.to(pred)).sum() / graph.num_nodes
    raise ValueError(f"DAS has no loss for outputs of type {fs.type!r}")


def train_das(model: HookedRootModule, data: InterchangeData, k: int = 1, epochs: int = 20, lr: float = 0.05,
              copies: int = 64, seed: int = 0, **forward_kwargs: Any) -> Subspace:
    """A ``k``-dimensional subspace of the node state trained by DAS on the interventions of
    ``data`` (``copies`` per step, in an order shuffled with ``seed`` each epoch); returned
    fixed, named ``"das[k]"``.

    >>> from hookgnn import HookedGNN
    >>> from hookgnn.tasks import get_task
    >>> from hookgnn.causal.interchange import interchange_data, random_interventions, task_pairs
    >>> bf = get_task("bellman_ford")
    >>> _ = torch.manual_seed(0)
    >>> model = HookedGNN("mpnn", 8, node_in=2, edge_in=1, spec=bf.spec, max_steps=2)  # x: source flag and pos
    >>> pairs = task_pairs(bf, 4, seed=0, n=5, p=0.5)
    >>> data = interchange_data(bf, "d_h", pairs, random_interventions(pairs, [1, 2], seed=0), outputs=["d"])
    >>> train_das(model, data, k=2, epochs=1).basis().shape
    torch.Size([8, 2])

    :param model: the hooked model (a :class:`~hookgnn.HookedGNN`, a ``from_layers`` stack or a wrapped PyG
        model); it is not modified.
    :param data: the interventions and their counterfactuals
        (:func:`~hookgnn.causal.interchange.interchange_data`).
    :param k: the dimension of the subspace.
    :param epochs: passes over the interventions.
    :param lr: Adam learning rate of the rotation.
    :param copies: interventions per step (one batched forward).
    :param seed: seeds the initial rotation and the order of the interventions.
    :param forward_kwargs: keywords for every forward of the model, e.g. ``steps=8``.
    """
    if epochs < 0:
        raise ValueError(f"epochs must be >= 0, got {epochs}")
    if not data.interventions:
        raise ValueError("no interventions to train DAS on")
    probe = model.state_hook(1)
    with torch.no_grad():
        _, cache = model.run_with_cache(data.pairs[0][0], names_filter=[probe], **forward_kwargs)
    d = int(cache[probe].shape[-1])
    torch.manual_seed(seed)
    rotation = Rotation(d, k, name=f"das[{k}]")
    params = list(rotation.parameters())
    opt = torch.optim.Adam(params, lr=lr)
    rng = as_generator(seed)
    m = len(data.interventions)
    for _ in range(epochs):
        order = rng.permutation(m).tolist()
        for _, part in chunks(order, copies):
            batch_iv = [data.interventions[i] for i in part]
            out, batch = run_interventions(model, data.pairs, batch_iv, rotation, **forward_kwargs)
            cf = disjoint_union([data.counterfactuals[i] for i in part])
            loss = sum(output_loss(data.task.spec[n], out[n], cf[n], cf) for n in data.outputs)
            grads = torch.autograd.grad(loss, params)
            opt.zero_grad()
            for p, g in zip(params, grads):
                p.grad = g
            opt.step()
    return rotation.frozen()
