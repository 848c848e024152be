"""Dijkstra's single-source shortest paths, one extracted node per step.

Each step extracts ``u = argmin {d[v] : v in queue}`` (ties: lowest index), marks it and
relaxes its out-edges to unmarked nodes:

.. math::
    d[v] \\leftarrow d[u] + w(u, v),\\ \\pi[v] \\leftarrow u \\quad
    \\text{if } v \\notin queue \\text{ or } d[u] + w(u, v) < d[v],

adding ``v`` to the queue. So ``pi[v]`` is the first-extracted ``u`` with
``d[u] + w(u, v) = d[v]``; with positive weights nodes leave the queue in increasing
``(d, index)`` order, so ``pi[v]`` minimises ``(d[u], u)`` among those ``u``.

Step 0 is the initial state (``d = 0``, ``pi[v] = v``, queue ``{s}``, nothing marked,
``u = s``); step ``k`` follows the ``k``-th extraction, so ``T = 1 + #reachable``.
Unreachable nodes keep ``d = 0``, ``pi = self``, ``reach = 0``; ``reach`` is the final
``mark``. Parallel edges act as their lightest copy; weights must be non-negative.

Cost: ``T`` grows like ``n`` (every reachable node is one step), so the hints are
``O(n^2)``: ``d_h``, ``in_queue``, ``mark`` and ``u`` are ``[T, n]`` float32, up to
``n^2 * 4`` bytes each (16 MB at ``n = 2000``), and ``pi_h`` is ``[T, E]`` float32, up
to ``n E * 4`` bytes (64 MB at ``n = 2000``, mean degree 3, ``E = 8000`` stored edges).
Time is ``O(n^2 + E)`` (an ``O(n)`` extraction scan per step).
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
from torch import Tensor

from hookgnn.graph import Graph
from hookgnn.spec import FeatureSpec
from hookgnn.tasks.adjacency import Adjacency
from hookgnn.tasks.base import Task
from hookgnn.tasks.resume import PRIORITY_ROLES, continue_dijkstra, resume_run


def priority_search(adj: Adjacency, source: int, path_cost: bool) -> dict[str, np.ndarray]:
    """Dijkstra (``path_cost=True``: key ``d[u] + w``) or Prim (key ``w``), with hints.

    Returns ``key``, ``pi`` and the hints ``key_h``, ``pi_h``, ``in_queue``, ``mark``, ``u``
    (``[T, n]`` each, ``T = 1 +`` the number of extracted nodes). A step costs ``O(n)``
    for the extraction (a scan, which keeps the lowest-index tie rule) plus the
    extracted node's arcs, so ``O(T n + E)`` in all.

    >>> from hookgnn.tasks.adjacency import adjacency
    >>> ei = np.array([[0, 1, 1, 2], [1, 0, 2, 1]])  # the path 0 - 1 - 2, unit weights
    >>> r = priority_search(adjacency(ei, np.ones(4), 3), 0, path_cost=True)
    >>> r["key"].tolist(), r["pi"].tolist(), r["u"].argmax(1).tolist()
    ([0.0, 1.0, 2.0], [0, 0, 1], [0, 0, 1, 2])
    """
    n = adj.num_nodes
    key, pi = np.zeros(n), np.arange(n)
    in_queue, mark = np.arange(n) == source, np.zeros(n, dtype=bool)
    states = [(key.copy(), pi.copy(), in_queue.copy(), mark.copy())]
    extracted = [source]
    queued_key = np.where(in_queue, key, np.inf)  # key of queued nodes, inf elsewhere
    while in_queue.any():
        u = int(queued_key.argmin())  # first minimum: the lowest index
        in_queue[u], mark[u], queued_key[u] = False, True, np.inf
        lo, hi = adj.indptr[u], adj.indptr[u + 1]
        v = adj.dst[lo:hi]
        new = adj.weight[lo:hi] + (key[u] if path_cost else 0.0)
        upd = ~mark[v] & (~in_queue[v] | (new < key[v]))
        v, new = v[upd], new[upd]
        key[v], pi[v], in_queue[v], queued_key[v] = new, u, True, new
        states.append((key.copy(), pi.copy(), in_queue.copy(), mark.copy()))
        extracted.append(u)
    key_h, pi_h, q_h, mark_h = (np.stack(a) for a in zip(*states))
    u_h = np.zeros((len(extracted), n), dtype=np.float32)
    u_h[np.arange(len(extracted)), extracted] = 1.0
    return {"key": key, "pi": pi, "key_h": key_h, "pi_h": pi_h, "in_queue": q_h, "mark": mark_h, "u": u_h}


class Dijkstra(Task):
    """Dijkstra: inputs ``s``, ``w``; outputs ``pi``, ``d``, ``reach``; hints ``d_h``, ``pi_h``,
    ``in_queue``, ``mark``, ``u``. ``T = 1 + #reachable``, about ``N``: the hints take
    ``O(N (N + E))`` memory (about 120 MB at ``N = 2000``, mean degree 3; module doc).

    >>> from hookgnn.tasks.samplers import multi_path
    >>> g = Dijkstra().run(multi_path(3))
    >>> round(float(g["d"][1]), 4), int(g["num_steps"][0])  # 5 nodes extracted
    (0.25, 6)
    """

    name = "dijkstra"
    spec = {
        "s": FeatureSpec("input", "node", "mask_one"),
        "w": FeatureSpec("input", "edge", "scalar"),
        "pi": FeatureSpec("output", "node", "pointer"),
        "d": FeatureSpec("output", "node", "scalar"),
        "reach": FeatureSpec("output", "node", "mask"),
        "d_h": FeatureSpec("hint", "node", "scalar"),
        "pi_h": FeatureSpec("hint", "node", "pointer"),
        "in_queue": FeatureSpec("hint", "node", "mask"),
        "mark": FeatureSpec("hint", "node", "mask"),
        "u": FeatureSpec("hint", "node", "mask_one"),
    }
    needs_source = True
    uses_weights = True
    nonnegative = True
    clrs_names = {"d_h": "d"}  # CLRS's hint d; hookgnn's name d is the distance output, which CLRS lacks

    def algorithm(self, adj: Adjacency, source: int) -> dict[str, np.ndarray]:
        r = priority_search(adj, source, path_cost=True)
        return {"pi": r["pi"], "d": r["key"], "reach": r["mark"][-1], "d_h": r["key_h"], "pi_h": r["pi_h"],
                "in_queue": r["in_queue"], "mark": r["mark"], "u": r["u"]}

    def resume(self, graph: Graph, step: int, hints: Mapping[str, Tensor] | None = None) -> Graph:
        """Dijkstra re-run from hint ``step`` with ``hints`` set (:meth:`Task.resume`)."""
        return resume_run(self, graph, step, hints, PRIORITY_ROLES, continue_dijkstra)
