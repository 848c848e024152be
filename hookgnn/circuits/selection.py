"""What a circuit is and how one is chosen and compared: :class:`Circuit`, selection by score
(:func:`select`, :func:`greedy_from_outputs`), :func:`prune`, and overlap (:func:`jaccard`,
:func:`weighted_jaccard`).

A :class:`Circuit` holds :class:`~hookgnn.patching.components.Component` s and/or edges
(:class:`~hookgnn.patching.components.MessageEdge`,
:class:`~hookgnn.patching.components.WeightEdge`); an edge runs from its :func:`tail`
(upstream end) to its :func:`head`. Evaluating a circuit on a model (ablating the rest)
is :mod:`hookgnn.circuits.circuit`, which re-exports everything here.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Hashable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from hookgnn._deprecated import warn_deprecated
from hookgnn.patching.components import Component, Edge, MessageEdge, WeightEdge


@dataclass(frozen=True)
class Circuit:
    """A set of components and computational edges.

    >>> c = Circuit(frozenset({Component("h", 0)}))
    >>> len(c), Component("h", 0) in c
    (1, True)

    :param components: the components (rows or features of hook points) in the circuit.
    :param edges: the computational edges (messages, weight edges) in the circuit.
    """

    components: frozenset[Component] = field(default_factory=frozenset)
    edges: frozenset[Edge] = field(default_factory=frozenset)

    @staticmethod
    def of(items: Iterable[Component | Edge]) -> Circuit:
        """The circuit of a mixed iterable of components and edges, sorted into the two sets."""
        items = list(items)
        return Circuit(frozenset(i for i in items if isinstance(i, Component)),
                       frozenset(i for i in items if not isinstance(i, Component)))

    def __len__(self) -> int:
        return len(self.components) + len(self.edges)

    def __contains__(self, item: object) -> bool:
        return item in self.components or item in self.edges

    def items(self) -> frozenset[Component | Edge]:
        """Every component and edge of the circuit, as one set."""
        return self.components | self.edges  # type: ignore[operator]


# -------------------------------------------------------------------- selection
def _ranked(scores: Mapping[Hashable, float], absolute: bool) -> list[tuple[float, Any]]:
    """(key value, key) by decreasing value (stable: ties keep the mapping's order); raises on NaN."""
    out = []
    for k, v in scores.items():
        v = float(v)
        if v != v:
            raise ValueError(f"the score of {k!r} is NaN; a ranking needs every score to be a number")
        out.append((abs(v) if absolute else v, k))
    return sorted(out, key=lambda p: -p[0])


def select(
    scores: Mapping[Hashable, float] | Any,
    n: int | None = None,
    threshold: float | None = None,
    absolute: bool = True,
) -> list[Any]:
    """The components (or edges) to keep: keys by decreasing (absolute) score, never padded.

    ``scores``: a mapping from component (or edge) to score, or a result with ``as_dict()``
    (:class:`~hookgnn.patching.results.HookScores`, :class:`~hookgnn.patching.results.EdgeScores`).
    A key is kept when its score (``|score|`` with ``absolute=True``) exceeds ``threshold``,
    or, without a threshold, when it scores at all (non-zero; positive with
    ``absolute=False``): a component with no effect is never chosen to fill a circuit.
    ``n`` keeps at most the best ``n`` of those, so the list can be shorter than ``n``.
    Give ``n``, ``threshold`` or both. Ties keep the order of ``scores``; a NaN score raises
    ``ValueError``.

    >>> select({"a": 1.0, "b": -3.0, "c": 2.0}, n=2)
    ['b', 'c']
    >>> select({"a": 0.0, "b": 2.0, "c": 0.0}, n=3)
    ['b']
    >>> select({"a": 1.0, "b": -3.0, "c": 2.5}, threshold=2.0)
    ['b', 'c']

    :param scores: component (or edge) -> score, or a result with ``as_dict()``
        (:class:`~hookgnn.patching.HookScores`, :class:`~hookgnn.patching.EdgeScores`).
    :param n: keep at most the best ``n``.
    :param threshold: keep keys whose score (``|score|`` with ``absolute=True``) exceeds it.
    :param absolute: rank by ``|score|`` (default) or by the signed score.
    """
    if n is None and threshold is None:
        raise ValueError("select needs n= (how many to keep), threshold= (the score to exceed) or both")
    if n is not None and n < 0:
        raise ValueError(f"n must be >= 0, got {n}")
    if not isinstance(scores, Mapping):
        as_dict = getattr(scores, "as_dict", None)
        if not callable(as_dict):
            raise TypeError(f"select takes a mapping of scores or a result with as_dict(), got {type(scores).__name__}")
        scores = as_dict()
    floor = 0.0 if threshold is None else float(threshold)
    kept = [k for v, k in _ranked(scores, absolute) if v > floor]
    return kept if n is None else kept[:n]


def top_n(scores: Mapping[Hashable, float], n: int, absolute: bool = True) -> list[Any]:
    """Deprecated: ``select(scores, n=n)``."""
    warn_deprecated("top_n", "select(scores, n=...)")
    return select(scores, n=n, absolute=absolute)


def above(scores: Mapping[Hashable, float], tau: float, absolute: bool = True) -> list[Any]:
    """Deprecated: ``select(scores, threshold=tau)``."""
    warn_deprecated("above", "select(scores, threshold=...)")
    return select(scores, threshold=tau, absolute=absolute)


def tail(edge: Edge) -> Component:
    """The upstream end of an edge (a node state for a message edge)."""
    return edge.sender if isinstance(edge, MessageEdge) else edge.src


def head(edge: Edge) -> Component:
    """The downstream end (for a message edge: the receiver's state after the round)."""
    return edge.head if isinstance(edge, MessageEdge) else edge.dst


def greedy_from_outputs(scores: Mapping[Edge, float], n: int, outputs: Iterable[Component]) -> Circuit:
    """Grow a circuit from the outputs: repeatedly add the best-scoring (absolute) edge whose
    downstream end is already connected to an output, until ``n`` edges.

    For message edges the ends are node states (rows of the states entering and leaving
    the round); for weight edges, neurons.
    """
    by_head: dict[Component, list[Edge]] = {}
    for e in scores:
        by_head.setdefault(head(e), []).append(e)
    heap: list[tuple[float, int, Edge]] = []
    counter = 0
    reached: set[Component] = set()

    def reach(c: Component) -> None:
        nonlocal counter
        if c in reached:
            return
        reached.add(c)
        for e in by_head.get(c, []):
            heapq.heappush(heap, (-abs(scores[e]), counter, e))
            counter += 1

    for c in outputs:
        reach(c)
    chosen: list[Edge] = []
    while heap and len(chosen) < n:
        _, _, e = heapq.heappop(heap)
        chosen.append(e)
        reach(tail(e))
    return Circuit(edges=frozenset(chosen))


def prune(circuit: Circuit, outputs: Iterable[Component], inputs: Callable[[Component], bool] | Iterable[Component]) -> Circuit:
    """Drop edges not on a path from an input to an output through the circuit's edges.

    ``inputs``: a set of components or a predicate (e.g. ``lambda c: c.hook == "hook_node_embed"``).

    >>> a, b, c, d = (Component("h", i) for i in range(4))
    >>> chain = WeightEdge(a, b, "w"), WeightEdge(b, c, "w"), WeightEdge(d, c, "w")  # d is not an input
    >>> len(prune(Circuit(edges=frozenset(chain)), outputs=[c], inputs=[a]).edges)
    2

    :param circuit: the circuit to prune; a new one is returned.
    :param outputs: the components that count as outputs (paths end there).
    :param inputs: the components that count as inputs (paths start there): a set of components or a predicate.
    """
    is_input = inputs if callable(inputs) else set(inputs).__contains__
    edges = list(circuit.edges)
    fwd: set[Component] = {tail(e) for e in edges if is_input(tail(e))}
    bwd: set[Component] = set(outputs)
    changed = True
    while changed:
        changed = False
        for e in edges:
            if tail(e) in fwd and head(e) not in fwd:
                fwd.add(head(e))
                changed = True
            if head(e) in bwd and tail(e) not in bwd:
                bwd.add(tail(e))
                changed = True
    keep = frozenset(e for e in edges if tail(e) in fwd and head(e) in bwd)
    return Circuit(circuit.components, keep)


# ---------------------------------------------------------------------- overlap
def jaccard(a: Iterable[Hashable], b: Iterable[Hashable]) -> float:
    """|A ∩ B| / |A ∪ B| (1 for two empty sets).

    >>> jaccard({1, 2, 3}, {2, 3, 4})
    0.5
    """
    a, b = set(a), set(b)
    return 1.0 if not (a | b) else len(a & b) / len(a | b)


def weighted_jaccard(a: Mapping[Hashable, float], b: Mapping[Hashable, float]) -> float:
    """:math:`\\sum_k \\min(|a_k|, |b_k|) / \\sum_k \\max(|a_k|, |b_k|)` (missing keys count 0).

    >>> weighted_jaccard({"x": 1.0, "y": 2.0}, {"x": 1.0, "z": 2.0})
    0.2
    """
    keys = set(a) | set(b)
    lo = sum(min(abs(a.get(k, 0.0)), abs(b.get(k, 0.0))) for k in keys)
    hi = sum(max(abs(a.get(k, 0.0)), abs(b.get(k, 0.0))) for k in keys)
    return 1.0 if hi == 0 else lo / hi
