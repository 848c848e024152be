"""Breadth-first search from ``s``, one synchronous frontier expansion per step.

.. math::
    reach_k[v] = reach_{k-1}[v] \\lor \\exists u \\to v : reach_{k-1}[u], \\qquad
    pi_k[v] = \\min \\{u \\to v : reach_{k-1}[u]\\} \\text{ when } v \\text{ is first reached}.

A node first reached in round ``k`` has all its reached in-neighbours in round ``k-1``'s
frontier, so ``pi[v]`` is the lowest-index parent among the previous frontier (the BFS
tree of level ``level(v) - 1``). Initially ``reach_0 = {s}``, ``pi_0[v] = v``. The hints
have ``T = 1 + ecc(s)`` steps, the eccentricity of ``s`` within what it reaches;
unreached nodes keep ``pi = self``, ``reach = 0``. Directed graphs follow edge direction.
Each round is ``O(n + E)`` over the arcs, so labelling costs ``O(T (n + E))``.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
from torch import Tensor

from hookgnn.graph import Graph
from hookgnn.spec import FeatureSpec
from hookgnn.tasks.adjacency import Adjacency, first_of_runs
from hookgnn.tasks.base import Task
from hookgnn.tasks.resume import continue_bfs, resume_run


class BFS(Task):
    """BFS: input ``s``; outputs ``pi``, ``reach``; hints ``reach_h``, ``pi_h``.

    >>> from hookgnn.tasks.samplers import path_graph
    >>> g = BFS().run(path_graph(4), source=0)
    >>> g["reach_h"].sum(1).tolist()  # nodes reached after each round
    [1.0, 2.0, 3.0, 4.0]
    """

    name = "bfs"
    spec = {
        "s": FeatureSpec("input", "node", "mask_one"),
        "pi": FeatureSpec("output", "node", "pointer"),
        "reach": FeatureSpec("output", "node", "mask"),
        "reach_h": FeatureSpec("hint", "node", "mask"),
        "pi_h": FeatureSpec("hint", "node", "pointer"),
    }
    needs_source = True

    def algorithm(self, adj: Adjacency, source: int) -> dict[str, np.ndarray]:
        nodes = np.arange(adj.num_nodes)
        order = adj.by_target()  # arcs by (v, u): the first arc of a run has the lowest u
        arc_u, arc_v = adj.src[order], adj.dst[order]
        reach, pi = nodes == source, nodes.copy()
        states = [(reach, pi)]
        while True:
            cand = np.flatnonzero(reach[arc_u] & ~reach[arc_v])  # arcs from the reached set outwards
            if cand.size == 0:
                break
            first = cand[first_of_runs(arc_v[cand])]
            reach, pi = reach.copy(), pi.copy()
            reach[arc_v[first]] = True
            pi[arc_v[first]] = arc_u[first]
            states.append((reach, pi))
        reach_h, pi_h = (np.stack(a) for a in zip(*states))
        return {"pi": pi, "reach": reach, "reach_h": reach_h, "pi_h": pi_h}

    def resume(self, graph: Graph, step: int, hints: Mapping[str, Tensor] | None = None) -> Graph:
        """BFS re-run from hint ``step`` with ``hints`` set (:meth:`Task.resume`)."""
        return resume_run(self, graph, step, hints, {"reach": "mask", "pi": "pointer"}, continue_bfs)
