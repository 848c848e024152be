"""OR groups: units each unnecessary alone but necessary together, by batched exact joint ablations.

Given a circuit found by :func:`~hookgnn.circuits.discover.acdc` or
:func:`~hookgnn.circuits.masks.learn_mask` (or any :class:`~hookgnn.circuits.Circuit`), every
candidate is ablated alone from the kept set, and the individually unnecessary ones in every
small group at once, all as gated copies of a few batched forwards
(:class:`~hookgnn.circuits.gates.Gated`). Faithfulness is that of :mod:`hookgnn.circuits.discover`.
"""

from __future__ import annotations

import itertools
import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch

from hookgnn.circuits.circuit import Ablation, Circuit
from hookgnn.circuits.discover import Discovered, Pairs, as_pairs, gated
from hookgnn.circuits.gates import Unit
from hookgnn.graph import Graph
from hookgnn.hooks import HookedRootModule
from hookgnn.metrics.per_graph import Metric, faithfulness
from hookgnn.patching.components import Component
from hookgnn.patching.results import Direction

__all__ = ["MAX_GROUPS", "Redundancy", "redundancy"]

#: The most groups of one size above 3 that :func:`redundancy` ablates.
MAX_GROUPS = 4096


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
