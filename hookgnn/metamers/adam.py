"""Adam with one learning rate, step count and plateau schedule per metamer.

Every raw tensor of a metamer search has rows owned by one metamer. :class:`RowAdam`
applies Adam (:math:`\\beta = (0.9, 0.999)`, bias correction) entry by entry, with the
rate and step count of the row's metamer, so a metamer in a batch follows the
trajectory it would follow alone, and one metamer can restart without disturbing the
others.

Schedule: a metamer's rate halves when its distance has not fallen by 1% in
``patience`` steps. When it would fall below ``lr * 1e-4`` the metamer is
*exhausted*: a local minimum, where the search stops (or restarts) it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from jaxtyping import Bool, Float
from torch import Tensor


class RowAdam:
    """Per-metamer Adam over ``(tensor, owner)`` pairs (``owner[r]``: metamer of row ``r``).

    >>> p = torch.zeros(2, 1); opt = RowAdam([(p, torch.tensor([0, 1]))], lr=0.1, num=2)
    >>> opt.step([torch.tensor([[1.0], [-1.0]])]); [round(v, 6) for v in p.flatten().tolist()]
    [-0.1, 0.1]
    """

    def __init__(self, params: Sequence[tuple[Tensor, Tensor]], lr: float, num: int, patience: int = 20) -> None:
        self.params, self.lr0, self.patience = list(params), float(lr), patience
        self.m = [torch.zeros_like(p) for p, _ in self.params]
        self.v = [torch.zeros_like(p) for p, _ in self.params]
        self.rate = torch.full((num,), self.lr0)
        self.t = torch.zeros(num, dtype=torch.float64)
        self.mark = torch.full((num,), math.inf)
        self.since = torch.zeros(num, dtype=torch.long)
        self.exhausted = torch.zeros(num, dtype=torch.bool)

    def observe(self, distance: Float[Tensor, " num"]) -> None:
        """Record this step's distances; halve the rates of metamers on a plateau."""
        improved = distance < 0.99 * self.mark
        self.mark = torch.where(improved, distance, self.mark)
        self.since = torch.where(improved, torch.zeros_like(self.since), self.since + 1)
        stuck = self.since >= self.patience
        self.exhausted |= stuck & (self.rate * 0.5 < self.lr0 * 1e-4)
        self.rate = torch.where(stuck, self.rate * 0.5, self.rate)
        self.since = torch.where(stuck, torch.zeros_like(self.since), self.since)

    def reset(self, which: Bool[Tensor, " num"]) -> None:
        """Forget the moments, step count and schedule of the metamers in ``which``."""
        self.rate = torch.where(which, self.lr0, self.rate)
        self.t = torch.where(which, 0.0, self.t)
        self.mark = torch.where(which, math.inf, self.mark)
        self.since = torch.where(which, 0, self.since)
        self.exhausted &= ~which
        with torch.no_grad():
            for (_, owner), m, v in zip(self.params, self.m, self.v):
                rows = which.to(owner.device)[owner]
                m[rows] = 0
                v[rows] = 0

    def step(self, grads: Sequence[Tensor | None]) -> None:
        """One Adam step of every row (a ``None`` gradient counts as zero)."""
        self.t += 1
        b1, b2, eps = 0.9, 0.999, 1e-8
        with torch.no_grad():
            for (p, owner), g, m, v in zip(self.params, grads, self.m, self.v):
                if g is None:
                    g = torch.zeros_like(p)
                m.mul_(b1).add_(g, alpha=1 - b1)
                v.mul_(b2).addcmul_(g, g, value=1 - b2)
                shape = (-1,) + (1,) * (p.dim() - 1)
                t = self.t.to(p.device)[owner].view(shape).double()
                rate = self.rate.to(p.device)[owner].view(shape).to(p.dtype)
                c1, c2 = (1 - b1**t).to(p.dtype), (1 - b2**t).to(p.dtype)  # bias corrections in float64
                p -= rate * (m / c1) / ((v / c2).sqrt() + eps)
