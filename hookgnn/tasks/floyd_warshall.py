"""Floyd-Warshall all-pairs shortest paths (CLRS-30 ``floyd_warshall``), with edge pointers.

The state is dense: a distance ``D[i, j]``, a reached flag ``msk[i, j]`` and a predecessor
``Pi[i, j]`` (the node before ``j`` on the shortest ``i``-``j`` path found so far) for
every ordered pair, so every pair is stored as an edge (pointer edges,
:mod:`hookgnn.tasks.pointer_edges`) and ``Pi`` is an *edge pointer*
(:func:`~hookgnn.spec.is_edge_pointer`). Initially ``D = w`` on edges (on the diagonal: the
graph's own self-loop, CLRS's ``A[i, i]``, if it has one), 0 elsewhere,
``msk = adj``, ``Pi[i, j] = i``. Round ``k`` (nodes by ``pos``) allows ``k`` as an
intermediate:

.. math:: D[i, j] \\leftarrow D[i, k] + D[k, j],\\ \\Pi[i, j] \\leftarrow \\Pi[k, j]
          \\quad \\text{if } msk[i, k] \\land msk[k, j] \\land
          (\\lnot msk[i, j] \\lor D[i, k] + D[k, j] < D[i, j]),

and ``msk[i, j] = 1`` whenever ``msk[i, k] \\land msk[k, j]``. Hints ``Pi_h``, ``D``,
``msk`` (edges) and ``k`` (node ``mask_one``) are CLRS's ``n`` steps (the state before
round ``k``) plus one final step (the state after the last round, ``k = n - 1`` again) so
that the last step equals the output ``Pi``: ``T = n + 1``. Memory is ``O(n^3)`` for the
hints (``T x n^2``), and the edge pointer decoder's logits are ``[n^2, n]``: the
algorithm's own state is dense. Non-negative weights.
"""

from __future__ import annotations

import numpy as np

from hookgnn.spec import FeatureSpec
from hookgnn.tasks.adjacency import Adjacency
from hookgnn.tasks.clrs_dfs import mask_one
from hookgnn.tasks.pointer_edges import PointerEdgeTask, all_pairs


class FloydWarshall(PointerEdgeTask):
    """Floyd-Warshall: inputs ``w``, ``adj``; output ``Pi`` (edge pointer); hints ``Pi_h``, ``D``, ``msk``, ``k``.

    >>> from hookgnn.tasks.samplers import path_graph
    >>> g = FloydWarshall().run(path_graph(3, weights=(1.0, 1.0)))
    >>> src, dst = g.edge_index
    >>> [(int(i), int(j), int(k)) for i, j, k in zip(src, dst, g["Pi"]) if (i, j) == (0, 2)]  # 0 -> 1 -> 2
    [(0, 2, 1)]
    """

    name = "floyd_warshall"
    spec = {
        "w": FeatureSpec("input", "edge", "scalar"),
        "adj": FeatureSpec("input", "edge", "mask"),
        "Pi": FeatureSpec("output", "edge", "pointer"),
        "Pi_h": FeatureSpec("hint", "edge", "pointer"),
        "D": FeatureSpec("hint", "edge", "scalar"),
        "msk": FeatureSpec("hint", "edge", "mask"),
        "k": FeatureSpec("hint", "node", "mask_one"),
    }
    uses_weights = True
    nonnegative = True

    def pointer_pairs(self, adj: Adjacency) -> np.ndarray:
        return all_pairs(adj.num_nodes)

    def label(self, adj: Adjacency, source: int, edges: np.ndarray, weight: np.ndarray) -> dict[str, np.ndarray]:
        n = adj.num_nodes
        dist = np.zeros((n, n))
        dist[adj.src, adj.dst] = adj.weight
        loops = np.flatnonzero(edges[0] == edges[1])
        first = np.zeros(edges.shape[1], dtype=bool)
        first[loops[np.unique(edges[0][loops], return_index=True)[1]]] = True  # each node's storage self-loop
        own = loops[~first[loops]]  # the graph's own self-loops (CLRS's diagonal of A)
        diag = np.full(n, np.inf)
        np.minimum.at(diag, edges[0][own], weight[own])
        dist[np.arange(n), np.arange(n)] = np.where(np.isfinite(diag), diag, 0.0)
        msk = np.eye(n, dtype=bool)
        msk[adj.src, adj.dst] = True
        pi = np.repeat(np.arange(n)[:, None], n, axis=1)
        src, dst = edges
        steps: list[dict[str, np.ndarray]] = []
        for k in range(n + 1):
            steps.append({"Pi_h": pi[src, dst], "D": dist[src, dst], "msk": msk[src, dst].astype(np.float64),
                          "k": mask_one(min(k, n - 1), n)})
            if k == n:
                break
            via = dist[:, k, None] + dist[None, k, :]
            both = msk[:, k, None] & msk[None, k, :]
            better = both & (~msk | (via < dist))
            dist = np.where(better, via, dist)
            pi = np.where(better, pi[k][None, :], pi)
            msk = msk | both
        out = {k: np.stack([s[k] for s in steps]) for k in steps[0]}
        out["Pi"] = pi[src, dst]
        return out
