"""Interchange interventions: does the state after round t hold the algorithm's hint at step t?

An intervention ``(pair, node v, step k)`` runs the base graph of a pair, swaps a subspace
(:mod:`hookgnn.causal.subspaces`) of node ``v``'s state entering round ``k`` (the model's
:meth:`~hookgnn.rounds.RoundMethods.state_hook` ``k``: the state after round ``k - 1``, which
hint step ``k`` describes) for its value in the source graph's run, and compares the model's
outputs with the algorithm's counterfactual: the base graph's run resumed from step ``k`` with
``v``'s hint set to the source's value (:meth:`Task.resume <hookgnn.tasks.base.Task.resume>`).

The interchange intervention accuracy is

.. math:: \\mathrm{IIA} = \\frac{1}{m} \\sum_{i=1}^{m} [\\, \\text{model}(b_i \\leftarrow s_i) \\equiv
          \\text{algorithm}(b_i, k_i, h_{v_i} \\leftarrow h^{s_i}_{v_i}) \\,]

where two outputs agree (:func:`node_agreement`) when they do at every node: scalars within
``tol`` times the graph's largest target, masks by sign of the logit, pointers by the node
pointed to, categoricals and ``mask_one`` by argmax. :class:`InterchangeData` also records
which interventions are *informative* (their counterfactual differs, by the same rule, from
the base graph's own output); an intervention that changes nothing scores the fraction that
is not (``chance``).

Interventions are batched: ``copies`` base graphs per forward as one disjoint union
(:func:`~hookgnn.patching.copies.disjoint_union`), each copy with its own node and round,
through hooks on the rounds protocol's state hook points (never by class or hook name).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import torch
from torch import Tensor

from hookgnn.graph import Graph
from hookgnn.hooks import HookedRootModule
from hookgnn.patching.copies import chunks, disjoint_union
from hookgnn.spec import FeatureSpec
from hookgnn.tasks import SAMPLERS, Task
from hookgnn.tasks.samplers import Seed, as_generator
from hookgnn.causal.subspaces import Subspace

Pair = tuple[Graph, Graph]


@dataclass(frozen=True)
class Intervention:
    """Swap node ``node``'s state entering round ``step`` (hint step ``step``) in pair ``pair``."""

    pair: int
    node: int
    step: int


def task_pairs(task: Task, num_pairs: int, sampler: str = "erdos_renyi", vary: Literal["weights", "source"] = "weights",
               seed: Seed = None, **sampler_kwargs: Any) -> list[Pair]:
    """``num_pairs`` (base, source) graphs of one structure each: the source has the base's
    edge weights permuted (``vary="weights"``; same source node) or another source node
    (``vary="source"``).

    >>> from hookgnn.tasks import get_task
    >>> (b, s), = task_pairs(get_task("bellman_ford"), 1, seed=0, n=5, p=0.5)
    >>> bool((b.edge_index == s.edge_index).all()), bool((b["s"] == s["s"]).all())
    (True, True)
    """
    if vary not in ("weights", "source"):
        raise ValueError(f"vary must be 'weights' or 'source', got {vary!r}")
    rng = as_generator(seed)
    pairs = []
    for _ in range(num_pairs):
        g = SAMPLERS[sampler](seed=rng, **sampler_kwargs)
        src = int(rng.integers(g.num_nodes))
        other = int(rng.integers(g.num_nodes)) if vary == "source" else src
        changed = dataclasses.replace(g, weight=rng.permutation(g.weight)) if vary == "weights" else g
        pairs.append((task.run(g, source=src), task.run(changed, source=other)))
    return pairs


def random_interventions(pairs: Sequence[Pair], steps: Sequence[int], per_pair: int = 1,
                         seed: Seed = None) -> list[Intervention]:
    """``per_pair`` interventions per pair and step, each at a random node.

    >>> from hookgnn.tasks import get_task
    >>> pairs = task_pairs(get_task("bfs"), 2, seed=0, n=4, p=0.5)
    >>> len(random_interventions(pairs, steps=[1, 2], seed=0))
    4
    """
    rng = as_generator(seed)
    return [Intervention(p, int(rng.integers(b.num_nodes)), int(k))
            for p, (b, _) in enumerate(pairs) for k in steps for _ in range(per_pair)]


def swapped_hint(task: Task, hint: str, base: Graph, source: Graph, node: int, step: int) -> Tensor:
    """The base graph's hint ``hint`` at ``step`` with node ``node``'s value from ``source``
    (a pointer: the node's in-edges; a pointer to any node: its node number), in stored form."""
    fs = task.spec.get(hint)
    if fs is None or fs.stage != "hint":
        hints = [n for n, f in task.spec.items() if f.stage == "hint"]
        raise KeyError(f"{task.name} has no hint {hint!r}; hints: {hints}")
    if fs.location != "node":
        raise ValueError(f"interchange interventions swap a node's state; hint {hint!r} lives on {fs.location}s")
    at = (min(step, int(g["num_steps"][0]) - 1) for g in (base, source))
    b, s = base[hint][next(at)].clone(), source[hint][next(at)]
    along_edges = fs.type == "pointer" and not fs.any_node  # stored on the node's in-edges
    rows = base.edge_index[1] == node if along_edges else torch.arange(base.num_nodes) == node
    b[rows] = s[rows]
    return b


@dataclass
class InterchangeData:
    """Pairs, interventions and their counterfactuals for one hint (:func:`interchange_data`)."""

    task: Task
    hint: str
    pairs: list[Pair]
    interventions: list[Intervention]
    counterfactuals: list[Graph]
    informative: Tensor  # [m] bool
    outputs: tuple[str, ...]
    tol: float

    def subset(self, index: Sequence[int]) -> InterchangeData:
        """The interventions ``index`` only (e.g. a train / held-out split)."""
        idx = list(index)
        return dataclasses.replace(self, interventions=[self.interventions[i] for i in idx],
                                   counterfactuals=[self.counterfactuals[i] for i in idx],
                                   informative=self.informative[idx])


def interchange_data(task: Task, hint: str, pairs: Sequence[Pair], interventions: Sequence[Intervention],
                     outputs: Sequence[str] | None = None, tol: float = 0.05) -> InterchangeData:
    """The counterfactual of every intervention (``task.resume`` from its step with its node's
    ``hint`` swapped) and whether it is informative. ``outputs``: the task outputs compared
    (default: every node output of the task); ``tol``: scalar tolerance relative to the graph's
    largest target.

    >>> from hookgnn.tasks import get_task
    >>> bf = get_task("bellman_ford")
    >>> pairs = task_pairs(bf, 2, seed=0, n=5, p=0.5)
    >>> data = interchange_data(bf, "d_h", pairs, random_interventions(pairs, [1], seed=0))
    >>> len(data.counterfactuals), data.outputs
    (2, ('pi', 'd', 'reach'))

    :param task: the task whose algorithm gives the counterfactuals (it must be able to ``resume``).
    :param hint: the hint whose value an intervention swaps.
    :param pairs: the (base, source) graph pairs.
    :param interventions: where to intervene: pair, step and node of each intervention.
    :param outputs: the task outputs compared (default: every node output of the task).
    :param tol: scalar tolerance relative to the graph's largest target.
    """
    outs = tuple(outputs) if outputs is not None else tuple(
        n for n, fs in task.spec.items() if fs.stage == "output" and fs.location == "node")
    for name in outs:
        if name not in task.spec or task.spec[name].stage != "output":
            raise KeyError(f"{task.name} has no output {name!r}")
    if not tol > 0:
        raise ValueError(f"tol must be > 0, got {tol}")
    cfs, informative = [], []
    for i in interventions:
        if not 0 <= i.pair < len(pairs):
            raise IndexError(f"intervention {i} names pair {i.pair}; there are {len(pairs)}")
        base, source = pairs[i.pair]
        _check_pair(base, source, i)
        cf = task.resume(base, i.step, {hint: swapped_hint(task, hint, base, source, i.node, i.step)})
        cfs.append(cf)
        same = all(bool(node_agreement(task.spec[n], base[n], cf[n], cf, tol).all()) for n in outs)
        informative.append(not same)
    return InterchangeData(task, hint, list(pairs), list(interventions), cfs,
                           torch.tensor(informative, dtype=torch.bool), outs, tol)


def _check_pair(base: Graph, source: Graph, i: Intervention) -> None:
    if base.num_graphs != 1 or source.num_graphs != 1:
        raise ValueError(f"pair {i.pair}: a pair holds two single graphs")
    if base.num_nodes != source.num_nodes or not torch.equal(base.edge_index, source.edge_index):
        raise ValueError(f"pair {i.pair}: base and source need the same nodes and edge_index to swap node states")
    if not 0 <= i.node < base.num_nodes:
        raise IndexError(f"intervention {i}: node {i.node} out of range for {base.num_nodes} nodes")


def node_agreement(fs: FeatureSpec, pred: Tensor, target: Tensor, graph: Graph, tol: float) -> Tensor:
    """``[N]`` bool: whether the prediction ``pred`` (raw model output: logits, pointer scores)
    agrees with the stored ``target`` at each node of ``graph`` (module docstring)."""
    batch = graph.batch
    if fs.type == "scalar":
        scale = torch.zeros(graph.num_graphs, dtype=target.dtype).scatter_reduce(
            0, batch, target.abs(), "amax", include_self=True)
        scale = torch.where(scale > 0, scale, torch.ones_like(scale))
        return (pred.detach().to(target) - target).abs() <= tol * scale[batch]
    if fs.type == "mask":
        return (pred.detach() > 0) == (target > 0.5)
    if fs.type == "pointer" and fs.any_node:  # logits [N, K] against in-graph node numbers
        return pred.detach().argmax(-1) == target.long()
    if fs.type == "pointer":
        return _pointed(pred.detach(), graph) == _pointed(target, graph)
    if fs.type == "categorical":
        return pred.detach().argmax(-1) == target.argmax(-1)
    if fs.type == "mask_one":
        return (_graph_argmax(pred.detach(), graph) == _graph_argmax(target, graph))[batch]
    raise ValueError(f"no agreement rule for outputs of type {fs.type!r}")


def _pointed(scores: Tensor, graph: Graph) -> Tensor:
    """``[N]``: the node each node points to, the source of its highest-scoring in-edge
    (ties: the lowest-index edge)."""
    src, dst = graph.edge_index
    best = torch.full((graph.num_nodes,), -torch.inf, dtype=scores.dtype).scatter_reduce(0, dst, scores, "amax")
    hit = scores == best[dst]
    e = torch.arange(scores.shape[0])
    first = torch.full((graph.num_nodes,), scores.shape[0], dtype=torch.long).scatter_reduce(
        0, dst[hit], e[hit], "amin")
    return torch.where(first < scores.shape[0], src[first.clamp(max=max(scores.shape[0] - 1, 0))], -1)


def _graph_argmax(values: Tensor, graph: Graph) -> Tensor:
    best = torch.full((graph.num_graphs,), -torch.inf, dtype=values.dtype).scatter_reduce(
        0, graph.batch, values, "amax")
    node = torch.arange(graph.num_nodes)
    hit = values == best[graph.batch]
    return torch.full((graph.num_graphs,), graph.num_nodes).scatter_reduce(0, graph.batch[hit], node[hit], "amin") \
        - graph.ptr[:-1]


def run_interventions(model: HookedRootModule, pairs: Sequence[Pair], interventions: Sequence[Intervention],
                      subspace: Subspace, **forward_kwargs: Any) -> tuple[Any, Graph]:
    """One forward of the base graphs of ``interventions`` as copies in one disjoint union,
    copy ``j`` with intervention ``j`` applied; returns ``(model output, the batch)`` (the output
    is whatever the model returns: a ``ModelOutput``, a tensor of a wrapped PyG model).

    Differentiable in the subspace (DAS trains through it); the source states come from one
    forward of the sources without gradient.
    """
    if not interventions:
        raise ValueError("no interventions to run")
    rounds = int(forward_kwargs.get("steps") or model.num_rounds)
    for i in interventions:
        if not 1 <= i.step <= rounds:
            raise ValueError(f"intervention {i}: step {i.step} is not a state after a round; the model runs rounds "
                             f"0 .. {rounds - 1}, so steps 1 .. {rounds} (state_hook(step))")
        _check_pair(*pairs[i.pair], i)
    hooks = {k: model.state_hook(k) for k in sorted({i.step for i in interventions})}
    off_nodes = {name: model.hook_dict[name].axis for name in hooks.values() if model.hook_dict[name].axis != "node"}
    if off_nodes:
        raise ValueError(f"interchange interventions swap rows of node states; the state hook points {off_nodes} are "
                         "not on the node axis")
    bases = disjoint_union([pairs[i.pair][0] for i in interventions])
    sources = disjoint_union([pairs[i.pair][1] for i in interventions])
    with torch.no_grad():
        _, cache = model.run_with_cache(sources, names_filter=list(hooks.values()), **forward_kwargs)
    rows = bases.ptr[:-1] + torch.tensor([i.node for i in interventions])
    steps = torch.tensor([i.step for i in interventions])

    def swap(k: int):  # noqa: ANN202 - a hook function
        at = rows[steps == k]

        def fn(act: Tensor, hook: Any) -> Tensor:
            src = cache[hooks[k]]
            if src.shape != act.shape:
                raise ValueError(f"{hooks[k]}: source run gave {list(src.shape)}, base run {list(act.shape)}")
            if act.ndim != 2 or act.shape[-1] != subspace.dim:
                raise ValueError(f"{hooks[k]} holds rows of shape {list(act.shape[1:])}; subspace {subspace.name!r} "
                                 f"swaps rows of width {subspace.dim}")
            return act.index_copy(0, at, subspace.swap(act[at], src[at].to(act)))
        return fn

    out = model.run_with_hooks(bases, fwd_hooks=[(name, swap(k)) for k, name in hooks.items()], **forward_kwargs)
    return out, bases


@dataclass
class IIAResult:
    """Per intervention: ``correct`` and ``informative`` ([m] bool) and ``steps`` ([m] long), for one
    hint and subspace; :meth:`by_step` tabulates them."""

    hint: str
    subspace: str
    steps: Tensor
    correct: Tensor
    informative: Tensor

    @property
    def iia(self) -> float:
        """IIA over every intervention."""
        return float(self.correct.double().mean())

    def by_step(self) -> list[dict[str, Any]]:
        """One row per step: ``n``, ``iia``, ``informative`` (count), ``iia_informative`` (IIA
        over those; NaN without any) and ``chance`` (the IIA of an intervention that changes
        nothing on a model that is right on the base graphs)."""
        rows = []
        for k in torch.unique(self.steps).tolist():
            at = self.steps == k
            c, inf = self.correct[at], self.informative[at]
            rows.append({"hint": self.hint, "step": int(k), "subspace": self.subspace, "n": int(at.sum()),
                         "iia": float(c.double().mean()), "informative": int(inf.sum()),
                         "iia_informative": float(c[inf].double().mean()) if inf.any() else float("nan"),
                         "chance": float((~inf).double().mean())})
        return rows


def interchange_accuracy(model: HookedRootModule, data: InterchangeData, subspace: Subspace, copies: int = 64,
                         **forward_kwargs: Any) -> IIAResult:
    """Run every intervention of ``data`` swapping ``subspace`` (``copies`` per forward) and
    score it against its counterfactual (module docstring).

    >>> from hookgnn import HookedGNN
    >>> from hookgnn.tasks import get_task
    >>> from hookgnn.causal.subspaces import whole_state
    >>> bf = get_task("bellman_ford")
    >>> _ = torch.manual_seed(0)
    >>> model = HookedGNN("mpnn", 8, node_in=2, edge_in=1, spec=bf.spec, max_steps=3)  # x: source flag and pos
    >>> pairs = task_pairs(bf, 4, seed=0, n=5, p=0.5)
    >>> data = interchange_data(bf, "d_h", pairs, random_interventions(pairs, [1, 2, 3], seed=0))
    >>> r = interchange_accuracy(model, data, whole_state(8))
    >>> [row["step"] for row in r.by_step()]
    [1, 2, 3]

    :param model: the hooked model (a :class:`~hookgnn.HookedGNN`, a ``from_layers`` stack or a wrapped PyG
        model); it is not modified.
    :param data: the interventions and their counterfactuals (:func:`interchange_data`).
    :param subspace: the part of the node state that is swapped.
    :param copies: interventions run in one batched forward.
    :param forward_kwargs: keywords for every forward of the model, e.g. ``steps=8``.
    """
    correct = []
    with torch.no_grad():
        for start, part in chunks(data.interventions, copies):
            out, batch = run_interventions(model, data.pairs, part, subspace, **forward_kwargs)
            cf = disjoint_union(data.counterfactuals[start:start + len(part)])
            ok = torch.ones(batch.num_nodes, dtype=torch.bool)
            for name in data.outputs:
                ok &= node_agreement(data.task.spec[name], out[name], cf[name], cf, data.tol)
            bad = torch.bincount(batch.batch[~ok], minlength=batch.num_graphs)
            correct.append(bad == 0)
    return IIAResult(data.hint, subspace.name, torch.tensor([i.step for i in data.interventions]),
                     torch.cat(correct), data.informative.clone())
