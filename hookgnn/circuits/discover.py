"""Circuit discovery that sees AND/OR structure: iterative exact pruning and a redundancy report.

* :func:`acdc`: iterative exact pruning (ACDC, Conmy et al. 2023) over a universe of message
  edges, components and weight edges: walking the units from the output back, a unit (or,
  with the default ``schedule="groups"``, first a whole block of units, halved when it fails) is
  removed when, given everything already removed, the faithfulness moves by at most
  ``threshold`` (and stays at least ``target``). Candidates are evaluated in batches of
  disjoint-union copies, which give exactly the decisions of trying them one at a time
  (:mod:`hookgnn.circuits.walk`).
* :func:`~hookgnn.circuits.masks.learn_mask` (in :mod:`hookgnn.circuits.masks`): learned
  hard-concrete gates (Edge Pruning).
* :func:`~hookgnn.circuits.or_groups.redundancy` (in :mod:`hookgnn.circuits.or_groups`): which
  units are individually unnecessary but jointly necessary (OR groups).

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

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from hookgnn.circuits.circuit import Ablation, Circuit, _evaluate_with, evaluate
from hookgnn.circuits.gates import Gated, Unit
from hookgnn.circuits.walk import Schedule, prune_walk
from hookgnn.graph import Graph
from hookgnn.hooks import HookedRootModule
from hookgnn.metrics.per_graph import Metric, faithfulness
from hookgnn.metrics.targets import CleanTargets, clean_targets
from hookgnn.patching.activation import check_same_structure
from hookgnn.patching.components import Component
from hookgnn.patching.copies import disjoint_union
from hookgnn.patching.results import Direction, check_direction

__all__ = ["Discovered", "acdc", "exact_faithfulness"]

Pairs = Graph | Sequence[Graph]


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
                 pairs=len(pairs), **forward_kwargs)


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


def _exact_metric(model: HookedRootModule, run: Gated, gates: Tensor, **forward_kwargs: Any) -> float:
    """:math:`m(C)` of the module doc for the circuit ``gates`` (0/1 over the run's units), from
    :func:`~hookgnn.circuits.circuit.evaluate` on the run's base graph with the ablation values the gated run
    took from its source run: one forward, no source run of its own. One pair only: ``evaluate`` reads a
    unit as a row of the graph it runs, so on a union of several pairs it would ablate the first pair's."""
    if run.pairs != 1:
        raise ValueError(f"_exact_metric evaluates one pair; the run holds {run.pairs} (use exact_faithfulness)")
    targets = run.metric
    assert isinstance(targets, CleanTargets)
    inside = gates > 0
    kept = inside if run.direction == "noising" else ~inside  # denoising keeps the units outside C in the base
    circuit = Circuit.of(run.units[i] for i in kept.nonzero().flatten().tolist())
    return _evaluate_with(model, run.base, _Pinned(targets, targets.clean), circuit, run.units,
                          lambda hooks: {h: run.values[h] for h in hooks}, **forward_kwargs)


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
    schedule: Schedule = "groups",
    **forward_kwargs: Any,
) -> Discovered:
    """Iterative exact pruning: remove each unit whose removal, given all earlier removals, moves
    the faithfulness by at most ``threshold`` (and, with ``target``, keeps it at least ``target``).

    Units are walked in ``order`` (default: from the output back, :func:`output_first`). Let
    :math:`C_0 = U`. For the next set :math:`S` of units, :math:`C \\leftarrow C \\setminus S` when
    :math:`|F(C \\setminus S) - F(C)| \\le` ``threshold`` (and :math:`F(C \\setminus S) \\ge`
    ``target``). ``schedule="units"``: :math:`S` is the next unit (the ACDC walk; about :math:`|U|`
    graph copies). ``schedule="groups"`` (default; hierarchical, group-first): :math:`S` starts as
    the whole walk and a rejected block is replaced by its two halves, first half first, down to
    single units, which are kept when rejected; with a circuit of :math:`k` units that is about
    :math:`2k \\log_2(|U|/k)` tests, run speculatively several per forward. Both visit the units
    in ``order``, keep exactly the units whose removal alone failed the rule given the removals
    before, and return the same circuit unless a block passes whose units one by one would not
    all pass (see :mod:`hookgnn.circuits.walk`). The batching never changes the decisions.
    ``clean``/``corrupted``: one pair, or sequences of pairs of one structure (units gate every
    pair; the metric is the mean over pairs).
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
    :param schedule: ``"groups"`` (blocks first, halving a block that fails; the default) or ``"units"`` (one
        unit at a time, the ACDC walk).
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
    if schedule not in ("groups", "units"):
        raise ValueError(f"schedule must be 'groups' (blocks first) or 'units' (one at a time), got {schedule!r}")
    run = gated(model, pairs, metric, universe, ablation, direction, dataset, copies, **forward_kwargs)
    # m(U) and m(empty) by evaluate, shared by the walk and the exact faithfulness of the circuit found
    # (several pairs: the 0/1-gated run, which gates every pair and equals evaluate pair by pair)
    ends = (torch.ones(run.n), torch.zeros(run.n))
    if len(pairs) == 1:
        m_full, m_empty = (_exact_metric(model, run, g, **forward_kwargs) for g in ends)
    else:
        m_full, m_empty = (float(v) for v in run.metrics(torch.stack(ends)))
    gates = torch.ones(len(universe))
    removed, _ = prune_walk(run, universe, gates, walk, m_full, m_empty, 1.0,
                            lambda new, cur: abs(new - cur) <= threshold and (target is None or new >= target),
                            schedule)
    circuit = Circuit.of(universe[i] for i in gates.nonzero().flatten().tolist())
    if len(pairs) == 1:
        exact = float(faithfulness(_exact_metric(model, run, gates, **forward_kwargs), m_full, m_empty))
        checks = 1
    else:  # several pairs: evaluate pair by pair, independently of the gated run
        exact = exact_faithfulness(model, [c for c, _ in pairs], [c for _, c in pairs], metric, circuit, universe,
                                   ablation, direction, dataset, **forward_kwargs)
        checks = 3 * len(pairs)
    # the source run of the ablation values, m(U) and m(empty) (several pairs: in run.forwards), the re-evaluation
    ends_runs = 3 if len(pairs) == 1 else 1
    return Discovered(circuit, exact, "acdc", ablation, check_direction(direction), time.perf_counter() - start,
                      run.forwards + ends_runs + checks, run.copies_run + ends_runs * len(pairs) + checks, len(universe),
                      tuple(removed))
