"""CLRS's iterative depth-first search with an explicit stack, one hint step per event.

Topological sort, Kosaraju's SCC (both passes) and DAG shortest paths share this walk
(CLRS ``clrs/_src/algorithms/graphs.py``). From each root ``s`` (in the given order, if
still white) it records a step at the root, then loops over ``u`` (the stack top,
``s_last``):

1. *discover*: if ``discover(u)`` says so (``u`` white), ``u`` turns grey: a step;
2. *push*: the first white out-neighbour ``v`` of ``u`` (lowest number first) turns grey,
   ``s_prev[v] = s_last``, ``s_last = v``: a step;
3. *finish*: if nothing was pushed, ``u`` turns black and ``finish(u)`` runs: a step; then
   the stack pops (``s_prev`` of the popped node reset to itself).

When no neighbour is pushed, the recorded ``v`` is the last node ``n - 1`` (CLRS's loop
variable after a full scan). Nodes are numbered by ``pos`` rank (see
:mod:`hookgnn.tasks.pointer_edges`). Time is ``O(n + A)`` plus the steps recorded.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import numpy as np

from hookgnn.tasks.adjacency import Adjacency


@dataclass
class DFSState:
    """The walk's state: ``color`` (0 white, 1 grey, 2 black), stack links ``s_prev`` and the
    current root ``s``, node ``u``, neighbour ``v`` and stack top ``s_last``."""

    n: int
    color: np.ndarray = field(init=False)
    s_prev: np.ndarray = field(init=False)
    s: int = 0
    u: int = 0
    v: int = 0
    s_last: int = 0

    def __post_init__(self) -> None:
        self.color = np.zeros(self.n, dtype=np.int64)
        self.s_prev = np.arange(self.n)


def walk(adj: Adjacency, state: DFSState, roots: Iterable[int], record: Callable[[], None],
         discover: Callable[[int], bool], finish: Callable[[int], None],
         visit: Callable[[int], None] | None = None) -> None:
    """Run the walk (module doc) over ``adj``'s arcs from ``roots``, calling ``record()`` at
    every step; ``discover(u)`` turns ``u`` grey and returns whether that is a step."""
    st = state
    for s in roots:
        if st.color[s] != 0:
            continue
        st.s = st.s_last = st.u = st.v = int(s)
        record()
        while True:
            u = st.u
            if visit is not None:
                visit(u)
            if discover(u):
                record()
            pushed = False
            for v in adj.out_neighbours(u).tolist():
                if st.color[v] == 0:
                    st.color[v] = 1
                    st.s_prev[v] = st.s_last
                    st.s_last = st.v = v
                    record()
                    pushed = True
                    break
            if not pushed:
                st.v = st.n - 1
            if st.s_last == u:
                st.color[u] = 2
                finish(u)
                record()
                if st.s_prev[u] == u:
                    break
                top = st.s_last
                st.s_last = int(st.s_prev[top])
                st.s_prev[top] = top
            st.u = st.s_last


def mask_one(i: int, n: int) -> np.ndarray:
    """A 0/1 vector with a single 1 at ``i``."""
    out = np.zeros(n)
    out[i] = 1.0
    return out
