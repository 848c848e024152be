"""Depth-first search with discovery/finish times and low-links: the engine of DFS,
articulation points and bridges.

Roots are taken in increasing index; from each node the unvisited out-neighbours are
entered in increasing index (CLRS). One step is one event: a node is discovered
(``time += 1``, ``disc[v] = time``, grey) or finished (``time += 1``, ``fin[v] = time``,
black), so every trajectory has ``T = 1 + 2n`` steps, step 0 being the all-white state.

With ``lowlink=True`` (undirected graphs) it also keeps Hopcroft-Tarjan low values,

.. math:: low[v] = \\min\\big(disc[v],\\ \\min_{\\text{back edges } v - x} disc[x],\\
          \\ \\min_{\\text{children } c} low[c]\\big),

where the tree edge to the parent is not a back edge unless it has a parallel copy. On
finishing a child ``c`` of ``p``: ``p`` becomes a cut vertex if it is not a root and
``low[c] >= disc[p]``, or it is a root with two children; ``{p, c}`` is a bridge if
``low[c] > disc[p]`` and the edge has no parallel copy.

Times are stored divided by ``2n`` (so in ``[0, 1]``; 0 = not yet).

Cost: ``T = 1 + 2n`` steps, so the node hints are ``[T, n]`` (``2 n^2`` entries: 32 MB
of float32 per hint at ``n = 2000``) and the edge hints (``pi_h`` as stored,
``is_bridge_h``) ``[T, E]`` (128 MB each at ``n = 2000``, ``E = 8000``). The walk reads
the sparse arcs (:mod:`hookgnn.tasks.adjacency`) and costs ``O(n + E)``; the hints are
built from event times in ``O(T (n + E))``.
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np

from hookgnn.spec import FeatureSpec, Spec
from hookgnn.tasks.adjacency import Adjacency
from hookgnn.tasks.base import Task

WHITE, GREY, BLACK = 0, 1, 2

#: The hints every DFS task shares: the parent pointers and the colours of the walk.
WALK_HINTS: Spec = {
    "pi_h": FeatureSpec("hint", "node", "pointer"),
    "color": FeatureSpec("hint", "node", "categorical", dim=3),
    "disc_h": FeatureSpec("hint", "node", "scalar"),
}
#: The hints of the low-link tasks (articulation points, bridges): the walk plus the low values.
LOWLINK_HINTS: Spec = {**WALK_HINTS, "low_h": FeatureSpec("hint", "node", "scalar")}


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
    """Run DFS over all roots; returns final ``pi`` [n], ``is_cut`` [n], ``is_bridge`` [E]
    (over the stored edges) and hints ``pi_h``, ``color``, ``disc_h``, ``fin_h`` [T, n],
    with ``lowlink``: ``low_h``, ``is_cut_h`` [T, n] and ``is_bridge_h`` [T, E].

    Step ``t`` is the state after the ``t``-th event, so ``t`` is the clock: a node
    discovered at time ``disc[v]`` is grey from step ``disc[v]`` and black from
    ``fin[v]``, and keeps its parent from discovery on. The walk records only these
    event times (and the low values per step), and the hints are built from them, so
    memory is ``O(T (n + E))`` and the walk ``O(n + E)``.

    >>> from hookgnn.tasks.adjacency import adjacency
    >>> ei = np.array([[0, 1, 1, 2], [1, 0, 2, 1]])  # the path 0 - 1 - 2
    >>> r = depth_first(adjacency(ei, np.zeros(4), 3), lowlink=True)
    >>> r["pi"].tolist(), r["is_cut"].tolist(), r["is_bridge"].tolist(), r["color"].shape
    ([0, 0, 1], [False, True, False], [True, True, True, True], (7, 3))
    """
    if lowlink and not adj.symmetric:
        raise ValueError("low-links need an undirected graph (every edge u -> v matched by v -> u)")
    n = adj.num_nodes
    steps = 1 + 2 * n
    indptr, dst, count = adj.indptr.tolist(), adj.dst.tolist(), adj.count.tolist()
    pi = list(range(n))
    disc, fin = [0] * n, [0] * n  # event times, 0 = not yet
    low = np.zeros(n, dtype=np.int64)
    low_h = np.zeros((steps, n), dtype=np.int32) if lowlink else None
    cut_time = np.full(n, steps)  # the step at which v is known to be a cut vertex
    bridge_time = np.full(adj.num_arcs, steps)  # the step at which arc a is known to be a bridge
    children = [0] * n
    parent_arc = [-1] * n  # the arc pi[v] -> v
    time = 0

    def event() -> None:
        if low_h is not None:
            low_h[time] = low

    for root in range(n):
        if disc[root]:
            continue
        time += 1
        disc[root] = low[root] = time
        event()
        stack = [[root, indptr[root]]]  # node, its next arc
        while stack:
            top = stack[-1]
            u = top[0]
            child = -1
            while top[1] < indptr[u + 1]:
                a = top[1]
                top[1] += 1
                v = dst[a]
                if not disc[v]:
                    child = v
                    parent_arc[v] = a
                    break
                if lowlink and (v != pi[u] or count[a] >= 2) and disc[v] < low[u]:
                    low[u] = disc[v]
            if child >= 0:
                pi[child] = u
                children[u] += 1
                time += 1
                disc[child] = low[child] = time
                event()
                stack.append([child, indptr[child]])
                continue
            stack.pop()
            time += 1
            fin[u] = time
            p = pi[u]
            if lowlink and p != u:
                low[p] = min(low[p], low[u])
                if (pi[p] != p and low[u] >= disc[p]) or (pi[p] == p and children[p] >= 2):
                    cut_time[p] = min(cut_time[p], time)
                a = parent_arc[u]
                if low[u] > disc[p] and count[a] == 1:
                    bridge_time[a] = time
            event()
    return _hints(adj, np.array(pi), np.array(disc), np.array(fin), low_h, cut_time, bridge_time)


def _hints(adj: Adjacency, pi: np.ndarray, disc: np.ndarray, fin: np.ndarray, low_h: np.ndarray | None,
           cut_time: np.ndarray, bridge_time: np.ndarray) -> dict[str, np.ndarray]:
    """Hint trajectories ``[T, ...]`` from the event times of :func:`depth_first`."""
    n = adj.num_nodes
    steps = 1 + 2 * n
    t = np.arange(steps)[:, None]
    found, done = t >= disc, t >= fin  # [T, n]
    clock = (np.arange(steps) / (2 * n)).astype(np.float32)  # time k stored as k / 2n
    out = {
        "pi": pi,
        "pi_h": np.where(found, pi, np.arange(n)),
        "color": found.astype(np.int8) + done,  # WHITE, GREY, BLACK
        "disc_h": np.where(found, clock[disc], np.float32(0)),
        "fin_h": np.where(done, clock[fin], np.float32(0)),
    }
    if low_h is not None:
        # the reverse arc of a bridge u -> v is v -> u: both stored directions switch on together
        reverse = np.lexsort((adj.src, adj.dst))  # arc (v, u) at the position of arc (u, v)
        arc_time = np.minimum(bridge_time, bridge_time[reverse])
        edge_time = np.append(arc_time, steps)[adj.arc_of_edge]  # [E]; self-loops (arc -1): never
        out.update(
            low_h=clock[low_h],
            is_cut=cut_time < steps,
            is_cut_h=t >= cut_time,
            is_bridge=edge_time < steps,
            is_bridge_h=t >= edge_time,
        )
    return out
