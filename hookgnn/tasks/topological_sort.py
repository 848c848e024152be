"""Topological sort by depth-first search (CLRS-30 ``topological_sort``), CLRS's trajectory.

A depth-first walk from every white node in ``pos`` order (:mod:`hookgnn.tasks.clrs_dfs`);
when ``u`` finishes it goes to the front of the order:

.. math:: topo[u] \\leftarrow head \\ \\text{(if } head \\text{ is black)}, \\qquad head \\leftarrow u.

The output is a linked list: ``topo_head`` marks the first node, ``topo[u]`` is the node
after ``u`` and the last node points to itself. Ties (which root, which white neighbour
first) go to the lowest ``pos``. The hints ``topo_h``, ``topo_head_h``, ``color``,
``s_prev``, ``s``, ``u``, ``v``, ``s_last`` are CLRS's, step for step; the last step
equals the outputs. ``topo`` points anywhere, so it is a pointer to any node (``any_node``:
stored as node numbers, :mod:`hookgnn.tasks.pointer_edges`); ``s_prev`` points along arcs.
The graph stays as sampled (no pointer edges): ``T <= 3n`` steps cost ``O(T (n + E))``.
Directed acyclic graphs only.
"""

from __future__ import annotations

import numpy as np

from hookgnn.spec import FeatureSpec
from hookgnn.tasks.adjacency import Adjacency
from hookgnn.tasks.clrs_dfs import DFSState, mask_one, walk
from hookgnn.tasks.pointer_edges import PointerEdgeTask, no_pairs

DFS_HINTS = {
    "color": FeatureSpec("hint", "node", "categorical", dim=3),
    "s_prev": FeatureSpec("hint", "node", "pointer"),
    "u": FeatureSpec("hint", "node", "mask_one"),
    "v": FeatureSpec("hint", "node", "mask_one"),
    "s_last": FeatureSpec("hint", "node", "mask_one"),
}


class TopologicalSort(PointerEdgeTask):
    """Topological sort: input ``adj``; outputs ``topo``, ``topo_head``; CLRS's DFS hints.

    >>> from hookgnn.tasks.samplers import SampledGraph
    >>> g = TopologicalSort().run(SampledGraph(3, np.array([2, 0]), np.array([0, 1]), np.ones(2), directed=True))
    >>> int(g["topo_head"].argmax()), int(g["num_steps"][0])  # the order 2, 0, 1
    (2, 8)
    """

    name = "topological_sort"
    acyclic_only = True
    spec = {
        "adj": FeatureSpec("input", "edge", "mask"),
        "topo": FeatureSpec("output", "node", "pointer", any_node=True),
        "topo_head": FeatureSpec("output", "node", "mask_one"),
        "topo_h": FeatureSpec("hint", "node", "pointer", any_node=True),
        "topo_head_h": FeatureSpec("hint", "node", "mask_one"),
        "color": DFS_HINTS["color"],
        "s_prev": DFS_HINTS["s_prev"],
        "s": FeatureSpec("hint", "node", "mask_one"),
        "u": DFS_HINTS["u"],
        "v": DFS_HINTS["v"],
        "s_last": DFS_HINTS["s_last"],
    }

    def pointer_pairs(self, adj: Adjacency) -> np.ndarray:
        return no_pairs()

    def label(self, adj: Adjacency, source: int, edges: np.ndarray, weight: np.ndarray) -> dict[str, np.ndarray]:
        n = adj.num_nodes
        st = DFSState(n)
        topo, head = np.arange(n), [0]
        steps: list[dict[str, np.ndarray]] = []

        def record() -> None:
            steps.append({"topo_h": topo.copy(), "topo_head_h": mask_one(head[0], n), "color": st.color.copy(),
                          "s_prev": st.s_prev.copy(), "s": mask_one(st.s, n), "u": mask_one(st.u, n),
                          "v": mask_one(st.v, n), "s_last": mask_one(st.s_last, n)})

        def discover(u: int) -> bool:
            if st.color[u] != 0:
                return False
            st.color[u] = 1
            return True

        def finish(u: int) -> None:
            if st.color[head[0]] == 2:
                topo[u] = head[0]
            head[0] = u

        walk(adj, st, range(n), record, discover, finish)
        out = {k: np.stack([s[k] for s in steps]) for k in steps[0]}
        out["topo"], out["topo_head"] = topo, mask_one(head[0], n)
        return out
