"""How metamer features are parametrised: free, held in a box, or one-hot.

A constraint covers a block of feature columns (``columns=(start, stop)``, all columns
when ``None``) of the node features ``x`` or the edge features ``edge_attr``. The
optimiser moves an unconstrained *raw* tensor; the constraint maps it to feature values:

==================  ================================================================
:class:`Free`       :math:`x = r` (no constraint)
:class:`Box`        :math:`x = r`, and :math:`r` is clipped to :math:`[l, u]` after
                    every step (projected gradient)
:class:`OneHot`     forward :math:`x = \\mathrm{onehot}(\\arg\\max r)`, backward through
                    :math:`\\mathrm{softmax}(r / \\tau)` (straight-through estimator), over
                    the block's columns of each row (``over="features"``, categorical
                    features) or over the nodes of each graph for each column
                    (``over="nodes"``, e.g. a source mask: one node per graph)
==================  ================================================================

With the straight-through estimator the forward pass always sees a valid one-hot
input, so every activation the optimiser measures is that of a valid graph.
Columns that no constraint covers are not optimised: they keep their start values.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal, Union

import torch
from jaxtyping import Float, Int
from torch import Tensor

from hookgnn.ops import scatter_max, scatter_softmax


class _Constraint:
    """What every constraint does; the defaults are those of unconstrained features."""

    columns: tuple[int, int] | None

    def check(self, values: Tensor, owner: Tensor, num_groups: int, what: str) -> None:
        """Raise if ``values`` break the constraint (never, here)."""

    def raw(self, values: Float[Tensor, "row col"], owner: Int[Tensor, " row"], num_groups: int) -> Tensor:
        """The raw parameter whose :meth:`value` is ``values``."""
        return values.detach().clone()

    def value(self, raw: Float[Tensor, "row col"], owner: Int[Tensor, " row"], num_groups: int) -> Tensor:
        """Feature values of a raw parameter (differentiable)."""
        return raw

    def project_(self, raw: Tensor) -> None:
        """Bring ``raw`` back into its feasible set, in place (nothing to do here)."""

    def noise(self, like: Float[Tensor, "row col"], owner: Int[Tensor, " row"], num_groups: int,
              generator: torch.Generator) -> Tensor:
        """Random feature values shaped like ``like`` (the reference's rows, tiled)."""
        mean = like.mean(0) if like.shape[0] else like.new_zeros(like.shape[1])
        std = like.std(0) if like.shape[0] > 1 else like.new_ones(like.shape[1])
        std = torch.where(std > 0, std, torch.ones_like(std))
        return mean + std * torch.randn(like.shape, generator=generator, dtype=like.dtype).to(like.device)


@dataclass(frozen=True)
class Free(_Constraint):
    """Unconstrained real features; noise starts draw each column from
    :math:`N(\\mu_c, \\sigma_c^2)` of the reference's column (:math:`\\sigma_c = 1` if constant).

    >>> Free().value(torch.tensor([[0.5, -2.0]]), torch.zeros(1, dtype=torch.long), 1).tolist()
    [[0.5, -2.0]]
    """

    columns: tuple[int, int] | None = None


@dataclass(frozen=True)
class Box(_Constraint):
    """Real features held in ``[low, high]`` by clipping after each step; noise is uniform in the box.

    >>> b = Box(0.0, 1.0); r = torch.tensor([[1.5, -0.2]]); b.project_(r); r.tolist()
    [[1.0, 0.0]]
    """

    low: float | int = 0.0
    high: float | int = 1.0
    columns: tuple[int, int] | None = None

    def __post_init__(self) -> None:
        if not float(self.low) < float(self.high):
            raise ValueError(f"Box needs low < high, got low={self.low}, high={self.high}")

    def check(self, values: Tensor, owner: Tensor, num_groups: int, what: str) -> None:
        bad = (values < self.low) | (values > self.high)
        if bool(bad.any()):
            row, col = (int(i) for i in bad.nonzero()[0])
            raise ValueError(f"{what}[{row}, {col}] = {float(values[row, col]):.4g} is outside the box "
                             f"[{self.low}, {self.high}]; start inside the box or widen it")

    def project_(self, raw: Tensor) -> None:
        with torch.no_grad():
            raw.clamp_(self.low, self.high)

    def noise(self, like: Tensor, owner: Tensor, num_groups: int, generator: torch.Generator) -> Tensor:
        u = torch.rand(like.shape, generator=generator, dtype=like.dtype).to(like.device)
        return self.low + (self.high - self.low) * u


@dataclass(frozen=True)
class OneHot(_Constraint):
    """One-hot features through a straight-through softmax relaxation.

    ``over="features"``: each row's block is one category (exactly one 1).
    ``over="nodes"``: each column of the block is 1 at exactly one row of each graph.
    ``temperature`` :math:`\\tau` scales the softmax of the backward pass. The raw start
    of a one-hot value is the value itself (logit 1 on the hot entry, 0 elsewhere).

    >>> oh = OneHot()
    >>> x = oh.value(torch.tensor([[0.1, 2.0, -1.0]]), torch.zeros(1, dtype=torch.long), 1)
    >>> x.tolist()
    [[0.0, 1.0, 0.0]]
    """

    over: Literal["features", "nodes"] = "features"
    temperature: float | int = 1.0
    columns: tuple[int, int] | None = None

    def __post_init__(self) -> None:
        if self.over not in ("features", "nodes"):
            raise ValueError(f"OneHot over must be 'features' or 'nodes', got {self.over!r}")
        if not self.temperature > 0:
            raise ValueError(f"OneHot temperature must be > 0, got {self.temperature}")

    def check(self, values: Tensor, owner: Tensor, num_groups: int, what: str) -> None:
        binary = (values == 0) | (values == 1)
        if not bool(binary.all()):
            row, col = (int(i) for i in (~binary).nonzero()[0])
            raise ValueError(f"{what}[{row}, {col}] = {float(values[row, col]):.4g} is not 0 or 1 (OneHot)")
        if self.over == "features":
            counts = values.sum(1)
            if values.shape[1] and bool((counts != 1).any()):
                row = int((counts != 1).nonzero()[0, 0])
                raise ValueError(f"{what} row {row} has {int(counts[row])} ones in its one-hot block, expected 1")
            return
        counts = values.new_zeros(num_groups, values.shape[1]).index_add(0, owner, values)
        sizes = torch.bincount(owner, minlength=num_groups)
        bad = (counts != 1) & (sizes > 0).unsqueeze(1)
        if bool(bad.any()):
            g, col = (int(i) for i in bad.nonzero()[0])
            raise ValueError(f"{what} column {col} has {int(counts[g, col])} ones in graph {g}, "
                             "expected 1 (OneHot over nodes)")

    def value(self, raw: Tensor, owner: Tensor, num_groups: int) -> Tensor:
        if raw.shape[1] == 0 or raw.shape[0] == 0:
            return raw
        if self.over == "features":
            soft = torch.softmax(raw / self.temperature, dim=1)
            hard = torch.zeros_like(raw).scatter_(1, raw.argmax(1, keepdim=True), 1.0)
        else:
            soft = scatter_softmax(raw / self.temperature, owner, num_groups)
            _, arg = scatter_max(raw.detach(), owner, num_groups)  # [graph, col]: lowest winning row
            hard = torch.zeros_like(raw)
            cols = torch.arange(raw.shape[1], device=raw.device).expand_as(arg)
            keep = arg >= 0
            hard[arg[keep], cols[keep]] = 1.0
        return hard + (soft - soft.detach())

    def noise(self, like: Tensor, owner: Tensor, num_groups: int, generator: torch.Generator) -> Tensor:
        logits = torch.randn(like.shape, generator=generator, dtype=like.dtype).to(like.device)
        return self.value(logits, owner, num_groups).detach()


Constraint = Union[Free, Box, OneHot]
Constraints = Union[Constraint, Sequence[Constraint], None]


def column_blocks(constraints: Constraints, width: int, what: str) -> list[tuple[Constraint, int, int]]:
    """Each constraint with its column block ``[start, stop)``; checks bounds and overlaps.

    >>> [(type(c).__name__, a, b) for c, a, b in column_blocks([Box(columns=(0, 2)), Free(columns=(2, 3))], 3, "x")]
    [('Box', 0, 2), ('Free', 2, 3)]
    """
    if constraints is None:
        return []
    items = [constraints] if isinstance(constraints, (Free, Box, OneHot)) else list(constraints)
    blocks: list[tuple[Constraint, int, int]] = []
    taken = torch.zeros(width, dtype=torch.bool)
    for c in items:
        if not isinstance(c, (Free, Box, OneHot)):
            raise TypeError(f"{what} constraints must be Free, Box or OneHot, got {type(c).__name__}")
        start, stop = (0, width) if c.columns is None else c.columns
        if not 0 <= start < stop <= width:
            raise ValueError(f"{type(c).__name__} columns {c.columns} out of range for {what} with {width} columns")
        if bool(taken[start:stop].any()):
            raise ValueError(f"{what} columns {start}..{stop - 1} are covered by more than one constraint")
        taken[start:stop] = True
        blocks.append((c, start, stop))
    return blocks
