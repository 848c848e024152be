"""HookScores: a table of scores with named axes, one row per hook point (round).

A patching sweep or an attribution returns, for a family of hooks (one per round),
a tensor ``values[row, item]`` where row ``r`` belongs to hook ``hooks[r]`` and
``axes`` names both dimensions, e.g. ``("round", "node")``, ``("round", "edge")`` or
``("round", "feature")``. Scores are never handed back as positional lists.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any, Literal

import torch
from jaxtyping import Float
from torch import Tensor

from hookgnn.patching.components import Component

Direction = Literal["denoising", "noising"]
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
