"""The batched pruning walk shared by :func:`~hookgnn.circuits.acdc` and the final pass of
:func:`~hookgnn.circuits.learn_mask`.

Given open gates :math:`g` (a kept set :math:`C`) over the units of a
:class:`~hookgnn.circuits.gates.Gated` run, a *step* removes a set :math:`S` of units
(:math:`C \\leftarrow C \\setminus S`) when ``accept(F(C \\setminus S), F(C))`` holds, the same rule
for every schedule:

* ``schedule="units"`` (the ACDC walk): the steps are the single units, in ``walk`` order. One
  forward runs copies :math:`j = 0, 1, \\dots`, copy :math:`j` removing the next :math:`j + 1`
  units at once; the decisions up to the first rejected unit are the one-at-a-time walk's, and
  the copies after it are run again from there (the chunk halves after a rejection and doubles
  after a fully accepted chunk). About :math:`|U|` copies.
* ``schedule="groups"`` (hierarchical, group-first): blocks of consecutive units of ``walk``
  are tried, in walk order, starting from the whole walk; a rejected block of several units is
  replaced, in its place, by its two halves (first half first), and a rejected single unit is
  kept. With a circuit of :math:`k` units this tries about :math:`2k \\log_2(|U|/k)` blocks instead
  of :math:`|U|` units. The forwards are speculative: each runs, as copies, the next tests of the
  likeliest outcomes (a tree of hypothetical accept / reject decisions, a block of :math:`s` units
  accepted with probability :math:`(1 - \\rho)^s`, :math:`\\rho` the share of units kept so far), and
  the walk then takes the real decisions as far as the results reach; the decisions are exactly
  those of trying the blocks one at a time.

Both visit the units in ``walk`` order, keep exactly the units whose removal alone, when tried,
failed the rule given the removals made before, and every step satisfies ``accept``. They return
the same circuit unless a block is accepted whose units, tried one by one, would not all be (their
effects cancel, or each is within the threshold but not the drift of the ones before it), after
which the two walks try later units against different kept sets. The group walk takes far fewer
steps, so the faithfulness drifts less from its start.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Sequence
from typing import Any, Literal

import torch
from jaxtyping import Float
from torch import Tensor

from hookgnn.circuits.gates import Gated, Unit
from hookgnn.metrics.per_graph import faithfulness

__all__ = ["Schedule", "prune_walk"]

#: how a walk is tried: ``"groups"`` (blocks first, halving a block that fails) or ``"units"`` (one by one)
Schedule = Literal["groups", "units"]
Block = tuple[int, int]  # [lo, hi) of the walk
#: the group walk's hypothetical tests per forward (at most the run's copies)
PLANNED = 16
#: the planner's probability that the second half of a rejected block is accepted after the first half was
SURE_NOT = 0.05


def prune_walk(
    run: Gated, universe: Sequence[Unit], gates: Float[Tensor, " unit"], walk: Sequence[Unit],
    m_full: float, m_empty: float, f_start: float, accept: Callable[[float, float], bool],
    schedule: Schedule = "units",
) -> tuple[list[Unit], float]:
    """Walk ``walk`` from the kept set ``gates`` (1 kept, 0 removed; changed in place), removing what
    ``accept(f_new, f_cur)`` allows (``f_cur`` starting at ``f_start``) under ``schedule`` (module doc),
    :math:`F` the faithfulness of the run's metric between ``m_empty`` (0) and ``m_full`` (1). Returns
    the removed units in the order they were removed and the final :math:`F`.

    >>> from hookgnn import Graph, HookedGNN
    >>> from hookgnn.circuits.discover import gated
    >>> from hookgnn.metrics.per_graph import OutputSum
    >>> from hookgnn.patching.components import Component
    >>> from hookgnn.spec import FeatureSpec
    >>> torch.manual_seed(0) and None
    >>> model = HookedGNN("mpnn", 4, node_in=1, spec={"d": FeatureSpec("output", "node", "scalar")}, max_steps=1)
    >>> g = Graph(x=torch.randn(3, 1), edge_index=torch.tensor([[0, 1], [1, 2]]))
    >>> uni = [Component("hook_out.d", i) for i in range(3)]
    >>> run = gated(model, [(g, g.replace(x=torch.randn(3, 1)))], OutputSum("d"), uni, "resample", "noising", None, 8)
    >>> ends = run.metrics(torch.stack([torch.ones(3), torch.zeros(3)]))
    >>> removed, f = prune_walk(run, uni, torch.ones(3), uni, float(ends[0]), float(ends[1]), 1.0,
    ...                         lambda new, cur: False)
    >>> removed, f
    ([], 1.0)

    :param run: the gated run over ``universe``.
    :param universe: the run's units, in the order of the gate vector.
    :param gates: the kept set as 0/1 gates over ``universe``; units removed are set to 0.
    :param walk: the units to try, in order (each must be open in ``gates``).
    :param m_full: the metric with every unit kept.
    :param m_empty: the metric with every unit ablated.
    :param f_start: :math:`F` of the kept set ``gates`` (1.0 for the whole universe).
    :param accept: ``accept(f_new, f_cur)``: take the step when true.
    :param schedule: ``"units"`` (one unit per step, the ACDC walk) or ``"groups"`` (blocks first).
    """
    if schedule not in ("groups", "units"):
        raise ValueError(f"schedule must be 'groups' or 'units', got {schedule!r}")
    pos = {u: i for i, u in enumerate(universe)}
    walker = _Walker(run, gates, torch.tensor([pos[u] for u in walk], dtype=torch.long), walk, m_full, m_empty,
                     f_start, accept)
    if schedule == "units":
        walker.in_turn([(i, i + 1) for i in range(len(walk))])
    else:
        walker.in_order(len(walk))
    return walker.removed, walker.f_cur


class _Walker:
    """The kept set, its :math:`F` and the removals so far, with the two ways of walking blocks."""

    def __init__(self, run: Gated, gates: Tensor, idx: Tensor, walk: Sequence[Unit], m_full: float, m_empty: float,
                 f_start: float, accept: Callable[[float, float], bool]) -> None:
        self.run, self.gates, self.idx, self.walk, self.accept = run, gates, idx, walk, accept
        self.m_full, self.m_empty = m_full, m_empty
        self.f_cur = f_start
        self.checked = False
        self.removed: list[Unit] = []

    def f(self, ms: Tensor) -> list[float]:
        m = ms.detach().double()
        if not self.checked or not bool(torch.isfinite(m).all()):  # faithfulness() checks (and names) bad values
            self.checked = True
            return faithfulness(m, self.m_full, self.m_empty).tolist()
        return ((m - self.m_empty) / (self.m_full - self.m_empty)).tolist()  # its formula, bit for bit

    def without(self, gates: Tensor, blocks: Sequence[Block]) -> Tensor:
        row = gates.clone()
        for lo, hi in blocks:
            row[self.idx[lo:hi]] = 0.0
        return row

    def take(self, blocks: Sequence[Block], f_new: float) -> None:
        self.gates.copy_(self.without(self.gates, blocks))
        self.f_cur = f_new
        for lo, hi in blocks:
            self.removed.extend(self.walk[lo:hi])

    def in_turn(self, blocks: Sequence[Block]) -> list[Block]:
        """Try ``blocks`` one at a time in order, each given the removals before it; returns those rejected."""
        rejected: list[Block] = []
        i, size = 0, min(8, self.run.copies)
        while i < len(blocks):
            chunk = blocks[i:i + size]
            rows = self.gates.repeat(len(chunk), 1)
            for j, (lo, hi) in enumerate(chunk):
                rows[j:, self.idx[lo:hi]] = 0.0  # copy j removes chunk[0 .. j]
            fs = self.f(self.run.metrics(rows))
            taken = 0
            for j, b in enumerate(chunk):
                taken += 1
                if not self.accept(fs[j], self.f_cur):
                    rejected.append(b)
                    break  # b is kept; later copies assumed its removal: run them again
                self.take([b], fs[j])
            i += taken
            size = min(self.run.copies, size * 2) if taken == len(chunk) else max(1, size // 2)
        return rejected

    def in_order(self, n: int) -> None:
        """The group walk of the module doc over the whole walk (``n`` units)."""
        stack: Stack = ((0, n, False), None) if n else None
        cache: dict[bytes, float] = {}  # F of every kept set run so far, by its gates
        kept = tried = 0
        while stack is not None:
            (lo, hi, _), rest = stack
            row = self.without(self.gates, [(lo, hi)])
            key = _key(row)
            if key not in cache:  # run the next tests of the likeliest outcomes, this one first
                rows = self.plan(stack, cache, (kept + 1) / (tried + 50))
                cache.update(zip(map(_key, rows), self.f(self.run.metrics(torch.stack(rows)))))
            f_new = cache[key]
            if self.accept(f_new, self.f_cur):
                self.take([(lo, hi)], f_new)
                stack, tried = rest, tried + hi - lo
            elif hi - lo > 1:
                stack = _split(lo, hi, rest)
            else:
                stack, kept, tried = rest, kept + 1, tried + 1

    def plan(self, stack: Stack, cache: dict[bytes, float], rho: float) -> list[Tensor]:
        """Up to ``PLANNED`` kept sets not yet run: the next test of each hypothetical walk state,
        likeliest first (the real one has probability 1). A block of :math:`s` units is accepted with
        probability :math:`a_s = (1 - \\rho)^s` (no unit of it needed); the first half :math:`L` of a
        rejected block :math:`B` with :math:`a_L (1 - a_{B \\setminus L}) / (1 - a_B)`; the second half,
        after the first was accepted, with ``SURE_NOT``."""
        budget = min(PLANNED, self.run.copies)
        heap: list[tuple[float, int, Tensor, Stack, bool]] = [(-1.0, 0, self.gates, stack, False)]
        rows: list[Tensor] = []
        seen: set[bytes] = set()
        n = 0
        while heap and len(rows) < budget and n < 16 * budget:
            neg_p, _, g, st, after_first = heapq.heappop(heap)
            if st is None:
                continue
            (lo, hi, first), rest = st
            row = self.without(g, [(lo, hi)])
            key = _key(row)
            if key not in cache and key not in seen:
                rows.append(row)
                seen.add(key)
            if after_first:
                p = SURE_NOT
            elif first and rest is not None:
                a, b = (1.0 - rho) ** (hi - lo), (1.0 - rho) ** (rest[0][1] - hi)
                p = a * (1.0 - b) / max(1.0 - a * b, 1e-12)
            else:
                p = (1.0 - rho) ** (hi - lo)
            heapq.heappush(heap, (neg_p * p, n := n + 1, row, rest, first))
            rejected = rest if hi - lo == 1 else _split(lo, hi, rest)
            heapq.heappush(heap, (neg_p * (1.0 - p), n := n + 1, g, rejected, False))
        return rows


#: blocks (lo, hi, first) of the walk still to try, top first; ``first``: the first half of a split block
Stack = tuple[tuple[int, int, bool], Any] | None  # (top block, rest of the stack)


def _split(lo: int, hi: int, rest: Stack) -> Stack:
    mid = (lo + hi) // 2
    return (lo, mid, True), ((mid, hi, False), rest)


def _key(row: Tensor) -> bytes:
    return row.detach().cpu().numpy().tobytes()  # rows are 0/1 gates: the bytes name the kept set
