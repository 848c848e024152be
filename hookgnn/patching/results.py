"""Results of patching and attribution: :class:`HookScores`, :class:`Attribution`, :class:`EdgeScores`.

HookScores is a table of scores with named axes, one row per hook point (round).

A patching sweep or an attribution returns, for a family of hooks (one per round),
a tensor ``values[row, item]`` where row ``r`` belongs to hook ``hooks[r]`` and
``axes`` names both dimensions, e.g. ``("round", "node")``, ``("round", "edge")`` or
``("round", "feature")``. Scores are never handed back as positional lists.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any, Literal

import torch
from jaxtyping import Float
from torch import Tensor

from hookgnn.patching.components import Component, Edge

Direction = Literal["denoising", "noising"]
#: What an attribution keeps (see :class:`Attribution` and :mod:`hookgnn.patching.streamed`).
Keep = Literal["all", "entries", "rows", "features"]
KEEPS: tuple[Keep, ...] = ("all", "entries", "rows", "features")
#: The one default direction of every patching and attribution function in hookgnn.
DEFAULT_DIRECTION: Direction = "denoising"
DIRECTIONS: tuple[Direction, ...] = ("denoising", "noising")


def check_direction(direction: str) -> Direction:
    """``direction`` if it is ``"denoising"`` or ``"noising"``, else ``ValueError``.

    >>> check_direction("noising")
    'noising'
    """
    if direction not in DIRECTIONS:
        raise ValueError(f"direction must be 'denoising' or 'noising', got {direction!r}")
    return direction  # type: ignore[return-value]


def check_same_direction(*results: Any) -> Direction:
    """The shared ``direction`` of patching / attribution results, or ``ValueError``.

    A denoising effect (clean patched into the corrupted run) and a noising one
    (corrupted into clean) have opposite signs for the same component, so comparing
    them is refused rather than done silently.

    >>> a = HookScores(torch.zeros(1, 2), ("h",), ("round", "node"), direction="noising")
    >>> check_same_direction(a, a)
    'noising'
    """
    found = {getattr(r, "direction", None) for r in results}
    if None in found:
        raise TypeError("every result compared must carry a direction (HookScores, Attribution, EdgeScores)")
    if len(found) != 1:
        raise ValueError(f"cannot compare results of different patching directions {sorted(found)}: "
                         "rerun one of them with the other direction= (denoising: clean into corrupted; "
                         "noising: corrupted into clean)")
    return found.pop()


@dataclass(frozen=True)
class HookScores:
    """Scores ``values[row, item]`` for the hooks ``hooks`` (one per row).

    ``axes[1]`` is ``"node"``, ``"edge"`` (items are rows of the activation) or
    ``"feature"`` (items are neurons). With a ``baseline`` (the metric of the unpatched
    run), ``values`` are metrics after each patch, as an exact sweep returns them;
    without one they are effects (metric change), as estimators return them;
    :meth:`effects` gives effects either way. ``direction`` says which run was patched
    (``"denoising"``: clean values into the corrupted run; ``"noising"``: the reverse).

    >>> s = HookScores(torch.tensor([[0., 2.], [1., 0.]]), ("layers.0.hook_update", "layers.1.hook_update"), ("round", "node"))
    >>> s["layers.1.hook_update"].tolist(), s.top(1)
    ([1.0, 0.0], [(Component(hook='layers.0.hook_update', index=1, feature=None), 2.0)])
    """

    values: Float[Tensor, "row item"]
    hooks: tuple[str, ...]
    axes: tuple[str, str]
    baseline: float | None = None
    direction: Direction = DEFAULT_DIRECTION

    def __post_init__(self) -> None:
        if self.values.dim() != 2 or self.values.shape[0] != len(self.hooks):
            raise ValueError(f"values {tuple(self.values.shape)} must be [len(hooks)={len(self.hooks)}, items]")
        check_direction(self.direction)

    def effects(self) -> HookScores:
        """The metric change of each patch, ``values - baseline`` (``self`` when already effects).

        >>> HookScores(torch.tensor([[3., 1.]]), ("h",), ("round", "node"), baseline=1.0).effects().values.tolist()
        [[2.0, 0.0]]
        """
        if self.baseline is None:
            return self
        return replace(self, values=self.values - self.baseline, baseline=None)

    def __getitem__(self, hook: str) -> Float[Tensor, " item"]:
        try:
            return self.values[self.hooks.index(hook)]
        except ValueError:
            raise KeyError(f"no scores for {hook!r}; hooks: {list(self.hooks)}") from None

    def component(self, row: int, item: int) -> Component:
        """The component scored at ``values[row, item]``."""
        if self.axes[1] == "feature":
            return Component(self.hooks[row], None, item)
        return Component(self.hooks[row], item)

    def as_dict(self) -> dict[Component, float]:
        """Every score keyed by its component."""
        flat = self.values.detach().cpu().tolist()
        return {self.component(r, i): v for r, row in enumerate(flat) for i, v in enumerate(row)}

    def top(self, n: int, absolute: bool = True) -> list[tuple[Component, float]]:
        """The ``n`` highest-scoring components (by absolute value by default)."""
        key = self.values.abs() if absolute else self.values
        idx = key.flatten().topk(min(n, key.numel())).indices
        width = self.values.shape[1]
        return [(self.component(int(i) // width, int(i) % width), float(self.values.flatten()[i])) for i in idx]

    def __repr__(self) -> str:
        kind = "metric after patch" if self.baseline is not None else "effects"
        return (f"HookScores({self.axes[0]} x {self.axes[1]} = {tuple(self.values.shape)}, {self.direction} {kind}, "
                f"hooks={self.hooks[0]}..{self.hooks[-1]})")


@dataclass
class Attribution:
    """Per-entry attribution ``(a_source - a_base) * grad`` for each hook, with its axis.

    With ``keep="all"``, ``delta`` and ``grad`` are kept (``grad_active`` = grad where the activation is > 0,
    averaged like ``grad``, for the hooks that asked for it; used for edges through a relu). ``direction`` is the
    patching direction the estimates are for (their sign depends on it).
    ``grad_through[(src, dst)]`` is :math:`\\overline{\\varphi'(a_{src})\\, g_{dst}}` for
    the elementwise links ``dst = \\varphi(src)`` that asked for it (averaged like ``grad``).
    With ``keep`` = ``"entries"``, ``"rows"`` or ``"features"`` only ``products[hook]`` is
    kept: the entries, their sums over features (one per row) or over rows (one per
    feature) (:mod:`hookgnn.patching.streamed`); ``delta`` and ``grad`` are then empty.
    """

    delta: dict[str, Tensor]
    grad: dict[str, Tensor]
    grad_active: dict[str, Tensor]
    axes: dict[str, str]
    direction: Direction = DEFAULT_DIRECTION
    grad_through: dict[tuple[str, str], Tensor] = field(default_factory=dict)
    keep: Keep = "all"
    products: dict[str, Tensor] = field(default_factory=dict)

    def _refuse(self, what: str) -> ValueError:
        return ValueError(f"this Attribution kept only {self.keep} (keep={self.keep!r}), so it has no {what}; "
                          f"run it with keep='all' or keep='entries'" + ("" if what == "entries" else
                                                                        f" or keep='{what}'"))

    def entries(self, hook: str) -> Tensor:
        """``delta * grad`` of one hook, the shape of its activation."""
        if self.keep == "all":
            return self.delta[hook] * self.grad[hook]
        if self.keep == "entries":
            return self.products[hook]
        raise self._refuse("entries")

    def row_sums(self, hook: str) -> Tensor:
        """``entries`` of one hook summed over features: one value per row."""
        if self.keep == "rows":
            return self.products[hook]
        if self.keep == "features":
            raise self._refuse("rows")
        e = self.entries(hook)
        return e.reshape(e.shape[0], -1).sum(1)

    def feature_sums(self, hook: str) -> Tensor:
        """``entries`` of one hook summed over rows: one value per feature."""
        if self.keep == "features":
            return self.products[hook]
        if self.keep == "rows":
            raise self._refuse("features")
        return self.entries(hook).sum(0)

    def rows(self, hooks: Sequence[str]) -> HookScores:
        """Scores of row components (nodes / edges): summed over features, ``[hook, item]``."""
        vals = [self.row_sums(h) for h in hooks]
        axes = {self.axes[h] for h in hooks}
        if len(axes) != 1 or len({v.shape[0] for v in vals}) != 1:
            raise ValueError(f"row scores need hooks of one axis and size, got {[(h, self.axes[h]) for h in hooks]}")
        return HookScores(torch.stack(vals), tuple(hooks), ("round", axes.pop()), direction=self.direction)

    def features(self, hooks: Sequence[str]) -> HookScores:
        """Scores of neuron components (one feature at every row): ``[hook, feature]``."""
        vals = [self.feature_sums(h) for h in hooks]
        return HookScores(torch.stack(vals), tuple(hooks), ("round", "feature"), direction=self.direction)

    def components(self, hooks: Sequence[str] | None = None, granularity: str = "feature") -> dict[Component, float]:
        """Scores keyed by :class:`Component` (``"row"`` or ``"feature"`` granularity)."""
        out: dict[Component, float] = {}
        for h in self.axes if hooks is None else hooks:
            if granularity == "row":
                out.update({Component(h, i): float(v) for i, v in enumerate(self.row_sums(h))})
            elif (f := self.feature_sums(h)).dim() == 1:
                out.update({Component(h, None, i): float(v) for i, v in enumerate(f)})
        return out

    def total(self) -> float:
        """Sum over one hook family's entries is the estimate of patching it all; this sums every hook."""
        if self.keep != "all":
            return float(sum(p.sum() for p in self.products.values()))
        return float(sum(self.entries(h).sum() for h in self.delta))


@dataclass
class EdgeScores:
    """EAP scores of computational edges: ``scores[i]`` belongs to ``edges[i]``, estimated
    effects for the patching ``direction``."""

    edges: list[Edge]
    scores: Tensor
    direction: Direction = DEFAULT_DIRECTION

    def as_dict(self) -> dict[Edge, float]:
        """Scores keyed by edge."""
        return dict(zip(self.edges, self.scores.tolist()))

    def of_kind(self, kind: type) -> EdgeScores:
        """The scores of the edges of one kind (``MessageEdge`` or ``WeightEdge``) only."""
        keep = [i for i, e in enumerate(self.edges) if isinstance(e, kind)]
        return EdgeScores([self.edges[i] for i in keep], self.scores[keep], self.direction)

    def top(self, n: int) -> list[tuple[Edge, float]]:
        """The ``n`` edges with the largest absolute scores, best first, with their scores."""
        idx = self.scores.abs().topk(min(n, len(self.edges))).indices.tolist()
        return [(self.edges[i], float(self.scores[i])) for i in idx]
