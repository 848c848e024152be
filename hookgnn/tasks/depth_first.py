"""Depth-first search probed exactly as CLRS-30 probes it: the engine of DFS, articulation
points and bridges.

The walk is CLRS's (``clrs/_src/algorithms/graphs.py``, functions ``dfs``,
``articulation_points``, ``bridges``), read on sparse neighbour lists. Roots are taken in
increasing index. The walk keeps an explicit stack as a linked list: ``s_last`` is its
top and ``s_prev[v]`` the node below ``v`` (``v`` itself when it is the bottom or off the
stack). At node ``u = s_last`` it

1. discovers ``u`` if ``d[u] = 0``: ``time += 0.01``, ``d[u] = time`` (and ``low[u] = time``),
   grey; *one step*;
2. scans the out-neighbours ``v`` of ``u`` in increasing index, from the first one
   again at every visit: the first white ``v`` is pushed (``pi[v] = u``, grey,
   ``s_prev[v] = s_last``, ``s_last = v``, ``child_cnt[u] += 0.01``; *one step*) and the
   scan stops; with low-links, every non-white ``v != pi[u]`` met before it (a back
   edge, or a finished child) sets ``low[u] = min(low[u], d[v])`` (*one step each*, at
   every visit);
3. if nothing was pushed, finishes ``u``: black, ``time += 0.01``, ``f[u] = time``; with
   low-links, over the children ``c`` of ``u``: ``low[u] = min(low[u], low[c])``, ``u`` is a
   cut vertex if it is not a root and ``low[c] >= d[u]`` (a root: if ``child_cnt[u] >
   0.01``, i.e. two children), and ``{u, c}`` is a bridge if ``low[c] > d[u]``; *one
   step*; then pops ``u``.

Each root adds one step before its discovery (its initial state), so DFS has ``T = 3n``
steps; articulation points and bridges add one per back-edge inspection. Step ``t``
stores the whole state: ``pi_h``, ``s_prev`` (pointers, on the edge ``parent -> v`` or
the self-loop), ``color`` (white/grey/black), ``d``, ``f``, ``low``, ``child_cnt``
(scalars, the raw CLRS values: multiples of 0.01), the one-hot nodes ``s`` (the root),
``u``, ``v`` and ``s_last``, the graph scalar ``time``, and the flags ``is_cut_h`` [T, n] /
``is_bridge_h`` [T, E]. ``v`` is CLRS's loop variable: after a scan that pushed nothing
it is the last node, ``n - 1``, as in CLRS.

A self-loop of the graph (a second stored edge ``u -> u``, CLRS's diagonal of ``A``) is met
in index order like any neighbour: it never pushes (``u`` is grey), and with low-links
it counts one inspection step when ``u`` is not a root, as in CLRS.

Parallel edges (which CLRS's adjacency matrices cannot hold): an edge to the parent
with a parallel copy is a back edge, so such edges are never bridges (networkx's
multigraph rule); CLRS's graphs have none, so its trajectories are unchanged.

Cost: one step copies the node state, so memory is ``O(T (n + E))`` (``is_bridge_h``
is per stored edge); ``T = 3n`` for DFS and at most ``3n + sum_u deg(u)^2`` with
low-links (each visit of ``u`` rescans its neighbours, as CLRS does).
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np

from hookgnn.spec import FeatureSpec, Spec
from hookgnn.tasks.adjacency import Adjacency
from hookgnn.tasks.base import Task

WHITE, GREY, BLACK = 0, 1, 2
#: CLRS's clock tick: every discovery and finish adds it to ``time``.
TICK = 0.01

_POINTER, _MASK_ONE = FeatureSpec("hint", "node", "pointer"), FeatureSpec("hint", "node", "mask_one")
_SCALAR = FeatureSpec("hint", "node", "scalar")
#: The hints every CLRS DFS task shares, in CLRS's order.
WALK_HINTS: Spec = {
    "pi_h": _POINTER,
    "color": FeatureSpec("hint", "node", "categorical", dim=3),
    "d": _SCALAR,
    "f": _SCALAR,
}
#: CLRS's stack and cursor hints, after the task's own.
STACK_HINTS: Spec = {
    "s_prev": _POINTER, "s": _MASK_ONE, "u": _MASK_ONE, "v": _MASK_ONE, "s_last": _MASK_ONE,
    "time": FeatureSpec("hint", "graph", "scalar"),
}


class DepthFirstTask(Task):
    """A task read off one :func:`depth_first` walk: ``algorithm`` keeps the fields named in ``spec``.

    Subclasses set ``name``, ``spec`` and ``lowlink`` (whether the walk keeps low values; the
    low-link tasks are then ``undirected_only``).

    >>> from hookgnn.tasks import Bridges, DFS
    >>> isinstance(Bridges(), DepthFirstTask), Bridges.lowlink, DFS.lowlink
    (True, True, False)
    """

    lowlink: ClassVar[bool] = False

    def algorithm(self, adj: Adjacency, source: int) -> dict[str, np.ndarray]:
        r = depth_first(adj, lowlink=self.lowlink)
        return {k: r[k] for k in self.spec if self.spec[k].stage != "input"}


def depth_first(adj: Adjacency, lowlink: bool = False) -> dict[str, np.ndarray]:
    """CLRS's DFS over all roots; returns ``pi`` [n] and the hints [T, ...] of the module doc,
    with ``lowlink`` also ``is_cut`` [n], ``is_bridge`` [E] and their hints.

    >>> from hookgnn.tasks.adjacency import adjacency
    >>> ei = np.array([[0, 1, 1, 2], [1, 0, 2, 1]])  # the path 0 - 1 - 2
    >>> r = depth_first(adjacency(ei, np.zeros(4), 3), lowlink=True)
    >>> r["pi"].tolist(), r["is_cut"].tolist(), r["is_bridge"].tolist(), r["color"].shape
    ([0, 0, 1], [False, True, False], [True, True, True, True], (11, 3))
    >>> r["u"].argmax(1).tolist()  # ..., 2 done, 1 meets its finished child 2, 1 done, 0 meets 1, 0 done
    [0, 0, 0, 1, 1, 2, 2, 1, 1, 0, 0]
    """
    if lowlink and not adj.symmetric:
        raise ValueError("low-links need an undirected graph (every edge u -> v matched by v -> u)")
    n = adj.num_nodes
    indptr, dst, count = adj.indptr.tolist(), adj.dst.tolist(), adj.count.tolist()
    own_loop = (adj.self_loops >= 2).tolist()  # the graph's own self-loop (beyond the stored one)
    color = np.zeros(n, dtype=np.int64)
    pi, s_prev = np.arange(n), np.arange(n)
    d, f, low, child_cnt = np.zeros(n), np.zeros(n), np.zeros(n), np.zeros(n)
    is_cut = np.zeros(n, dtype=bool)
    bridge_arc = np.zeros(adj.num_arcs, dtype=bool)
    children: list[list[tuple[int, int]]] = [[] for _ in range(n)]  # (child, arc u -> child)
    states: list[tuple[np.ndarray, ...]] = []
    cursor: list[tuple[int, int, int, int, float]] = []  # s, u, v, s_last, time per step
    time = 0.0

    def push(s: int, u: int, v: int, s_last: int) -> None:
        states.append((pi.copy(), color.copy(), d.copy(), f.copy(), s_prev.copy(), low.copy(), child_cnt.copy(),
                       is_cut.copy(), bridge_arc.copy()))
        cursor.append((s, u, v, s_last, time))

    for s in range(n):
        if color[s] != WHITE:
            continue
        s_last = u = v = s
        push(s, u, v, s_last)
        while True:
            if color[u] == WHITE or d[u] == 0.0:
                time += TICK
                d[u] = time
                if lowlink:
                    low[u] = time
                color[u] = GREY
                push(s, u, v, s_last)
            pushed = False
            for a in _scan(indptr[u], indptr[u + 1], dst, u, own_loop[u]):
                v = u if a < 0 else dst[a]
                if a < 0:  # the graph's self-loop at u: CLRS meets u itself, grey, in index order
                    if lowlink and v != pi[u]:
                        low[u] = min(low[u], d[v])
                        push(s, u, v, s_last)
                    continue
                if color[v] == WHITE:
                    pi[v], color[v], s_prev[v], s_last = u, GREY, s_last, v
                    children[u].append((v, a))
                    child_cnt[u] += TICK
                    push(s, u, v, s_last)
                    pushed = True
                    break
                if lowlink and (v != pi[u] or count[a] >= 2):
                    low[u] = min(low[u], d[v])
                    push(s, u, v, s_last)
            if not pushed:
                v = n - 1  # CLRS scans every index, so its loop variable ends at the last node
            if s_last == u:
                color[u] = BLACK
                time += TICK
                f[u] = time
                if lowlink:
                    for c, a in children[u]:
                        low[u] = min(low[u], low[c])
                        if pi[u] != u and low[c] >= d[u]:
                            is_cut[u] = True
                        if low[c] > d[u] and count[a] == 1:
                            bridge_arc[a] = True
                    if pi[u] == u and child_cnt[u] > TICK:
                        is_cut[u] = True
                push(s, u, v, s_last)
                if s_prev[u] == u:
                    break
                below = int(s_prev[s_last])
                s_prev[s_last] = s_last
                s_last = below
            u = s_last
    return _trajectory(adj, states, cursor, lowlink)


def _scan(lo: int, hi: int, dst: list[int], u: int, loop: bool) -> list[int]:
    """The arcs ``lo .. hi - 1`` leaving ``u`` in target order, with ``-1`` where ``u`` itself comes
    when the graph has a self-loop at ``u``."""
    arcs = list(range(lo, hi))
    if loop:
        at = next((i for i, a in enumerate(arcs) if dst[a] > u), len(arcs))
        arcs.insert(at, -1)
    return arcs


def _trajectory(adj: Adjacency, states: list[tuple[np.ndarray, ...]], cursor: list[tuple[int, int, int, int, float]],
                lowlink: bool) -> dict[str, np.ndarray]:
    """Stack the per-step states into hints ``[T, ...]``; the last step gives the outputs."""
    n = adj.num_nodes
    pi_h, color, d, f, s_prev, low, child_cnt, cut_h, bridge_h = (np.stack(a) for a in zip(*states))
    cur = np.array(cursor, dtype=np.float64)  # [T, 5]
    one_hot = lambda col: np.eye(n, dtype=np.float32)[cur[:, col].astype(np.int64)]  # noqa: E731
    out = {
        "pi": pi_h[-1], "pi_h": pi_h, "color": color, "d": d, "f": f, "s_prev": s_prev,
        "s": one_hot(0), "u": one_hot(1), "v": one_hot(2), "s_last": one_hot(3), "time": cur[:, 4:5],
    }
    if lowlink:
        # an edge u -> v is a bridge when its arc or the reverse arc v -> u was found to be one
        reverse = np.lexsort((adj.src, adj.dst))  # arc (v, u) at the position of arc (u, v)
        arcs = bridge_h | bridge_h[:, reverse]  # [T, arcs]
        on_edge = np.concatenate([arcs, np.zeros((arcs.shape[0], 1), dtype=bool)], 1)[:, adj.arc_of_edge]  # loops: 0
        out.update(low=low, child_cnt=child_cnt, is_cut=cut_h[-1], is_cut_h=cut_h, is_bridge=on_edge[-1],
                   is_bridge_h=on_edge)
    return out
