"""Kruskal's minimum spanning forest (CLRS-30 ``mst_kruskal``), CLRS's union-find trajectory.

Edges ``{u, v}`` (``u`` before ``v`` in ``pos`` order) are taken by increasing weight; ties
go to the lowest ``(u, v)`` in ``pos`` order (CLRS's ``np.argsort`` is unstable, so its tie
order depends on the platform: this rule is the reproducible one). For each, the roots
of ``u`` and ``v`` are found by following ``pi`` with path compression: every node met
so far on the path (``mask_u``) is pointed to the new ``root_u``, one step each. Then

.. math:: root_u < root_v \\Rightarrow \\pi[root_u] \\leftarrow root_v,\\quad
          root_u > root_v \\Rightarrow \\pi[root_v] \\leftarrow root_u

(comparing ``pos``), and the edge joins the forest (``in_mst``) unless the roots are equal.
Hints (CLRS's): ``in_mst_h``, ``pi``, ``u``, ``v``, ``root_u``, ``root_v``, ``mask_u``,
``mask_v`` and the graph categorical ``phase`` (0 union, 1 find ``u``, 2 find ``v``); the
last step equals the output. Every edge of the graph is an edge, whatever its weight
(CLRS reads ``A[u, v] = 0`` as no edge). Of parallel edges, ``in_mst`` marks the
lowest-index lightest one in each direction. Undirected graphs only. The union-find
``pi`` points anywhere within a connected component, so it is a pointer to any node
(``any_node``: stored as node numbers, :mod:`hookgnn.tasks.pointer_edges`) and the graph
stays as sampled. ``T = O(E log n)`` steps, ``O(T (n + E))`` memory.
"""

from __future__ import annotations

import numpy as np

from hookgnn.spec import FeatureSpec
from hookgnn.tasks.adjacency import Adjacency, first_of_runs
from hookgnn.tasks.clrs_dfs import mask_one
from hookgnn.tasks.pointer_edges import PointerEdgeTask, no_pairs


def representative_edges(edges: np.ndarray, weight: np.ndarray, n: int) -> dict[int, int]:
    """For each ordered pair key ``u * n + v`` (``u != v``), its lowest-index lightest stored edge."""
    src, dst = edges
    keep = np.flatnonzero(src != dst)
    order = keep[np.lexsort((keep, weight[keep], src[keep] * n + dst[keep]))]
    keys = src[order] * n + dst[order]
    first = first_of_runs(keys)
    return dict(zip(keys[first].tolist(), order[first].tolist()))


class MSTKruskal(PointerEdgeTask):
    """Kruskal: inputs ``w``, ``adj``; output ``in_mst`` (edge mask); CLRS's hints.

    >>> from hookgnn.tasks.samplers import path_graph
    >>> g = MSTKruskal().run(path_graph(3, weights=(1.0, 1.0)))
    >>> int(g["in_mst"].sum())  # both edges, both directions
    4
    """

    name = "mst_kruskal"
    spec = {
        "w": FeatureSpec("input", "edge", "scalar"),
        "adj": FeatureSpec("input", "edge", "mask"),
        "in_mst": FeatureSpec("output", "edge", "mask"),
        "in_mst_h": FeatureSpec("hint", "edge", "mask"),
        "pi": FeatureSpec("hint", "node", "pointer", any_node=True),
        "u": FeatureSpec("hint", "node", "mask_one"),
        "v": FeatureSpec("hint", "node", "mask_one"),
        "root_u": FeatureSpec("hint", "node", "mask_one"),
        "root_v": FeatureSpec("hint", "node", "mask_one"),
        "mask_u": FeatureSpec("hint", "node", "mask"),
        "mask_v": FeatureSpec("hint", "node", "mask"),
        "phase": FeatureSpec("hint", "graph", "categorical", dim=3),
    }
    uses_weights = True
    undirected_only = True

    def pointer_pairs(self, adj: Adjacency) -> np.ndarray:
        return no_pairs()

    def label(self, adj: Adjacency, source: int, edges: np.ndarray, weight: np.ndarray) -> dict[str, np.ndarray]:
        n = adj.num_nodes
        rep = representative_edges(edges, weight, n)
        pi = np.arange(n)
        in_mst = np.zeros(edges.shape[1])
        steps: list[dict[str, np.ndarray]] = []

        def record(u: int, v: int, ru: int, rv: int, mu: np.ndarray, mv: np.ndarray, phase: int) -> None:
            steps.append({"in_mst_h": in_mst.copy(), "pi": pi.copy(), "u": mask_one(u, n), "v": mask_one(v, n),
                          "root_u": mask_one(ru, n), "root_v": mask_one(rv, n), "mask_u": mu.copy(),
                          "mask_v": mv.copy(), "phase": np.array([phase])})

        record(0, 0, 0, 0, np.zeros(n), np.zeros(n), 0)
        fwd = adj.src < adj.dst
        for a in np.lexsort((adj.dst[fwd], adj.src[fwd], adj.weight[fwd])).tolist():
            u, v = int(adj.src[fwd][a]), int(adj.dst[fwd][a])
            ru, rv = u, v
            mu, mv = mask_one(u, n), mask_one(v, n)
            record(u, v, ru, rv, mu, mv, 1)
            while pi[ru] != ru:
                ru = int(pi[ru])
                pi[mu == 1] = ru
                mu[ru] = 1
                record(u, v, ru, rv, mu, mv, 1)
            while pi[rv] != rv:
                rv = int(pi[rv])
                pi[mv == 1] = rv
                mv[rv] = 1
                record(u, v, ru, rv, mu, mv, 2)
            if ru != rv:
                in_mst[[rep[u * n + v], rep[v * n + u]]] = 1.0
                if ru < rv:
                    pi[ru] = rv
                else:
                    pi[rv] = ru
            record(u, v, ru, rv, mu, mv, 0)
        out = {k: np.stack([s[k] for s in steps]) for k in steps[0]}
        out["in_mst"] = in_mst
        return out
