"""Circuit discovery that sees AND/OR structure: iterative exact pruning and a redundancy report.

* :func:`acdc`: iterative exact pruning (ACDC, Conmy et al. 2023) over a universe of message
  edges, components and weight edges: walking the units from the output back, a unit is
  removed when, given everything already removed, the faithfulness moves by at most
  ``threshold`` (and stays at least ``target``). Candidates are evaluated in batches of
  disjoint-union copies (copy :math:`j` removes the next :math:`j` units at once), which
  gives exactly the decisions of the one-at-a-time walk.
* :func:`~hookgnn.circuits.masks.learn_mask` (in :mod:`hookgnn.circuits.masks`): learned
  hard-concrete gates (Edge Pruning).
* :func:`redundancy`: which units are individually unnecessary but jointly necessary (OR
  groups), by exact joint ablations of pairs (triples, and larger groups of few candidates).

Both discovery methods return a :class:`Discovered` whose ``faithfulness`` is re-evaluated
exactly with :func:`~hookgnn.circuits.circuit.evaluate` (never the relaxed objective):

.. math:: F(C) = \\frac{m(C) - m(\\varnothing)}{m(U) - m(\\varnothing)}

with :math:`m` the metric averaged over the pairs. ``direction="noising"``: the clean run with
every unit outside :math:`C` ablated (``evaluate(model, clean, corrupted, metric, C, U)``);
``"denoising"``: the corrupted run with the units *of* :math:`C` patched from the clean run
(``evaluate(model, corrupted, clean, metric, U \\ C, U)``, resample only). Targets are always the
clean graph's (:mod:`hookgnn.metrics.targets`).
"""

from __future__ import annotations

import itertools
import math
import time
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch

from hookgnn.circuits.circuit import Ablation, Circuit, evaluate
from hookgnn.circuits.gates import Gated, Unit
from hookgnn.circuits.walk import prune_walk
from hookgnn.graph import Graph
from hookgnn.hooks import HookedRootModule
from hookgnn.metrics.per_graph import Metric, faithfulness
from hookgnn.metrics.targets import clean_targets
from hookgnn.patching.activation import check_same_structure
from hookgnn.patching.components import Component, MessageEdge
from hookgnn.patching.copies import disjoint_union
from hookgnn.patching.results import Direction, check_direction

__all__ = ["Discovered", "Redundancy", "acdc", "exact_faithfulness", "redundancy"]

Pairs = Graph | Sequence[Graph]
#: The most groups of one size above 3 that :func:`redundancy` ablates.
MAX_GROUPS = 4096


@dataclass(frozen=True)
class Discovered:
    """A discovered circuit and what it cost.

    ``faithfulness``: :math:`F(C)` re-evaluated exactly with
    :func:`~hookgnn.circuits.circuit.evaluate`; ``method``: ``"acdc"`` or ``"learn_mask"``;
    ``seconds`` and ``forwards`` (model calls; a batch of copies is one) / ``copies`` (graph copies
    run) the cost of the search, the exact re-evaluation included; ``dropped``: the units left out,
    most nearly kept last (ACDC: removal order; masks: by final gate logit), from which
    :func:`redundancy` takes its default candidates.

    >>> found = Discovered(Circuit.of([Component("hook_out.d", 0)]), 1.0, "acdc", "resample", "noising",
    ...                    seconds=0.1, forwards=3, copies=5, universe_size=3)
    >>> found.size, found.faithfulness
    (1, 1.0)

    :param circuit: the circuit found.
    :param faithfulness: its faithfulness :math:`F(C)`, evaluated exactly.
    :param method: the search that found it: ``"acdc"`` or ``"learn_mask"``.
    :param ablation: how units outside it were ablated.
    :param direction: the patching direction of the ablations.
    :param seconds: wall time of the search, the exact re-evaluation included.
    :param forwards: model calls of the search (a batch of copies is one).
    :param copies: graph copies run by the search.
    :param universe_size: the number of units searched over.
    :param dropped: the units left out, most nearly kept last.
    """

    circuit: Circuit
    faithfulness: float
    method: str
    ablation: Ablation
    direction: Direction
    seconds: float
    forwards: int
    copies: int
    universe_size: int
    dropped: tuple[Unit, ...] = ()

    @property
    def size(self) -> int:
        """Number of units in the circuit."""
        return len(self.circuit)

    def __str__(self) -> str:
        return (f"{self.method}: {self.size} of {self.universe_size} units, faithfulness {self.faithfulness:.3f} "
                f"({self.direction}, {self.ablation}); {self.seconds:.2f} s, {self.forwards} forwards")


class _Pinned:
    """A metric bound to the clean graph's targets that :func:`evaluate` cannot re-bind to its base graph."""

    def __init__(self, metric: Metric, clean: Graph) -> None:
        self.bound = clean_targets(metric, clean)

    def __call__(self, out: object, graph: Graph) -> torch.Tensor:
        return self.bound(out, graph)


def as_pairs(clean: Pairs, corrupted: Pairs) -> list[tuple[Graph, Graph]]:
    """The (clean, corrupted) pairs of one structure, checked: a graph each, or equal-length sequences."""
    cl = [clean] if isinstance(clean, Graph) else list(clean)
    co = [corrupted] if isinstance(corrupted, Graph) else list(corrupted)
    if not cl or len(cl) != len(co):
        raise ValueError(f"clean and corrupted must be one graph each or sequences of equal length, got {len(cl)} "
                         f"and {len(co)}")
    for a, b in zip(cl, co):
        check_same_structure(cl[0], a)
        check_same_structure(a, b)
    return list(zip(cl, co))


def gated(
    model: HookedRootModule, pairs: list[tuple[Graph, Graph]], metric: Metric, units: Sequence[Unit],
    ablation: Ablation, direction: Direction, dataset: Graph | None, copies: int, **forward_kwargs: Any,
) -> Gated:
    """The :class:`~hookgnn.circuits.gates.Gated` runner over the disjoint union of the pairs
    (units are one pair's rows, gated in every pair)."""
    clean = disjoint_union([c for c, _ in pairs])
    corrupted = disjoint_union([c for _, c in pairs])
    base, source = (clean, corrupted) if check_direction(direction) == "noising" else (corrupted, clean)
    return Gated(model, base, source, clean_targets(metric, clean), units, ablation, direction, dataset, copies,
                 **forward_kwargs)


def exact_faithfulness(
    model: HookedRootModule, clean: Pairs, corrupted: Pairs, metric: Metric, circuit: Circuit,
    universe: Sequence[Unit], ablation: Ablation = "resample", direction: Direction = "noising",
    dataset: Graph | None = None, **forward_kwargs: Any,
) -> float:
    """:math:`F(C)` of the module doc, from :func:`~hookgnn.circuits.circuit.evaluate` pair by pair.

    >>> from hookgnn import HookedGNN
    >>> from hookgnn.metrics.per_graph import OutputSum
    >>> from hookgnn.spec import FeatureSpec
    >>> model = HookedGNN("mpnn", 4, node_in=1, spec={"d": FeatureSpec("output", "node", "scalar")}, max_steps=1)
    >>> g = Graph(x=torch.randn(3, 1), edge_index=torch.tensor([[0, 1], [1, 2]]))
    >>> uni = [Component("hook_out.d", i) for i in range(3)]
    >>> exact_faithfulness(model, g, g.replace(x=torch.randn(3, 1)), OutputSum("d"), Circuit.of(uni), uni)
    1.0

    :param model: the hooked model (a :class:`~hookgnn.HookedGNN`, a ``from_layers`` stack or a wrapped PyG
        model); it is not modified.
    :param clean: the clean graph, or a sequence of clean graphs of one structure (the metric is the mean over
        pairs).
    :param corrupted: the corrupted graph(s), one per clean graph, with the same structure.
    :param metric: ``metric(output, graph)`` -> one value per graph (:mod:`hookgnn.metrics`), averaged over the
        batch.
    :param circuit: the units kept.
    :param universe: every unit that can be ablated (components, messages, weight edges).
    :param ablation: how units outside the circuit are ablated: ``"resample"`` (the other run's values),
        ``"zero"`` or ``"mean"`` (over ``dataset``).
    :param direction: ``"noising"`` (units outside the circuit take the corrupted values, the default) or
        ``"denoising"``.
    :param dataset: graphs whose mean activations ``"mean"`` ablation uses.
    :param forward_kwargs: keywords for every forward of the model, e.g. ``steps=8``.
    """
    pairs = as_pairs(clean, corrupted)
    universe = list(universe)
    check_direction(direction)
    if direction == "denoising" and ablation != "resample":
        raise ValueError(f"direction='denoising' needs ablation='resample', got {ablation!r}")

    def m(c: Circuit) -> float:
        vals = []
        for cl, co in pairs:
            pinned = _Pinned(metric, cl)
            if direction == "noising":
                vals.append(evaluate(model, cl, co, pinned, c, universe, ablation, dataset, **forward_kwargs))
            else:
                rest = Circuit.of(u for u in universe if u not in c)
                vals.append(evaluate(model, co, cl, pinned, rest, universe, "resample", dataset, **forward_kwargs))
        return sum(vals) / len(vals)

    return float(faithfulness(m(circuit), m(Circuit.of(universe)), m(Circuit())))


def output_first(units: Sequence[Unit], model: HookedRootModule) -> list[Unit]:
    """Units ordered from the output back: later rounds first (message and weight edges carry a
    round; components and hand-drawn edges without one go last), then as given."""
    def rnd(u: Unit) -> int:
        r = getattr(u, "round", None)
        return -1 if r is None else r
    return sorted(units, key=lambda u: -rnd(u))


def acdc(
    model: HookedRootModule,
    clean: Pairs,
    corrupted: Pairs,
    metric: Metric,
    universe: Sequence[Unit],
    *,
    threshold: float = 0.01,
    target: float | None = None,
    direction: Direction,
    order: Sequence[Unit] | None = None,
    ablation: Ablation = "resample",
    dataset: Graph | None = None,
    copies: int = 64,
    **forward_kwargs: Any,
) -> Discovered:
    """Iterative exact pruning: remove each unit whose removal, given all earlier removals, moves
    the faithfulness by at most ``threshold`` (and, with ``target``, keeps it at least ``target``).

    Units are walked in ``order`` (default: from the output back, :func:`output_first`). Let
    :math:`C_0 = U`. For the next unit :math:`u`, :math:`C \\leftarrow C \\setminus \\{u\\}` when
    :math:`|F(C \\setminus \\{u\\}) - F(C)| \\le` ``threshold`` (and :math:`F(C \\setminus \\{u\\}) \\ge`
    ``target``). The walk is batched: copy :math:`j` of a forward removes the next :math:`j` units
    at once; the decisions up to the first rejected unit are the one-at-a-time walk's, the
    copies after it are run again from there. ``clean``/``corrupted``: one pair, or sequences of
    pairs of one structure (units gate every pair; the metric is the mean over pairs).
    ``direction`` (required: ``"noising"`` or ``"denoising"``, see the module doc) says which
    run the circuit is kept in.

    >>> from hookgnn import HookedGNN
    >>> from hookgnn.metrics.per_graph import OutputSum
    >>> from hookgnn.spec import FeatureSpec
    >>> model = HookedGNN("mpnn", 4, node_in=1, spec={"d": FeatureSpec("output", "node", "scalar")}, max_steps=1)
    >>> g = Graph(x=torch.randn(3, 1), edge_index=torch.tensor([[0, 1], [1, 2]]))
    >>> uni = [Component("hook_out.d", i) for i in range(3)]
    >>> found = acdc(model, g, g.replace(x=torch.randn(3, 1)), OutputSum("d"), uni, threshold=0.0,
    ...              direction="noising")
    >>> found.size, found.faithfulness
    (3, 1.0)

    :param model: the hooked model (a :class:`~hookgnn.HookedGNN`, a ``from_layers`` stack or a wrapped PyG
        model); it is not modified.
    :param clean: the clean graph, or a sequence of clean graphs of one structure (the metric is the mean over
        pairs).
    :param corrupted: the corrupted graph(s), one per clean graph, with the same structure.
    :param metric: ``metric(output, graph)`` -> one value per graph (:mod:`hookgnn.metrics`), averaged over the
        batch.
    :param universe: every unit that can be ablated (components, messages, weight edges).
    :param threshold: the largest faithfulness change a removal may cause.
    :param target: a faithfulness the circuit must keep (``None``: no floor).
    :param order: the order units are tried in (default: from the output back, ``output_first``).
    :param ablation: how units outside the circuit are ablated: ``"resample"`` (the other run's values),
        ``"zero"`` or ``"mean"`` (over ``dataset``).
    :param direction: ``"noising"`` (units outside the circuit take the corrupted values, the default) or
        ``"denoising"``.
    :param dataset: graphs whose mean activations ``"mean"`` ablation uses.
    :param copies: patched copies of the graph run in one batched forward (memory against speed; the results do
        not depend on it).
    :param forward_kwargs: keywords for every forward of the model, e.g. ``steps=8``.
    """
    start = time.perf_counter()
    pairs = as_pairs(clean, corrupted)
    universe = list(universe)
    walk = output_first(universe, model) if order is None else list(order)
    if len(walk) != len(universe) or set(walk) != set(universe):
        raise ValueError("order must list every unit of the universe exactly once")
    if threshold < 0:
        raise ValueError(f"threshold must be >= 0, got {threshold}")
    run = gated(model, pairs, metric, universe, ablation, direction, dataset, copies, **forward_kwargs)
    ends = run.metrics(torch.stack([torch.ones(len(universe)), torch.zeros(len(universe))]))
    gates = torch.ones(len(universe))
    removed, _ = prune_walk(run, universe, gates, walk, float(ends[0]), float(ends[1]), 1.0,
                            lambda new, cur: abs(new - cur) <= threshold and (target is None or new >= target))
    pos = {u: i for i, u in enumerate(universe)}
    kept = [u for u in universe if gates[pos[u]] > 0]
    circuit = Circuit.of(kept)
    exact = exact_faithfulness(model, [c for c, _ in pairs], [c for _, c in pairs], metric, circuit, universe, ablation,
                               direction, dataset, **forward_kwargs)
    forwards = run.forwards + 3 * len(pairs)
    return Discovered(circuit, exact, "acdc", ablation, check_direction(direction), time.perf_counter() - start,
                      forwards, run.copies_run + 3 * len(pairs), len(universe), tuple(removed))


@dataclass(frozen=True)
class Redundancy:
    """OR groups: sets of units each individually unnecessary but jointly necessary.

    ``single[u]``: the faithfulness drop :math:`F(K) - F(K \\setminus \\{u\\})` of each candidate
    alone, from the kept set :math:`K`; ``groups``: minimal sets (pairs, then triples) whose
    members each drop at most ``tol`` alone but together drop at least ``threshold``, with
    their joint drop in ``drops``.
    """

    groups: tuple[tuple[Unit, ...], ...]
    drops: tuple[float, ...]
    single: dict[Unit, float]
    forwards: int

    def members(self) -> set[Unit]:
        """Every unit named by a group."""
        return {u for g in self.groups for u in g}


def redundancy(
    model: HookedRootModule,
    clean: Pairs,
    corrupted: Pairs,
    metric: Metric,
    universe: Sequence[Unit],
    found: Discovered | Circuit,
    *,
    candidates: Sequence[Unit] | None = None,
    max_group: int = 2,
    max_candidates: int = 64,
    tol: float = 0.05,
    threshold: float = 0.5,
    ablation: Ablation | None = None,
    direction: Direction | None = None,
    dataset: Graph | None = None,
    copies: int = 64,
    **forward_kwargs: Any,
) -> Redundancy:
    """Which units are individually unnecessary but jointly necessary, by exact joint ablations.

    The kept set is :math:`K = C \\cup` ``candidates`` (``C`` the found circuit). Default
    candidates: the circuit's units and as many of ``found.dropped``'s last (most nearly kept)
    units, at most 32 (from the mask's final gates or the pruning order); give them to look
    elsewhere. Every candidate is ablated alone from :math:`K`; those dropping :math:`F` by at
    most ``tol`` (the first ``max_candidates`` of them, with a warning when there are more) are
    ablated in every pair (and triple, ``max_group=3``; up to ``max_group`` units, sizes above 3 only
    while a size has at most ``MAX_GROUPS`` groups) at once, all copies of a few batched forwards; a
    group dropping :math:`F` by at least ``threshold`` whose subsets do not is reported. Denoising, an
    OR of two 2-message paths is a group of 4: un-patching one message of a patched path is undone by
    its other patched message, so only both paths' messages together break it (``max_group=4``). ``ablation`` and ``direction`` default to ``found``'s.

    >>> from hookgnn import HookedGNN
    >>> from hookgnn.metrics.per_graph import OutputSum
    >>> from hookgnn.spec import FeatureSpec
    >>> model = HookedGNN("mpnn", 4, node_in=1, spec={"d": FeatureSpec("output", "node", "scalar")}, max_steps=1)
    >>> g = Graph(x=torch.randn(3, 1), edge_index=torch.tensor([[0, 1], [1, 2]]))
    >>> uni = [Component("hook_out.d", i) for i in range(3)]
    >>> redundancy(model, g, g.replace(x=torch.randn(3, 1)), OutputSum("d"), uni, Circuit.of(uni), ablation="resample",
    ...            direction="noising").groups  # output rows add up: nothing is redundant
    ()

    :param model: the hooked model (a :class:`~hookgnn.HookedGNN`, a ``from_layers`` stack or a wrapped PyG
        model); it is not modified.
    :param clean: the clean graph, or a sequence of clean graphs of one structure (the metric is the mean over
        pairs).
    :param corrupted: the corrupted graph(s), one per clean graph, with the same structure.
    :param metric: ``metric(output, graph)`` -> one value per graph (:mod:`hookgnn.metrics`), averaged over the
        batch.
    :param universe: every unit that can be ablated (components, messages, weight edges).
    :param found: the circuit found (a :class:`Discovered` or a :class:`~hookgnn.circuits.Circuit`).
    :param candidates: units to test (default: the circuit's and up to 32 of ``found.dropped``'s last).
    :param max_group: largest group ablated at once: 2 (pairs), 3 (triples) or more (sizes above 3 only while the
        individually unnecessary candidates make at most ``MAX_GROUPS`` groups of that size; a warning says when not).
    :param max_candidates: at most this many individually unnecessary candidates are grouped (a warning says when
        more).
    :param tol: a candidate is individually unnecessary when ablating it alone drops :math:`F` by at most this.
    :param threshold: a group is jointly necessary when ablating it drops :math:`F` by at least this.
    :param ablation: as in :func:`acdc` (default: ``found``'s).
    :param direction: as in :func:`acdc` (default: ``found``'s).
    :param dataset: graphs whose mean activations ``"mean"`` ablation uses.
    :param copies: patched copies of the graph run in one batched forward (memory against speed; the results do
        not depend on it).
    :param forward_kwargs: keywords for every forward of the model, e.g. ``steps=8``.
    """
    if max_group < 2:
        raise ValueError(f"max_group must be >= 2 (the smallest OR group is a pair), got {max_group}")
    circuit = found.circuit if isinstance(found, Discovered) else found
    if isinstance(found, Discovered):
        ablation = found.ablation if ablation is None else ablation
        direction = found.direction if direction is None else direction
    if ablation is None or direction is None:
        raise ValueError("with a Circuit (not a Discovered), give ablation= and direction=")
    universe = list(universe)
    if candidates is None:
        dropped = list(found.dropped) if isinstance(found, Discovered) else []
        extra = dropped[::-1][:min(32, max(len(circuit), 8))]
        candidates = sorted(circuit.items(), key=repr) + extra
    candidates = list(dict.fromkeys(candidates))
    outside = [u for u in candidates if u not in set(universe)]
    if outside:
        raise ValueError(f"candidates outside the universe: {outside[:3]}")
    kept = set(circuit.items()) | set(candidates)
    run = gated(model, as_pairs(clean, corrupted), metric, universe, ablation, direction, dataset, copies,
                **forward_kwargs)
    pos = {u: i for i, u in enumerate(universe)}
    base = torch.tensor([1.0 if u in kept else 0.0 for u in universe])
    groups_all = [(u,) for u in candidates]
    ends = run.metrics(torch.stack([torch.ones(len(universe)), torch.zeros(len(universe)), base]))
    m_full, m_empty = float(ends[0]), float(ends[1])
    f = lambda m: float(faithfulness(m, m_full, m_empty))  # noqa: E731
    f_kept = f(float(ends[2]))

    def drops(groups: list[tuple[Unit, ...]]) -> list[float]:
        if not groups:
            return []
        rows = base.repeat(len(groups), 1)
        for j, g in enumerate(groups):
            rows[j, [pos[u] for u in g]] = 0.0
        return [f_kept - f(float(m)) for m in run.metrics(rows)]

    single = dict(zip(candidates, drops(groups_all)))
    quiet = [u for u in candidates if abs(single[u]) <= tol]
    if len(quiet) > max_candidates:
        warnings.warn(f"redundancy: {len(quiet)} candidates are individually unnecessary; joint ablations cover the "
                      f"first {max_candidates} of them (raise max_candidates=, or pass candidates= to choose)",
                      stacklevel=2)
        quiet = quiet[:max_candidates]
    found_groups: list[tuple[Unit, ...]] = []
    found_drops: list[float] = []
    for size in range(2, max_group + 1):
        if size > 3 and math.comb(len(quiet), size) > MAX_GROUPS:
            warnings.warn(f"redundancy: {math.comb(len(quiet), size)} groups of {size} of {len(quiet)} individually "
                          f"unnecessary candidates exceed MAX_GROUPS={MAX_GROUPS}; groups stop at {size - 1} (pass "
                          f"fewer candidates=)", stacklevel=2)
            break
        groups = [g for g in itertools.combinations(quiet, size)
                  if not any(set(h) <= set(g) for h in found_groups)]
        for g, d in zip(groups, drops(groups)):
            if d >= threshold:
                found_groups.append(g)
                found_drops.append(d)
    return Redundancy(tuple(found_groups), tuple(found_drops), single, run.forwards)
