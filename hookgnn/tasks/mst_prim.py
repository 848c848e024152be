"""Prim's minimum spanning tree grown from root ``s``, one added node per step.

Each step extracts ``u = argmin {key[v] : v in queue}`` (ties: lowest index), adds it to
the tree (``mark``) and offers its edges to nodes outside the tree:

.. math::
    key[v] \\leftarrow w(u, v),\\ \\pi[v] \\leftarrow u \\quad
    \\text{if } v \\notin queue \\text{ or } w(u, v) < key[v].

Tie rule: ``pi[v]`` is the first-added tree node among those offering ``v`` its
lightest edge, where nodes are added in the extraction order above. With distinct
weights the tree is the unique MST of the root's component.

Step 0 is the initial state (``key = 0``, ``pi[v] = v``, queue ``{s}``, ``u = s``); step
``k`` follows the ``k``-th addition, so ``T = 1 + |component of s|``. Nodes outside the
root's component keep ``pi = self``. Undirected graphs only; parallel edges act as
their lightest copy.

Cost: ``T`` grows like ``n`` (one step per node of the root's component), so the hints
are ``O(n^2)``: ``key``, ``in_queue``, ``mark`` and ``u`` are ``[T, n]`` float32, up
to ``n^2 * 4`` bytes each (16 MB at ``n = 2000``), and ``pi_h`` is ``[T, E]`` float32,
up to ``n E * 4`` bytes (64 MB at ``n = 2000``, mean degree 3). Time is ``O(n^2 + E)``
(see :func:`~hookgnn.tasks.dijkstra.priority_search`).
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
from torch import Tensor

from hookgnn.graph import Graph
from hookgnn.spec import FeatureSpec
from hookgnn.tasks.adjacency import Adjacency
from hookgnn.tasks.base import Task
from hookgnn.tasks.dijkstra import priority_search
from hookgnn.tasks.resume import PRIORITY_ROLES, continue_prim, resume_run


class MSTPrim(Task):
    """Prim: inputs ``s``, ``w``, ``pos``; output ``pi``; hints ``pi_h``, ``key``, ``mark``, ``in_queue``, ``u``
    (CLRS's names, values and steps).
    ``T = 1 + |component of s|``, about ``N``: the hints take ``O(N (N + E))`` memory
    (about 120 MB at ``N = 2000``, mean degree 3; module doc).

    >>> from hookgnn.tasks.samplers import complete_graph
    >>> g = MSTPrim().run(complete_graph(5, seed=0), source=0)
    >>> int(g["pi"].sum())  # one pointer per node, the root to itself
    5
    """

    name = "mst_prim"
    spec = {
        "s": FeatureSpec("input", "node", "mask_one"),
        "w": FeatureSpec("input", "edge", "scalar"),
        "pi": FeatureSpec("output", "node", "pointer"),
        "pi_h": FeatureSpec("hint", "node", "pointer"),
        "key": FeatureSpec("hint", "node", "scalar"),
        "in_queue": FeatureSpec("hint", "node", "mask"),
        "mark": FeatureSpec("hint", "node", "mask"),
        "u": FeatureSpec("hint", "node", "mask_one"),
    }
    needs_source = True
    uses_weights = True
    undirected_only = True

    def algorithm(self, adj: Adjacency, source: int) -> dict[str, np.ndarray]:
        r = priority_search(adj, source, path_cost=False)
        return {"pi": r["pi"], "pi_h": r["pi_h"], "key": r["key_h"], "mark": r["mark"], "in_queue": r["in_queue"],
                "u": r["u"]}

    def resume(self, graph: Graph, step: int, hints: Mapping[str, Tensor] | None = None) -> Graph:
        """Prim re-run from hint ``step`` with ``hints`` set (:meth:`Task.resume`)."""
        return resume_run(self, graph, step, hints, PRIORITY_ROLES, continue_prim)
