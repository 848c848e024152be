"""The batched pruning walk shared by :func:`~hookgnn.circuits.acdc` and the final pass of
:func:`~hookgnn.circuits.learn_mask`.

Given open gates :math:`g` (a kept set :math:`C`) over the units of a
:class:`~hookgnn.circuits.gates.Gated` run, the units of ``walk`` are tried one at a time: unit
:math:`u` is removed (:math:`C \\leftarrow C \\setminus \\{u\\}`) when ``accept(F(C \\setminus
\\{u\\}), F(C))`` holds. One forward runs copies :math:`j = 0, 1, \\dots`, copy :math:`j` removing
the next :math:`j + 1` units at once; the decisions up to the first rejected unit are the
one-at-a-time walk's, and the copies after it are run again from there (the chunk halves after a
rejection and doubles after a fully accepted chunk).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from jaxtyping import Float
from torch import Tensor

from hookgnn.circuits.gates import Gated, Unit
from hookgnn.metrics.per_graph import faithfulness

__all__ = ["prune_walk"]


def prune_walk(
    run: Gated, universe: Sequence[Unit], gates: Float[Tensor, " unit"], walk: Sequence[Unit],
    m_full: float, m_empty: float, f_start: float, accept: Callable[[float, float], bool],
) -> tuple[list[Unit], float]:
    """Walk ``walk`` from the kept set ``gates`` (1 kept, 0 removed; changed in place), removing each
    unit ``u`` for which ``accept(f_new, f_cur)`` holds (``f_cur`` starting at ``f_start``), :math:`F`
    the faithfulness of the run's metric between ``m_empty`` (0) and ``m_full`` (1). Returns the
    removed units in order and the final :math:`F`.

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
    :param accept: ``accept(f_new, f_cur)``: remove the unit when true.
    """
    pos = {u: i for i, u in enumerate(universe)}
    f = lambda m: float(faithfulness(m, m_full, m_empty))  # noqa: E731
    f_cur = f_start
    removed: list[Unit] = []
    i, size = 0, min(8, run.copies)
    while i < len(walk):
        chunk = walk[i:i + size]
        rows = gates.repeat(len(chunk), 1)
        for j, u in enumerate(chunk):
            rows[j:, pos[u]] = 0.0  # copy j removes chunk[0 .. j]
        ms = run.metrics(rows)
        taken = 0
        for j, u in enumerate(chunk):
            f_new = f(float(ms[j]))
            taken += 1
            if not accept(f_new, f_cur):
                break  # u is kept; later copies assumed its removal: run them again
            gates[pos[u]], f_cur = 0.0, f_new
            removed.append(u)
        i += taken
        size = min(run.copies, size * 2) if taken == len(chunk) else max(1, size // 2)
    return removed, f_cur
