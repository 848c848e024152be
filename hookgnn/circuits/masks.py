"""Learned masks (Edge Pruning, Bhaskar et al. 2024, arXiv 2406.16778): one hard-concrete gate per unit.

Each unit :math:`u` of the universe (message edge, component, weight edge) gets a logit
:math:`\\theta_u` and a hard-concrete (L0) gate (Louizos et al. 2018)

.. math::

    s_u = \\sigma\\big((\\log v - \\log(1 - v) + \\theta_u) / \\beta\\big),\\ v \\sim U(0, 1), \\qquad
    z_u = \\min\\big(1, \\max(0, s_u (\\zeta - \\gamma) + \\gamma)\\big),

mixed into the run through hooks (:class:`~hookgnn.circuits.gates.Gated`: the same mechanics as
:func:`~hookgnn.circuits.circuit.evaluate`). The loss over all pairs at once (one disjoint union,
``samples`` gate draws per step as copies) is

.. math:: \\mathcal{L} = \\overline{\\max(0, 1 - \\tilde F(z))^2} + \\lambda \\frac{1}{|U|} \\sum_u
          \\sigma\\big(\\theta_u - \\beta \\log(-\\gamma / \\zeta)\\big),

:math:`\\tilde F` the relaxed faithfulness (a circuit beyond the full model costs nothing) and the second term the expected fraction of open
gates. Every ``check_every`` steps the deterministic circuit :math:`\\{u : \\theta_u > 0\\}` is
scored exactly (0/1 gates); the smallest one with faithfulness at least ``target`` is kept, then
pruned exactly (``prune=True``): each of its units is ablated alone (one batched forward), then,
walking them from the smallest faithfulness drop up (ties: smallest :math:`\\theta` first), a unit is
removed when the circuit without it, given the earlier removals, still reaches ``target`` (the batched walk of
:func:`~hookgnn.circuits.acdc`), so no single unit of the returned circuit can be dropped. This
removes units the relaxation kept open because they helped while other gates were half open
(a second-best Bellman-Ford walk). ``size=n``: the ``n`` units of largest :math:`\\theta` at the end. Its faithfulness is then
re-evaluated with :func:`~hookgnn.circuits.circuit.evaluate`.
"""

from __future__ import annotations

import math
import sys
import time
import warnings
from collections.abc import Sequence
from typing import Any

import torch
from tqdm.auto import tqdm

from hookgnn.circuits.circuit import Ablation, Circuit
from hookgnn.circuits.discover import Discovered, Pairs, as_pairs, exact_faithfulness, gated
from hookgnn.circuits.gates import Unit
from hookgnn.circuits.walk import prune_walk
from hookgnn.graph import Graph
from hookgnn.hooks import HookedRootModule
from hookgnn.metrics.per_graph import Metric, faithfulness
from hookgnn.patching.results import Direction, check_direction

__all__ = ["learn_mask"]

GAMMA, ZETA = -0.1, 1.1


def learn_mask(
    model: HookedRootModule,
    clean: Pairs,
    corrupted: Pairs,
    metric: Metric,
    universe: Sequence[Unit],
    *,
    target: float | None = None,
    size: int | None = None,
    steps: int = 300,
    lr: float = 0.2,
    sparsity: float = 4.0,
    samples: int = 4,
    beta: float = 2 / 3,
    init: float = 3.0,
    check_every: int = 10,
    patience: int | None = 5,
    prune: bool = True,
    direction: Direction,
    seed: int = 0,
    ablation: Ablation = "resample",
    dataset: Graph | None = None,
    copies: int = 64,
    progress: bool | None = None,
    **forward_kwargs: Any,
) -> Discovered:
    """Learn one hard-concrete gate per unit of ``universe``; return the smallest circuit that
    reaches faithfulness ``target`` (default 0.9), or, with ``size`` instead, the ``size`` units of
    largest logit.

    ``clean``/``corrupted``: one pair or sequences of pairs of one structure (one disjoint union,
    units gate every pair). ``direction`` (required): ``"noising"`` or ``"denoising"``, as in
    :func:`~hookgnn.circuits.acdc`. ``sparsity`` is :math:`\\lambda`; ``samples`` gate draws per step;
    ``seed`` seeds the draws. With ``target``, training stops early once a circuit smaller than the
    universe reaches it and ``patience`` checks in a row found none smaller (``None``: run every step). ``progress``: a tqdm bar (default: only when stderr is a terminal).
    Model weights are not trained (no gradient is taken for them). When no checkpoint reaches
    ``target`` the most faithful one is returned with a warning. See the module doc for the maths.

    >>> from hookgnn import HookedGNN
    >>> from hookgnn.metrics.per_graph import OutputSum
    >>> from hookgnn.patching.components import Component
    >>> from hookgnn.spec import FeatureSpec
    >>> torch.manual_seed(0) and None
    >>> model = HookedGNN("mpnn", 4, node_in=1, spec={"d": FeatureSpec("output", "node", "scalar")}, max_steps=1)
    >>> g = Graph(x=torch.randn(3, 1), edge_index=torch.tensor([[0, 1], [1, 2]]))
    >>> uni = [Component("hook_out.d", i) for i in range(3)]
    >>> found = learn_mask(model, g, g.replace(x=torch.randn(3, 1)), OutputSum("d"), uni, target=1.0, steps=20,
    ...                    direction="noising")
    >>> found.method, found.faithfulness >= 1.0 - 1e-6
    ('learn_mask', True)

    :param model: the hooked model (a :class:`~hookgnn.HookedGNN`, a ``from_layers`` stack or a wrapped PyG
        model); it is not modified.
    :param clean: the clean graph, or a sequence of clean graphs of one structure (the metric is the mean over
        pairs).
    :param corrupted: the corrupted graph(s), one per clean graph, with the same structure.
    :param metric: ``metric(output, graph)`` -> one value per graph (:mod:`hookgnn.metrics`), averaged over the
        batch.
    :param universe: every unit that can be ablated (components, messages, weight edges).
    :param target: the faithfulness the returned circuit must reach (default 0.9 when ``size`` is not given).
    :param size: instead of ``target``: return the ``size`` units of largest logit.
    :param steps: optimiser steps at most.
    :param lr: Adam learning rate of the gate logits.
    :param sparsity: :math:`\\lambda`, the weight of the expected number of open gates.
    :param samples: gate draws per step (run as copies).
    :param beta: :math:`\\beta`, the temperature of the hard-concrete gates.
    :param init: the initial logit :math:`\\theta_u` of every gate (positive: open).
    :param check_every: steps between exact evaluations of the deterministic circuit.
    :param patience: stop after this many checks in a row without a smaller circuit reaching ``target`` (``None``:
        run every step).
    :param prune: prune the best checkpoint's circuit exactly (smallest single drop first) while it keeps ``target``
        (only with ``target``).
    :param seed: seeds the gate draws.
    :param ablation: how units outside the circuit are ablated: ``"resample"`` (the other run's values),
        ``"zero"`` or ``"mean"`` (over ``dataset``).
    :param direction: ``"noising"`` (units outside the circuit take the corrupted values, the default) or
        ``"denoising"``.
    :param dataset: graphs whose mean activations ``"mean"`` ablation uses.
    :param copies: patched copies of the graph run in one batched forward (memory against speed; the results do
        not depend on it).
    :param progress: a tqdm bar (default: only when stderr is a terminal).
    :param forward_kwargs: keywords for every forward of the model, e.g. ``steps=8``.
    """
    if target is not None and size is not None:
        raise ValueError("give exactly one of target= (a faithfulness to reach) and size= (how many units to keep)")
    if size is None and target is None:
        target = 0.9
    if size is not None and not 0 <= size <= len(universe):
        raise ValueError(f"size must be in 0 .. {len(universe)} (the universe), got {size}")
    if steps < 1 or samples < 1 or check_every < 1:
        raise ValueError(f"steps, samples and check_every must be >= 1, got {steps}, {samples}, {check_every}")
    start = time.perf_counter()
    pairs = as_pairs(clean, corrupted)
    universe = list(universe)
    n = len(universe)
    run = gated(model, pairs, metric, universe, ablation, direction, dataset, copies, **forward_kwargs)
    with torch.no_grad():
        ends = run.metrics(torch.stack([torch.ones(n), torch.zeros(n)]))
    m_full, m_empty = float(ends[0]), float(ends[1])
    f_of = lambda m: faithfulness(m, m_full, m_empty)  # noqa: E731
    theta = torch.full((n,), float(init), requires_grad=True)
    opt = torch.optim.Adam([theta], lr=lr)
    gen = torch.Generator().manual_seed(seed)
    l0_shift = beta * math.log(-GAMMA / ZETA)
    params = [p for p in model.parameters() if p.requires_grad]
    for p in params:
        p.requires_grad_(False)
    best: tuple[int, float, frozenset[int]] | None = None
    top: tuple[float, frozenset[int]] | None = None
    stale = 0
    show = sys.stderr.isatty() if progress is None else progress
    try:
        bar = tqdm(range(steps), disable=not show, desc="learn_mask", leave=False)
        for step in bar:
            v = torch.rand(samples, n, generator=gen).clamp(1e-6, 1 - 1e-6)
            s = torch.sigmoid((torch.log(v) - torch.log1p(-v) + theta) / beta)
            z = (s * (ZETA - GAMMA) + GAMMA).clamp(0.0, 1.0)
            f = f_of(run.metrics(z))
            l0 = torch.sigmoid(theta - l0_shift).mean()
            loss = (torch.relu(1.0 - f) ** 2).mean() + sparsity * l0  # a circuit beyond the full model costs nothing
            opt.zero_grad()
            loss.backward()
            opt.step()
            if target is not None and ((step + 1) % check_every == 0 or step == steps - 1):
                keep = frozenset(int(i) for i in (theta.detach() > 0).nonzero().flatten())
                with torch.no_grad():
                    f_det = float(f_of(run.metrics(_gates(keep, n))))
                if f_det >= target and (best is None or len(keep) < best[0]):
                    best, stale = (len(keep), f_det, keep), 0
                elif best is not None and best[0] < n:  # the gates have started closing
                    stale += 1
                if top is None or f_det > top[0]:
                    top = (f_det, keep)
                bar.set_postfix(size=len(keep), faithfulness=f"{f_det:.3f}")
                if patience is not None and best is not None and stale >= patience:
                    break
    finally:
        for p in params:
            p.requires_grad_(True)
    order = torch.argsort(theta.detach(), descending=True, stable=True)
    pruned: list[Unit] = []
    if size is not None:
        keep = frozenset(int(i) for i in order[:size])
    elif best is not None:
        keep = best[2]
        if prune:  # exact pruning of the kept set, smallest single drop first: minimal given the kept set
            gates = _gates(keep, n)[0]
            rank = {int(i): r for r, i in enumerate(order.flip(0))}  # least open gate first among ties
            idx = sorted(keep, key=lambda i: rank[i])
            with torch.no_grad():
                rows = gates.repeat(len(idx), 1)
                rows[torch.arange(len(idx)), idx] = 0.0
                drop = [best[1] - float(f_of(m)) for m in run.metrics(rows)]
                walk = [universe[i] for _, _, i in sorted(zip(drop, range(len(idx)), idx))]
                pruned, _ = prune_walk(run, universe, gates, walk, m_full, m_empty, best[1],
                                       lambda new, cur: new >= target)  # type: ignore[operator]
            at = {u: i for i, u in enumerate(universe)}
            keep = keep - {at[u] for u in pruned}
    else:
        assert top is not None
        warnings.warn(f"learn_mask: no checkpoint reached faithfulness {target}; returning the most faithful "
                      f"({top[0]:.3f}); try more steps, a smaller sparsity or a lower target", stacklevel=2)
        keep = top[1]
    circuit = Circuit.of(universe[i] for i in sorted(keep))
    pruned_set = set(pruned)
    dropped = tuple(universe[int(i)] for i in order.flip(0)
                    if int(i) not in keep and universe[int(i)] not in pruned_set)
    dropped += tuple(pruned)  # pruned from the mask's circuit: the most nearly kept
    exact = exact_faithfulness(model, [c for c, _ in pairs], [c for _, c in pairs], metric, circuit, universe, ablation,
                               direction, dataset, **forward_kwargs)
    return Discovered(circuit, exact, "learn_mask", ablation, check_direction(direction), time.perf_counter() - start,
                      run.forwards + 3 * len(pairs), run.copies_run + 3 * len(pairs), n, dropped)


def _gates(keep: frozenset[int], n: int) -> torch.Tensor:
    g = torch.zeros(1, n)
    if keep:
        g[0, sorted(keep)] = 1.0
    return g
