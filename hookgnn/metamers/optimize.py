"""Metamers: graphs that a model cannot tell apart from a reference at chosen hooks.

For a model with hook activations :math:`h_k`, a reference graph :math:`G` and hooks
:math:`K`, a metamer is a valid graph :math:`G'` (same number of nodes) with

.. math::

    \\max_{k \\in K} D_k(G', G) \\le \\mathrm{tol}, \\qquad
    D_k(G', G) = \\frac{\\lVert h_k(G') - h_k(G) \\rVert^2}{\\lVert h_k(G) \\rVert^2}

(rows matched one to one, see :mod:`hookgnn.metamers.activations`). :func:`metamer`
finds ``num`` of them at once, in one disjoint-union batch, by minimising
:math:`\\sum_j \\log \\sum_{k} D_k(G'_j, G)` with Adam over the parametrised search space
(:mod:`~hookgnn.metamers.constraints`, :mod:`~hookgnn.metamers.relax`), starting from
:mod:`~hookgnn.metamers.starts`. The model is only run through its hooks, so any
:class:`~hookgnn.hooks.HookedRootModule` whose forward maps a ``Graph`` to an output
works (pass ``forward`` when it needs more arguments, e.g. ``steps``). The model's
parameters and their ``.grad`` are never touched.

A metamer that reaches the tolerance is frozen while the others go on; one that stops
improving (its learning rate has halved 14 times without a 1% gain: a local minimum)
is frozen too, and returned at its best step, as are those still running at
``max_steps``. The distances of the result are measured again by a
plain forward on the returned (valid) graphs.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from jaxtyping import Bool, Float, Int
from torch import Tensor
from tqdm.auto import tqdm

from hookgnn.graph import Graph
from hookgnn.hooks import HookedRootModule
from hookgnn.metamers.adam import RowAdam
from hookgnn.metamers.activations import Forward, HookNames, Targets, capture, hook_names
from hookgnn.metamers.constraints import Constraints, Free, OneHot, column_blocks
from hookgnn.metamers.relax import EdgeSpace, MessageSite, find_sites, relaxation_hooks
from hookgnn.metamers.space import SearchSpace
from hookgnn.metamers.starts import Start, start_graphs


@dataclass
class MetamerResult:
    """What :func:`metamer` returns.

    Attributes:
        graphs: the ``num`` metamers, a ``Graph`` batch (valid graphs, no fields).
        starts: the ``num`` start graphs.
        distance: ``[num]`` :math:`\\max_k D_k` of each returned graph (a plain forward).
        hook_distances: :math:`D_k` ``[num]`` per hook, same forward.
        converged: ``[num]`` whether ``distance <= tol``.
        steps: ``[num]`` the first step at which each reached ``tol`` (-1: never).
        trace: ``[steps run, num]`` :math:`\\max_k D_k` at every step, of the graph that
            step ran (the straight-through forward sees valid graphs only).
        hooks, tol: what was asked.
        restarts: ``[num]`` how many times each metamer started again from fresh noise
            (``starts`` holds its last start).
    """

    graphs: Graph
    starts: Graph
    distance: Float[Tensor, " num"]
    hook_distances: dict[str, Tensor]
    converged: Bool[Tensor, " num"]
    steps: Int[Tensor, " num"]
    trace: Float[Tensor, "step num"]
    hooks: list[str]
    tol: float
    restarts: Int[Tensor, " num"]

    def graph(self, i: int = 0) -> Graph:
        """Metamer ``i`` as a single graph."""
        return self.graphs.graph(i)

    def __repr__(self) -> str:
        return (f"MetamerResult(num={self.graphs.num_graphs}, converged={int(self.converged.sum())}, "
                f"distance max={float(self.distance.max()):.3g}, steps run={self.trace.shape[0]}, tol={self.tol})")


def metamer(
    model: HookedRootModule,
    reference: Graph,
    hooks: HookNames,
    *,
    start: Start = "noise",
    num: int = 1,
    features: Constraints = Free(),
    edge_features: Constraints = None,
    structure: EdgeSpace | None = None,
    fixed_nodes: Sequence[int] = (),
    tol: float = 1e-3,
    max_steps: int = 2000,
    lr: float = 0.05,
    seed: int = 0,
    forward: Forward | None = None,
    sites: Sequence[MessageSite] | None = None,
    restarts: int = 0,
    progress: bool = False,
) -> MetamerResult:
    """Optimise ``num`` graphs until their activations at ``hooks`` match the reference's.

    >>> from hookgnn import HookedGNN
    >>> _ = torch.manual_seed(0); model = HookedGNN("mpnn", 8, node_in=2, max_steps=2)
    >>> ref = Graph(x=torch.randn(4, 2), edge_index=torch.tensor([[0, 1, 2, 3], [1, 2, 3, 0]]))
    >>> res = metamer(model, ref, "layers.0.hook_update", num=2, tol=1e-3)
    >>> bool(res.converged.all()), res.graphs.num_graphs
    (True, 2)

    :param model: any :class:`HookedRootModule`; ``forward(graph)`` runs it (default ``model(graph)``).
    :param reference: one graph.
    :param hooks: hook names (or a predicate); node-, edge- or graph-axis hooks of any round.
    :param start: ``"noise"``, ``"permuted"`` or a ``Graph`` (see :mod:`~hookgnn.metamers.starts`).
    :param num: how many metamers to optimise (one batch).
    :param features: constraints on node feature blocks (:class:`Free`, :class:`Box`, :class:`OneHot`); ``None``
        keeps node features fixed.
    :param edge_features: the same for ``edge_attr`` (default: fixed).
    :param structure: optimise the edge set too (:class:`EdgeSpace`); only node- and graph-axis hooks can then
        be compared.
    :param fixed_nodes: nodes whose features are not optimised.
    :param tol: stop a metamer when :math:`\\max_k D_k \\le` ``tol``.
    :param max_steps: Adam steps at most.
    :param lr: Adam learning rate.
    :param seed: seed of the starts.
    :param forward: runs the model on a graph (default ``model(graph)``).
    :param sites: the message/aggregation hooks a structure search relaxes (default: every
        :class:`~hookgnn.nn.HookedMessagePassing` layer, :func:`find_sites`).
    :param restarts: a metamer stuck in a local minimum starts again from fresh noise, up to this many times
        (``start="noise"`` only); it keeps its best graph.
    :param progress: show a progress bar.
    """
    forward = model if forward is None else forward
    names = hook_names(model, hooks)
    _check_numbers(tol, max_steps, lr, num)
    if not isinstance(restarts, int) or restarts < 0:
        raise ValueError(f"restarts must be an int >= 0, got {restarts!r}")
    if restarts and not (isinstance(start, str) and start == "noise"):
        raise ValueError("restarts draw fresh noise starts, so they need start='noise'")
    if not isinstance(reference, Graph) or reference.num_graphs != 1 or reference.num_nodes == 0:
        got = type(reference).__name__ if not isinstance(reference, Graph) else f"{reference.num_graphs} graphs"
        raise ValueError(f"reference must be one non-empty Graph, got {got}")
    n = reference.num_nodes
    node_blocks = column_blocks(features, reference.x.shape[1], "x")
    if edge_features is not None and reference.edge_attr is None:
        raise ValueError("edge_features given but the reference has no edge_attr")
    edge_width = 0 if reference.edge_attr is None else reference.edge_attr.shape[1]
    edge_blocks = column_blocks(edge_features, edge_width, "edge_attr")
    if any(isinstance(c, OneHot) and c.over == "nodes" for c, _, _ in edge_blocks):
        raise ValueError("OneHot(over='nodes') applies to node features, not edge_attr")
    fixed = _fixed_nodes(fixed_nodes, n)
    if fixed.numel() and any(isinstance(c, OneHot) and c.over == "nodes" for c, _, _ in node_blocks):
        raise ValueError("fixed_nodes cannot be combined with OneHot(over='nodes'): "
                         "the hot node is shared by all nodes")
    if not node_blocks and not edge_blocks and structure is None:
        raise ValueError("nothing to optimise: features, edge_features and structure are all fixed")
    axes = {k: model.hook_dict[k].axis for k in names}
    if structure is not None:
        edge_hooks = [k for k, a in axes.items() if a not in ("node", "graph")]
        if edge_hooks:
            raise ValueError(f"with a structure search the edge sets differ, so only node- and graph-axis hooks can be "
                             f"compared; {edge_hooks} are on {sorted({axes[k] for k in edge_hooks})} axes")
        sites = find_sites(model) if sites is None else list(sites)
        for s in sites:
            hook_names(model, [s.message, s.aggregation])
    generator = torch.Generator().manual_seed(seed)
    random_edges = generator if (structure is not None and isinstance(start, str) and start == "noise") else None

    def draw() -> SearchSpace:
        starts = start_graphs(reference, start, num, generator, node_blocks, edge_blocks, fixed).to(reference.device)
        if structure is None and any(a != "node" and a != "graph" for a in axes.values()):
            _check_same_edges(reference, starts)
        return SearchSpace(starts, n, node_blocks, edge_blocks, fixed, structure, sites or (), random_edges)

    space = draw()
    targets = Targets.of(model, forward, reference, names)
    if structure is not None:
        verify_relaxation(model, forward, names, space, generator)
    return _optimise(model, forward, targets, space, tol, max_steps, lr, progress, draw if restarts else None,
                     restarts)


def _check_numbers(tol: float, max_steps: int, lr: float, num: int) -> None:
    if not (isinstance(tol, (int, float)) and math.isfinite(tol) and tol > 0):
        raise ValueError(f"tol must be a finite number > 0, got {tol!r}")
    for name, value in (("max_steps", max_steps), ("num", num)):
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise ValueError(f"{name} must be an int >= 1, got {value!r}")
    if not (isinstance(lr, (int, float)) and math.isfinite(lr) and lr > 0):
        raise ValueError(f"lr must be a finite number > 0, got {lr!r}")


def _fixed_nodes(fixed_nodes: Sequence[int], n: int) -> Tensor:
    fixed = torch.as_tensor(list(fixed_nodes), dtype=torch.long)
    if fixed.numel() and (int(fixed.min()) < 0 or int(fixed.max()) >= n):
        raise ValueError(f"fixed_nodes {fixed.tolist()} must lie in [0, {n}) (the reference's nodes)")
    if fixed.unique().numel() != fixed.numel():
        raise ValueError(f"fixed_nodes {fixed.tolist()} repeat a node")
    return fixed


def _check_same_edges(reference: Graph, starts: Graph) -> None:
    for j, g in enumerate(starts.split()):
        if g.edge_index.shape != reference.edge_index.shape or not bool((g.edge_index == reference.edge_index).all()):
            raise ValueError(f"edge-axis hooks compare edge e with reference edge e, but start graph {j} has other "
                             "edges (a permuted or other start); use node- or graph-axis hooks")


def verify_relaxation(
    model: HookedRootModule, forward: Forward, hooks: Sequence[str], space: SearchSpace, generator: torch.Generator
) -> None:
    """Check that the relaxed forward equals plain forwards on the hard graphs.

    On the first metamer's candidates, two edge sets are tried: its start and a random
    half of the candidates. Raises a ``ValueError`` naming the hook that differs (the
    model reads the edge set beyond the relaxed aggregations).
    """
    assert space.gates is not None
    batch, _ = space.forward_graph()
    graph = batch.graph(0)
    graph = graph.replace(x=graph.x.detach(), edge_attr=None if graph.edge_attr is None else graph.edge_attr.detach())
    start = space.gates.masks()
    random = (torch.rand(start.shape[1], generator=generator) < 0.5).to(start.device) | space.gates.keep
    for mask, what in ((start[0], "the start edge set"), (random, "a random edge set")):
        gate = mask.to(graph.x.dtype).to(graph.device)
        masks = start.clone()
        masks[0] = mask
        with torch.no_grad():
            relax = relaxation_hooks(space.sites, gate, graph.edge_index[1], graph.num_nodes)
            relaxed = capture(model, forward, graph, hooks, relax, stop_early=True)
            plain = capture(model, forward, space.hard_graph(masks).graph(0), hooks, stop_early=True)
        for k in hooks:
            err = float((relaxed[k] - plain[k]).abs().max()) if plain[k].numel() else 0.0
            if err > 1e-4 * (1.0 + float(plain[k].abs().max())):
                raise ValueError(f"structure relaxation is not exact for this model at {k!r} on {what} (max error "
                                 f"{err:.3g}): the edge set must enter each round only through the aggregation of "
                                 "the relaxed sites' messages")


def _optimise(model: HookedRootModule, forward: Forward, targets: Targets, space: SearchSpace, tol: float,
              max_steps: int, lr: float, progress: bool, draw: Callable[[], SearchSpace] | None,
              restarts: int) -> MetamerResult:
    params = space.params()
    tensors = [p for p, _ in params]
    opt = RowAdam(params, lr, space.num)
    num = space.num
    best = [p.detach().clone() for p in tensors]
    best_d = torch.full((num,), math.inf)
    first = torch.full((num,), -1, dtype=torch.long)
    left = torch.full((num,), restarts)
    trace: list[Tensor] = []
    starts = space.hard_graph().split()
    bar = tqdm(range(max_steps), disable=not progress, desc="metamer", leave=False)
    for step in bar:
        graph, relax = space.forward_graph()
        per_hook = targets.distances(capture(model, forward, graph, targets.hooks, relax, stop_early=True), graph)
        stacked = torch.stack(list(per_hook.values()))  # [hook, num]
        d = stacked.detach().max(0).values.cpu()
        if not bool(torch.isfinite(d).all()):
            raise FloatingPointError(f"activation distance became {d.tolist()} at step {step}; lower lr")
        trace.append(d)
        done = first >= 0
        better = (d < best_d) & ~done
        _copy_rows(best, tensors, params, better)
        best_d = torch.where(better, d, best_d)
        first = torch.where(~done & (d <= tol), torch.tensor(step), first)
        bar.set_postfix(max_distance=f"{float(d.max()):.2e}", converged=f"{int((first >= 0).sum())}/{num}",
                        refresh=False)
        opt.observe(d)
        retry = opt.exhausted & (first < 0) & (left > 0)
        if draw is not None and bool(retry.any()):  # fresh noise for metamers in a local minimum
            fresh = draw()
            _copy_rows(tensors, [p for p, _ in fresh.params()], params, retry)
            opt.reset(retry)
            left -= retry.long()
            new_starts = fresh.hard_graph().split()
            starts = [new_starts[j] if bool(retry[j]) else s for j, s in enumerate(starts)]
        frozen = (first >= 0) | opt.exhausted
        if bool(frozen.all()):
            break
        loss = (stacked.sum(0).clamp_min(1e-30).log() * (~frozen).to(stacked.device)).sum()
        opt.step(torch.autograd.grad(loss, tensors, allow_unused=True))  # never into the model's .grad
        space.project_()
        _copy_rows(tensors, best, params, frozen)  # finished metamers stay at their best
    _copy_rows(tensors, best, params, torch.ones(num, dtype=torch.bool))
    graphs = space.hard_graph()
    with torch.no_grad():
        final = targets.distances(capture(model, forward, graphs, targets.hooks), graphs)
    final = {k: v.detach().cpu() for k, v in final.items()}
    distance = torch.stack(list(final.values())).max(0).values
    return MetamerResult(graphs, Graph.collate(starts), distance, final, distance <= tol, first, torch.stack(trace),
                         targets.hooks, tol, restarts - left)


def _copy_rows(dst: Sequence[Tensor], src: Sequence[Tensor], params: Sequence[tuple[Tensor, Tensor]],
               which: Tensor) -> None:
    """``dst[i][rows] = src[i][rows]`` for the rows owned by the metamers in ``which``."""
    if not bool(which.any()):
        return
    with torch.no_grad():
        for d, s, (_, owner) in zip(dst, src, params):
            rows = which.to(owner.device)[owner]
            d[rows] = s[rows]
