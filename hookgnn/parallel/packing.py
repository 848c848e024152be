"""Patching results as one flat vector and back, so that ranks can sum them with one ``all_reduce``.

A result is split into its *layout* (everything that is not a number: hooks, axes,
direction, edges, shapes, dtypes; picklable, compared across pairs and ranks) and its
*numbers* (a list of tensors: the scores and the ``baseline``). Two results average only when their layouts are equal;
otherwise :func:`check_layout` says what differs.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from hookgnn.patching.results import KEPT_FIELDS, Attribution, EdgeScores, HookScores

Layout = tuple[Any, ...]


def unpack(result: Any) -> tuple[Layout, list[Tensor]]:
    """``(layout, numbers)`` of a :class:`HookScores`, :class:`EdgeScores` or :class:`Attribution`.

    >>> s = HookScores(torch.ones(1, 2), ("h",), ("round", "node"), baseline=0.5)
    >>> layout, numbers = unpack(s)
    >>> back = pack(layout, numbers)
    >>> back.values.tolist(), back.baseline, back.direction
    ([[1.0, 1.0]], 0.5, 'denoising')
    """
    if isinstance(result, HookScores):
        numbers = [result.values, _scalar(result.baseline)]
        return ("HookScores", result.hooks, result.axes, result.direction, _shapes(numbers)), numbers
    if isinstance(result, EdgeScores):
        numbers = [result.scores, _scalar(result.baseline)]
        return ("EdgeScores", tuple(result.edges), result.direction, _shapes(numbers)), numbers
    if isinstance(result, Attribution):
        if result.keep == "all":
            raise ValueError("an Attribution with keep='all' holds differences and gradients, whose products do not "
                             "average over pairs as they do; use keep='entries', 'rows' or 'features'")
        names = tuple(result.axes)
        kept = KEPT_FIELDS[result.keep]
        numbers = [_scalar(result.baseline)] + [getattr(result, to)[n] for to in kept for n in names]
        return ("Attribution", result.keep, tuple(result.axes.items()), result.direction, _shapes(numbers)), numbers
    raise TypeError(f"cannot average a {type(result).__name__} over pairs: expected HookScores, EdgeScores or "
                    "Attribution (from a hookgnn.patching function)")


def pack(layout: Layout, numbers: list[Tensor]) -> Any:
    """The result of ``layout`` with ``numbers`` (the inverse of :func:`unpack`)."""
    kind = layout[0]
    if kind == "HookScores":
        _, hooks, axes, direction, _ = layout
        return HookScores(numbers[0], hooks, axes, float(numbers[1][0]), direction)
    if kind == "EdgeScores":
        _, edges, direction, _ = layout
        return EdgeScores(list(edges), numbers[0], float(numbers[1][0]), direction)
    _, keep, axes, direction, _ = layout
    axes = dict(axes)
    rest = iter(numbers[1:])
    fields = {to: {n: next(rest) for n in axes} for to in KEPT_FIELDS[keep]}
    return Attribution(axes, float(numbers[0][0]), direction, keep=keep, **fields)


def _scalar(x: float) -> Tensor:
    return torch.tensor([x], dtype=torch.float64)


def _shapes(numbers: list[Tensor]) -> tuple[tuple[tuple[int, ...], torch.dtype], ...]:
    return tuple((tuple(t.shape), t.dtype) for t in numbers)


def check_layout(first: Layout, other: Layout, where: str) -> None:
    """``ValueError`` saying how ``other`` (at ``where``) differs from ``first``, if it does."""
    if first == other:
        return
    if first[0] != other[0]:
        raise ValueError(f"{where} returned {other[0]} but the first pair {first[0]}")
    kind = first[0]
    shapes_a, shapes_b = first[-1], other[-1]
    if kind == "HookScores" and first[1] != other[1]:
        problem = f"hooks {list(other[1])} instead of {list(first[1])}"
    elif kind == "EdgeScores" and first[1] != other[1]:
        problem = (f"{len(other[1])} edges that are not the first pair's {len(first[1])} (message edges belong to one "
                   "graph structure; level='weight' scores average over graphs of any structure)")
    elif [s for s, _ in shapes_a] != [s for s, _ in shapes_b]:
        problem = (f"scores of shapes {[s for s, _ in shapes_b]} instead of {[s for s, _ in shapes_a]} (rows are "
                   "nodes or edges of one graph structure: average row scores over pairs that share it, or use "
                   "feature-level scores)")
    else:
        problem = f"a layout {other[:-1]} instead of {first[:-1]}"
    raise ValueError(f"results do not average over pairs: {where} has {problem}")


def flat(numbers: list[Tensor]) -> Tensor:
    """The numbers as one float64 vector on the CPU."""
    if not numbers:
        return torch.zeros(0, dtype=torch.float64)
    return torch.cat([t.detach().reshape(-1).to("cpu", torch.float64) for t in numbers])


def unflat(vector: Tensor, layout: Layout) -> list[Tensor]:
    """:func:`flat`'s inverse: tensors of the layout's shapes and dtypes."""
    out, at = [], 0
    for shape, dtype in layout[-1]:
        n = int(torch.tensor(shape, dtype=torch.long).prod()) if shape else 1
        out.append(vector[at:at + n].reshape(shape).to(dtype))
        at += n
    return out
