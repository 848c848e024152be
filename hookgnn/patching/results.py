"""Results of patching and attribution: :class:`HookScores`, :class:`Attribution`, :class:`EdgeScores`.

HookScores is a table of scores with named axes, one row per hook point (round).

A patching sweep or an attribution returns, for a family of hooks (one per round),
a tensor ``values[row, item]`` where row ``r`` belongs to hook ``hooks[r]`` and
``axes`` names both dimensions, e.g. ``("round", "node")``, ``("round", "edge")`` or
``("round", "feature")``. Scores are never handed back as positional lists.

Every score of every result is an **effect**: the metric after a patch minus the
metric of the unpatched run being patched (``baseline``, kept in every result), computed
exactly by the sweeps and estimated by attribution patching, EAP and AtP*, so exact and
estimated results compare directly, number for number.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import torch
from jaxtyping import Float
from torch import Tensor

from hookgnn.patching.components import Component, Edge

Direction = Literal["denoising", "noising"]
#: What an attribution keeps (see :class:`Attribution` and :mod:`hookgnn.attribution.streamed`).
Keep = Literal["all", "entries", "rows", "features"]
KEEPS: tuple[Keep, ...] = ("all", "entries", "rows", "features")
#: The one default direction of every patching and attribution function in hookgnn.
DEFAULT_DIRECTION: Direction = "denoising"
#: The :class:`Attribution` fields each ``keep`` fills (with ``"all"``, ``delta`` and ``grad`` for every hook).
KEPT_FIELDS: dict[str, tuple[str, ...]] = {
    "all": ("delta", "grad", "grad_active", "grad_through"),
    "entries": ("by_entry",),
    "rows": ("by_row", "by_feature"),
    "features": ("by_feature",),
}
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

    >>> a = HookScores(torch.zeros(1, 2), ("h",), ("round", "node"), 0.0, direction="noising")
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


def check_baseline(baseline: Any, owner: str) -> float:
    """``baseline`` as a float, or ``TypeError`` saying what it is for.

    >>> check_baseline(1, "HookScores")
    1.0
    """
    if isinstance(baseline, bool) or not isinstance(baseline, (int, float)):
        raise TypeError(f"{owner} needs baseline=, a float: the metric of the unpatched base run (its scores are "
                        f"effects, metric after the patch minus baseline); got {type(baseline).__name__}")
    return float(baseline)


@dataclass(frozen=True)
class HookScores:
    """Effects ``values[row, item]`` of patching each component of the hooks ``hooks`` (one per row).

    Every producer, exact or estimated, returns the same quantity: the **effect** of a patch,

    .. math:: \\text{values}[r, i] = m(\\text{base run with component } (r, i) \\text{ patched}) - m(\\text{base run}),

    exactly (:func:`~hookgnn.patching.patch` with any selector)
    or as an estimate of it (attribution patching, EAP, AtP*), with ``baseline`` =
    :math:`m(\\text{base run})`, the metric of the unpatched run being patched (mean over the
    graphs of the batch), always kept alongside. So exact and estimated scores compare
    directly, and :meth:`patched_metrics` gives the metric after each patch.
    ``axes[1]`` is ``"node"``, ``"edge"`` (items are rows of the activation) or
    ``"feature"`` (items are neurons). ``direction`` says which run was patched
    (``"denoising"``: clean values into the corrupted run; ``"noising"``: the reverse).

    >>> s = HookScores(torch.tensor([[0., 2.], [1., 0.]]), ("layers.0.hook_update", "layers.1.hook_update"),
    ...                ("round", "node"), baseline=0.5)
    >>> s["layers.1.hook_update"].tolist(), s.top(1)
    ([1.0, 0.0], [(Component(hook='layers.0.hook_update', index=1, feature=None), 2.0)])
    >>> s.patched_metrics().tolist()
    [[0.5, 2.5], [1.5, 0.5]]

    :param values: the effects ``[row, item]``, one row per hook.
    :param hooks: the hook of each row of ``values``.
    :param axes: names of the two axes, e.g. ``("round", "edge")``; ``axes[1]`` is ``"node"``, ``"edge"`` or
        ``"feature"``.
    :param baseline: the metric of the unpatched base run (mean over graphs).
    :param direction: which run was patched: ``"denoising"`` or ``"noising"``.
    """

    values: Float[Tensor, "row item"]
    hooks: tuple[str, ...]
    axes: tuple[str, str]
    baseline: float
    direction: Direction = DEFAULT_DIRECTION

    def __post_init__(self) -> None:
        if self.values.dim() != 2 or self.values.shape[0] != len(self.hooks):
            raise ValueError(f"values {tuple(self.values.shape)} must be [len(hooks)={len(self.hooks)}, items]")
        object.__setattr__(self, "baseline", check_baseline(self.baseline, "HookScores"))
        check_direction(self.direction)

    def effects(self) -> HookScores:
        """``self``: ``values`` are effects already (kept for code written when sweeps returned metrics).

        >>> s = HookScores(torch.tensor([[3., 1.]]), ("h",), ("round", "node"), baseline=1.0)
        >>> s.effects() is s
        True
        """
        return self

    def patched_metrics(self) -> Float[Tensor, "row item"]:
        """The metric after each patch, ``values + baseline`` (a tensor shaped like ``values``).

        >>> HookScores(torch.tensor([[2., 0.]]), ("h",), ("round", "node"), baseline=1.0).patched_metrics().tolist()
        [[3.0, 1.0]]
        """
        return self.values + self.baseline

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
        """Every effect keyed by its component."""
        flat = self.values.detach().cpu().tolist()
        return {self.component(r, i): v for r, row in enumerate(flat) for i, v in enumerate(row)}

    def top(self, n: int, absolute: bool = True) -> list[tuple[Component, float]]:
        """The ``n`` components of largest effect (by absolute value by default)."""
        key = self.values.abs() if absolute else self.values
        idx = key.flatten().topk(min(n, key.numel())).indices
        width = self.values.shape[1]
        return [(self.component(int(i) // width, int(i) % width), float(self.values.flatten()[i])) for i in idx]

    def __repr__(self) -> str:
        return (f"HookScores({self.axes[0]} x {self.axes[1]} = {tuple(self.values.shape)}, {self.direction} effects, "
                f"baseline={self.baseline:.6g}, hooks={self.hooks[0]}..{self.hooks[-1]})")


@dataclass
class Attribution:
    """Attribution :math:`(a^s - a^b) \\odot \\bar g` of every entry of each hook: estimated effects.

    Summed over a set of entries the products estimate the effect of patching them,
    :math:`m(b;\\, a \\leftarrow a^s) - m(b)`; ``baseline`` is :math:`m(b)`, the metric of the
    unpatched base run (mean over graphs), and ``direction`` the patching direction the
    estimates are for (their sign depends on it). ``axes[hook]`` is the hook's row axis.

    Each field means one thing whatever ``keep`` is; what ``keep`` decides is which are filled:

    * ``keep="all"``: ``delta[hook]`` (:math:`a^s - a^b`) and ``grad[hook]`` (:math:`\\bar g`);
      ``grad_active`` (the gradient where the activation is > 0, averaged like ``grad``, for
      the hooks that asked for it: edges through a relu) and ``grad_through[(src, dst)]``
      (:math:`\\overline{\\varphi'(a_{src})\\, g_{dst}}` for the elementwise links ``dst = \\varphi(src)``
      that asked for it);
    * ``keep="entries"``: ``by_entry[hook]``, the products, shaped like the activation;
    * ``keep="rows"``: ``by_row[hook]`` (summed over features: one value per node / edge)
      and ``by_feature[hook]`` (summed over rows: one value per neuron, a few numbers more);
    * ``keep="features"``: ``by_feature[hook]`` only, so the result's size does not depend on the
      graph (it averages over pairs of any structure, :mod:`hookgnn.parallel`).

    The other fields are empty. :meth:`entries`, :meth:`row_sums` and :meth:`feature_sums`
    derive what they can from what was kept and raise ``ValueError`` naming ``keep`` otherwise.

    >>> attr = Attribution({"h": "node"}, 0.5, keep="rows", by_row={"h": torch.tensor([1., 2.])},
    ...                    by_feature={"h": torch.tensor([3.])})
    >>> attr.rows(["h"]).values.tolist(), attr.total(), attr.baseline
    ([[1.0, 2.0]], 3.0, 0.5)

    :param axes: the row axis of each hook.
    :param baseline: the metric of the unpatched base run (mean over graphs).
    :param direction: the patching direction the estimates are for: ``"denoising"`` or ``"noising"``.
    :param keep: which fields are filled: ``"all"``, ``"entries"``, ``"rows"`` or ``"features"`` (above).
    :param delta: ``keep="all"``: :math:`a^s - a^b` by hook.
    :param grad: ``keep="all"``: the gradient :math:`\\bar g` by hook.
    :param grad_active: ``keep="all"``: the gradient where the activation is > 0, for the hooks that asked for it.
    :param grad_through: ``keep="all"``: :math:`\\overline{\\varphi'(a_{src})\\, g_{dst}}` by ``(src, dst)`` link.
    :param by_entry: ``keep="entries"``: the products, shaped like each activation.
    :param by_row: ``keep="rows"``: the products summed over features, one value per row.
    :param by_feature: ``keep="rows"`` or ``"features"``: the products summed over rows, one value per neuron.
    """

    axes: dict[str, str]
    baseline: float
    direction: Direction = DEFAULT_DIRECTION
    keep: Keep = "all"
    delta: dict[str, Tensor] = field(default_factory=dict)
    grad: dict[str, Tensor] = field(default_factory=dict)
    grad_active: dict[str, Tensor] = field(default_factory=dict)
    grad_through: dict[tuple[str, str], Tensor] = field(default_factory=dict)
    by_entry: dict[str, Tensor] = field(default_factory=dict)
    by_row: dict[str, Tensor] = field(default_factory=dict)
    by_feature: dict[str, Tensor] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.baseline = check_baseline(self.baseline, "Attribution")
        check_direction(self.direction)
        if self.keep not in KEEPS:
            raise ValueError(f"keep must be one of {KEEPS}, got {self.keep!r}")
        mine = KEPT_FIELDS[self.keep]
        extra = [name for names in KEPT_FIELDS.values() for name in names if name not in mine and getattr(self, name)]
        if extra:
            raise ValueError(f"an Attribution with keep={self.keep!r} fills only {list(mine)}, "
                             f"got {sorted(set(extra))} too")
        for name in mine[:2] if self.keep == "all" else mine:
            missing = [h for h in self.axes if h not in getattr(self, name)]
            if missing:
                raise ValueError(f"an Attribution with keep={self.keep!r} needs {name}[hook] for every hook of axes; "
                                 f"missing {missing}")

    def _refuse(self, what: str) -> ValueError:
        able = {"entries": "'all' or 'entries'", "row sums": "'all', 'entries' or 'rows'"}
        return ValueError(f"this Attribution was made with keep={self.keep!r}, which keeps no {what}; "
                          f"rerun it with keep={able[what]}")

    def entries(self, hook: str) -> Tensor:
        """``delta * grad`` of one hook, the shape of its activation (``keep`` ``"all"`` or ``"entries"``)."""
        if self.keep == "all":
            return self.delta[hook] * self.grad[hook]
        if self.keep == "entries":
            return self.by_entry[hook]
        raise self._refuse("entries")

    def row_sums(self, hook: str) -> Tensor:
        """``entries`` of one hook summed over features: one value per row (any ``keep`` but ``"features"``)."""
        if self.keep == "rows":
            return self.by_row[hook]
        if self.keep == "features":
            raise self._refuse("row sums")
        e = self.entries(hook)
        return e.reshape(e.shape[0], math.prod(e.shape[1:])).sum(1)  # no -1: ambiguous without rows

    def feature_sums(self, hook: str) -> Tensor:
        """``entries`` of one hook summed over rows: one value per feature (any ``keep``)."""
        if self.keep in ("rows", "features"):
            return self.by_feature[hook]
        return self.entries(hook).sum(0)

    def rows(self, hooks: Sequence[str]) -> HookScores:
        """Estimated effects of row components (nodes / edges): summed over features, ``[hook, item]``."""
        vals = [self.row_sums(h) for h in hooks]
        axes = {self.axes[h] for h in hooks}
        if len(axes) != 1 or len({v.shape[0] for v in vals}) != 1:
            raise ValueError(f"row scores need hooks of one axis and size, got {[(h, self.axes[h]) for h in hooks]}")
        return HookScores(torch.stack(vals), tuple(hooks), ("round", axes.pop()), self.baseline, self.direction)

    def features(self, hooks: Sequence[str]) -> HookScores:
        """Estimated effects of neuron components (one feature at every row): ``[hook, feature]``."""
        vals = [self.feature_sums(h) for h in hooks]
        return HookScores(torch.stack(vals), tuple(hooks), ("round", "feature"), self.baseline, self.direction)

    def components(self, hooks: Sequence[str] | None = None, granularity: str = "feature") -> dict[Component, float]:
        """Estimated effects keyed by :class:`Component` (``"row"`` or ``"feature"`` granularity)."""
        out: dict[Component, float] = {}
        for h in self.axes if hooks is None else hooks:
            if granularity == "row":
                out.update({Component(h, i): float(v) for i, v in enumerate(self.row_sums(h))})
            elif (f := self.feature_sums(h)).dim() == 1:
                out.update({Component(h, None, i): float(v) for i, v in enumerate(f)})
        return out

    def total(self) -> float:
        """The estimated effect of patching every entry of every hook (the sum of all products)."""
        kept = {"all": self.entries, "entries": self.entries, "rows": self.row_sums, "features": self.feature_sums}
        return float(sum(kept[self.keep](h).sum() for h in self.axes))


@dataclass
class EdgeScores:
    """EAP scores of computational edges: ``scores[i]`` is the estimated effect (metric change)
    of patching ``edges[i]`` in the patching ``direction``; ``baseline`` is the metric of the
    unpatched base run (mean over graphs), as in :class:`HookScores`.

    >>> from hookgnn.patching.components import MessageEdge
    >>> s = EdgeScores([MessageEdge(0, 0, 0, 1)], torch.tensor([0.25]), baseline=1.0)
    >>> s.top(1)[0][1], s.baseline
    (0.25, 1.0)

    :param edges: the computational edges (:class:`~hookgnn.patching.components.MessageEdge`,
        :class:`~hookgnn.patching.components.WeightEdge`).
    :param scores: ``scores[i]``: the estimated effect of patching ``edges[i]``, ``[len(edges)]``.
    :param baseline: the metric of the unpatched base run (mean over graphs).
    :param direction: the patching direction: ``"denoising"`` or ``"noising"``.
    """

    edges: list[Edge]
    scores: Tensor
    baseline: float
    direction: Direction = DEFAULT_DIRECTION

    def __post_init__(self) -> None:
        if self.scores.dim() != 1 or self.scores.shape[0] != len(self.edges):
            raise ValueError(f"scores {tuple(self.scores.shape)} must be [len(edges)={len(self.edges)}]")
        self.baseline = check_baseline(self.baseline, "EdgeScores")
        check_direction(self.direction)

    def as_dict(self) -> dict[Edge, float]:
        """Scores keyed by edge."""
        return dict(zip(self.edges, self.scores.tolist()))

    def of_kind(self, kind: type) -> EdgeScores:
        """The scores of the edges of one kind (``MessageEdge`` or ``WeightEdge``) only."""
        keep = [i for i, e in enumerate(self.edges) if isinstance(e, kind)]
        return EdgeScores([self.edges[i] for i in keep], self.scores[keep], self.baseline, self.direction)

    def top(self, n: int) -> list[tuple[Edge, float]]:
        """The ``n`` edges with the largest absolute scores, best first, with their scores."""
        idx = self.scores.abs().topk(min(n, len(self.edges))).indices.tolist()
        return [(self.edges[i], float(self.scores[i])) for i in idx]
