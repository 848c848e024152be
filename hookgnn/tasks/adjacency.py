"""Sparse neighbour lists of one stored graph: what the algorithms read.

The algorithms see *arcs*: the ordered pairs ``(u, v)``, ``u != v``, joined by at least
one stored edge ``u -> v`` (stored self-loops are left out). Arcs are sorted by
``(u, v)``, so the arcs leaving ``u`` are ``indptr[u]:indptr[u + 1]`` with increasing
targets (compressed sparse rows). Each arc carries the minimum weight and the number
of its parallel edges. Everything here is ``O(n + E)`` memory; building it costs one
sort of the edges.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from jaxtyping import Bool, Float, Int


@dataclass(frozen=True)
class Adjacency:
    """The arcs of one stored graph with ``n`` nodes, ``A`` arcs and ``E`` stored edges.

    * ``indptr`` [n + 1]: the arcs leaving ``u`` are ``indptr[u]:indptr[u + 1]``;
    * ``src``, ``dst`` [A]: arc ``a`` is ``src[a] -> dst[a]``, sorted by ``(src, dst)``;
    * ``weight`` [A]: the minimum weight over the stored edges ``src[a] -> dst[a]``;
    * ``count`` [A]: how many stored edges ``src[a] -> dst[a]`` there are;
    * ``arc_of_edge`` [E]: the arc of each stored edge, ``-1`` for self-loops;
    * ``self_loops`` [n]: how many stored self-loops ``u -> u`` there are (task graphs
      store one per node, so ``>= 2`` means the graph itself has a self-loop at ``u``).

    >>> a = adjacency(np.array([[0, 1, 0, 0], [0, 1, 1, 1]]), np.array([0.0, 0.0, 0.5, 0.25]), 2)
    >>> a.src.tolist(), a.dst.tolist(), a.weight.tolist(), a.count.tolist(), a.arc_of_edge.tolist()
    ([0], [1], [0.25], [2], [-1, -1, 0, 0])
    >>> a.self_loops.tolist()
    [1, 1]
    """

    num_nodes: int
    indptr: Int[np.ndarray, " n_plus_1"]
    src: Int[np.ndarray, " arc"]
    dst: Int[np.ndarray, " arc"]
    weight: Float[np.ndarray, " arc"]
    count: Int[np.ndarray, " arc"]
    arc_of_edge: Int[np.ndarray, " edge"]
    self_loops: Int[np.ndarray, " n"]

    @property
    def num_arcs(self) -> int:
        return int(self.src.shape[0])

    def out_neighbours(self, u: int) -> Int[np.ndarray, " k"]:
        """Targets of the arcs leaving ``u``, increasing (``u`` itself never appears).

        >>> adjacency(np.array([[0, 0, 0], [2, 1, 0]]), np.zeros(3), 3).out_neighbours(0).tolist()
        [1, 2]
        """
        return self.dst[self.indptr[u]:self.indptr[u + 1]]

    @property
    def symmetric(self) -> bool:
        """Whether every arc ``u -> v`` has a reverse ``v -> u`` with the same weight and count.

        >>> adjacency(np.array([[0, 1], [1, 0]]), np.array([0.5, 0.5]), 2).symmetric
        True
        >>> adjacency(np.array([[0, 1], [1, 0]]), np.array([0.5, 0.25]), 2).symmetric
        False
        """
        reverse = np.lexsort((self.src, self.dst))  # arcs v -> u sorted by (v, u)
        return bool(np.array_equal(self.src, self.dst[reverse]) and np.array_equal(self.dst, self.src[reverse])
                    and np.array_equal(self.weight, self.weight[reverse])
                    and np.array_equal(self.count, self.count[reverse]))

    def by_target(self) -> Int[np.ndarray, " arc"]:
        """Arc indices sorted by ``(dst, src)``: the arcs entering each node, sources increasing.

        >>> a = adjacency(np.array([[0, 2, 1], [1, 1, 0]]), np.zeros(3), 3)  # arcs 0->1, 1->0, 2->1
        >>> order = a.by_target()
        >>> order.tolist(), a.src[order].tolist(), a.dst[order].tolist()
        ([1, 0, 2], [1, 0, 2], [0, 1, 1])
        """
        return np.lexsort((self.src, self.dst))


def adjacency(edge_index: Int[np.ndarray, "2 edge"], weight: Float[np.ndarray, " edge"], num_nodes: int) -> Adjacency:
    """The :class:`Adjacency` of a stored edge list (self-loops left out).

    >>> a = adjacency(np.array([[0, 1, 1, 2], [1, 0, 2, 1]]), np.ones(4), 3)  # the path 0 - 1 - 2
    >>> a.indptr.tolist(), a.out_neighbours(1).tolist()
    ([0, 1, 3, 4], [0, 2])
    """
    src, dst = (np.asarray(r, dtype=np.int64) for r in edge_index)
    weight = np.asarray(weight, dtype=np.float64)
    keep = np.flatnonzero(src != dst)
    key = src[keep] * num_nodes + dst[keep]
    keys, arc, count = np.unique(key, return_inverse=True, return_counts=True)
    arc_weight = np.full(keys.shape[0], np.inf)
    np.minimum.at(arc_weight, arc, weight[keep])
    arc_of_edge = np.full(src.shape[0], -1, dtype=np.int64)
    arc_of_edge[keep] = arc
    arc_src, arc_dst = keys // max(num_nodes, 1), keys % max(num_nodes, 1)
    indptr = np.searchsorted(arc_src, np.arange(num_nodes + 1))
    self_loops = np.bincount(src[src == dst], minlength=num_nodes).astype(np.int64)
    return Adjacency(num_nodes, indptr, arc_src, arc_dst, arc_weight, count.astype(np.int64), arc_of_edge,
                     self_loops)


def first_of_runs(sorted_keys: Int[np.ndarray, " k"]) -> Bool[np.ndarray, " k"]:
    """True at the first element of each run of equal values in a sorted array.

    >>> first_of_runs(np.array([1, 1, 2, 5, 5])).tolist()
    [True, False, True, True, False]
    """
    out = np.ones(sorted_keys.shape[0], dtype=bool)
    out[1:] = sorted_keys[1:] != sorted_keys[:-1]
    return out
