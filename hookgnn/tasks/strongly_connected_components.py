"""Kosaraju's strongly connected components (CLRS-30 ``strongly_connected_components``).

Pass 0 walks the graph depth first from every white node in ``pos`` order, stamping
discovery and finish times ``d``, ``f`` (``time`` grows by 0.01 per event, as in CLRS);
pass 1 walks the *transposed* graph from the nodes by decreasing ``f``, and every node
reached from root ``s`` gets

.. math:: scc\\_id[u] = s,

a node of its own component (the first of the component in decreasing ``f``). Hints are
CLRS's, step for step (:mod:`hookgnn.tasks.clrs_dfs`): ``scc_id_h``, ``A_t`` (the
transposed adjacency with self-loops, on every stored edge), ``color``, ``d``, ``f``,
``s_prev``, ``s``, ``u``, ``v``, ``s_last``, and the graph-level ``time`` and ``phase``
(0, then 1 for the second pass); the last step equals the output. Pointer edges
(:mod:`hookgnn.tasks.pointer_edges`): every reversed arc (pass 1 pushes ``s_prev`` along
them, and ``A_t`` lives on them), at most ``E`` more edges; ``scc_id`` points anywhere in
its component, so it is a pointer to any node (``any_node``, stored as node numbers).
``T <= 6n + 2`` steps cost ``O(T (n + E))``.
"""

from __future__ import annotations

import numpy as np

from hookgnn.spec import FeatureSpec
from hookgnn.tasks.adjacency import Adjacency, adjacency
from hookgnn.tasks.clrs_dfs import DFSState, mask_one, walk
from hookgnn.tasks.pointer_edges import PointerEdgeTask


class StronglyConnectedComponents(PointerEdgeTask):
    """Kosaraju: input ``adj``; output ``scc_id``; CLRS's hints.

    >>> from hookgnn.tasks.samplers import SampledGraph
    >>> g = StronglyConnectedComponents().run(SampledGraph(3, np.array([0, 1]), np.array([1, 0]), np.ones(2),
    ...                                                      directed=True))
    >>> g["scc_id"].tolist()  # {0, 1} and {2}: node numbers (a pointer to any node)
    [0, 0, 2]
    """

    name = "strongly_connected_components"
    spec = {
        "adj": FeatureSpec("input", "edge", "mask"),
        "scc_id": FeatureSpec("output", "node", "pointer", any_node=True),
        "scc_id_h": FeatureSpec("hint", "node", "pointer", any_node=True),
        "A_t": FeatureSpec("hint", "edge", "mask"),
        "color": FeatureSpec("hint", "node", "categorical", dim=3),
        "d": FeatureSpec("hint", "node", "scalar"),
        "f": FeatureSpec("hint", "node", "scalar"),
        "s_prev": FeatureSpec("hint", "node", "pointer"),
        "s": FeatureSpec("hint", "node", "mask_one"),
        "u": FeatureSpec("hint", "node", "mask_one"),
        "v": FeatureSpec("hint", "node", "mask_one"),
        "s_last": FeatureSpec("hint", "node", "mask_one"),
        "time": FeatureSpec("hint", "graph", "scalar"),
        "phase": FeatureSpec("hint", "graph", "mask"),
    }

    def pointer_pairs(self, adj: Adjacency) -> np.ndarray:
        return np.stack([adj.dst, adj.src])

    def label(self, adj: Adjacency, source: int, edges: np.ndarray, weight: np.ndarray) -> dict[str, np.ndarray]:
        n = adj.num_nodes
        arcs = set((adj.src * n + adj.dst).tolist())
        a_t = np.array([a == b or b * n + a in arcs for a, b in edges.T.tolist()], dtype=np.float64)
        scc_id, d, f = np.arange(n), np.zeros(n), np.zeros(n)
        clock, phase = [0.0], [0]
        st = DFSState(n)
        steps: list[dict[str, np.ndarray]] = []

        def record() -> None:
            steps.append({"scc_id_h": scc_id.copy(), "A_t": a_t, "color": st.color.copy(), "d": d.copy(),
                          "f": f.copy(), "s_prev": st.s_prev.copy(), "s": mask_one(st.s, n),
                          "u": mask_one(st.u, n), "v": mask_one(st.v, n), "s_last": mask_one(st.s_last, n),
                          "time": np.array([clock[0]]), "phase": np.array([float(phase[0])])})

        def discover(u: int) -> bool:
            if st.color[u] != 0 and d[u] != 0.0:
                return False
            clock[0] += 0.01
            d[u], st.color[u] = clock[0], 1
            return True

        def finish(u: int) -> None:
            clock[0] += 0.01
            f[u] = clock[0]

        walk(adj, st, range(n), record, discover, finish)
        transposed = adjacency(np.stack([adj.dst, adj.src]), adj.weight, n)
        st, phase[0] = DFSState(n), 1

        def visit(u: int) -> None:
            scc_id[u] = st.s

        walk(transposed, st, np.argsort(-f, kind="stable").tolist(), record, discover, finish, visit)
        out = {k: np.stack([s[k] for s in steps]) for k in steps[0]}
        out["scc_id"] = scc_id
        return out
