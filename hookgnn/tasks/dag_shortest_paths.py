"""Single-source shortest paths in a DAG (CLRS-30 ``dag_shortest_paths``), CLRS's trajectory.

Phase 0 sorts the nodes reachable from ``s`` topologically by a depth-first walk from
``s`` (:mod:`hookgnn.tasks.clrs_dfs`; ``topo_h``, ``topo_head_h`` as in
:mod:`~hookgnn.tasks.topological_sort`). Phase 1 takes the nodes in that order and
relaxes the arcs leaving each, ``i``:

.. math:: d[j] \\leftarrow d[i] + w(i, j),\\ \\pi[j] \\leftarrow i
          \\quad \\text{if } mark[j] = 0 \\text{ or } d[i] + w(i, j) < d[j],

with ``mark[j] = 1`` once ``j`` has a distance (``mark[s] = 1``, ``d[s] = 0``). A node is
relaxed from its first predecessor in the order that attains its distance. Unreached
nodes keep ``pi = self``, ``d = 0``. Hints (CLRS's): ``pi_h``, ``d``, ``mark``, ``topo_h``,
``topo_head_h``, ``color``, ``s_prev``, ``u``, ``v``, ``s_last`` and the graph mask
``phase``; the last step equals the output ``pi``. ``topo_h`` points anywhere among the
nodes reached from ``s``, so it is a pointer to any node (``any_node``: stored as node
numbers, :mod:`hookgnn.tasks.pointer_edges`); ``pi`` and ``s_prev`` point along arcs. The
graph stays as sampled. Directed acyclic graphs, non-negative weights. ``T <= 4n + 1``
steps, ``O(T (n + E))`` memory.
"""

from __future__ import annotations

import numpy as np

from hookgnn.spec import FeatureSpec
from hookgnn.tasks.adjacency import Adjacency
from hookgnn.tasks.clrs_dfs import DFSState, mask_one, walk
from hookgnn.tasks.pointer_edges import PointerEdgeTask, no_pairs


class DAGShortestPaths(PointerEdgeTask):
    """DAG shortest paths: inputs ``s``, ``w``, ``adj``; output ``pi``; CLRS's hints.

    >>> from hookgnn.tasks.samplers import SampledGraph
    >>> g = DAGShortestPaths().run(SampledGraph(3, np.array([0, 0, 1]), np.array([1, 2, 2]),
    ...                                         np.array([1.0, 3.0, 1.0]), directed=True), source=0)
    >>> g["d"][-1].tolist()
    [0.0, 1.0, 2.0]
    """

    name = "dag_shortest_paths"
    spec = {
        "s": FeatureSpec("input", "node", "mask_one"),
        "w": FeatureSpec("input", "edge", "scalar"),
        "adj": FeatureSpec("input", "edge", "mask"),
        "pi": FeatureSpec("output", "node", "pointer"),
        "pi_h": FeatureSpec("hint", "node", "pointer"),
        "d": FeatureSpec("hint", "node", "scalar"),
        "mark": FeatureSpec("hint", "node", "mask"),
        "topo_h": FeatureSpec("hint", "node", "pointer", any_node=True),
        "topo_head_h": FeatureSpec("hint", "node", "mask_one"),
        "color": FeatureSpec("hint", "node", "categorical", dim=3),
        "s_prev": FeatureSpec("hint", "node", "pointer"),
        "u": FeatureSpec("hint", "node", "mask_one"),
        "v": FeatureSpec("hint", "node", "mask_one"),
        "s_last": FeatureSpec("hint", "node", "mask_one"),
        "phase": FeatureSpec("hint", "graph", "mask"),
    }
    needs_source = True
    uses_weights = True
    nonnegative = True
    acyclic_only = True

    def pointer_pairs(self, adj: Adjacency) -> np.ndarray:
        return no_pairs()

    def label(self, adj: Adjacency, source: int, edges: np.ndarray, weight: np.ndarray) -> dict[str, np.ndarray]:
        n = adj.num_nodes
        st = DFSState(n)
        pi, d, mark = np.arange(n), np.zeros(n), np.zeros(n)
        topo, head, phase = np.arange(n), [0], [0.0]
        steps: list[dict[str, np.ndarray]] = []

        def record() -> None:
            steps.append({"pi_h": pi.copy(), "d": d.copy(), "mark": mark.copy(), "topo_h": topo.copy(),
                          "topo_head_h": mask_one(head[0], n), "color": st.color.copy(),
                          "s_prev": st.s_prev.copy(), "u": mask_one(st.u, n), "v": mask_one(st.v, n),
                          "s_last": mask_one(st.s_last, n), "phase": np.array([phase[0]])})

        def discover(u: int) -> bool:
            if st.color[u] != 0:
                return False
            st.color[u] = 1
            return True

        def finish(u: int) -> None:
            if st.color[head[0]] == 2:
                topo[u] = head[0]
            head[0] = u

        walk(adj, st, [source], record, discover, finish)
        assert head[0] == source
        mark[source], phase[0] = 1.0, 1.0
        while topo[head[0]] != head[0]:
            i = head[0]
            mark[i] = 1.0
            record()
            for a in range(adj.indptr[i], adj.indptr[i + 1]):
                j, cand = int(adj.dst[a]), d[i] + adj.weight[a]
                if mark[j] == 0 or cand < d[j]:
                    d[j], pi[j], mark[j] = cand, i, 1.0
            head[0] = int(topo[head[0]])
        record()
        out = {k: np.stack([s[k] for s in steps]) for k in steps[0]}
        out["pi"] = pi
        return out
