"""Bridges of an undirected graph, by DFS low-links, probed as CLRS-30 probes them.

``is_bridge[e] = 1`` on both stored directions ``u -> v`` and ``v -> u`` of an edge whose
removal disconnects its component; self-loops and parallel edges are never bridges
(the networkx multigraph definition). The trajectory is CLRS's DFS with low values
(see :mod:`hookgnn.tasks.depth_first`); ``is_bridge_h`` switches on when the *parent*
of the tree edge finishes and finds ``low[c] > d[u]``.
"""

from __future__ import annotations

from hookgnn.spec import FeatureSpec
from hookgnn.tasks.depth_first import STACK_HINTS, WALK_HINTS, DepthFirstTask


class Bridges(DepthFirstTask):
    """Bridges: input ``pos``; output ``is_bridge`` (edge mask); hints ``is_bridge_h``, ``pi_h``,
    ``color``, ``d``, ``f``, ``low``, ``s_prev``, ``s``, ``u``, ``v``, ``s_last``, ``time``.

    >>> from hookgnn.tasks.samplers import path_graph
    >>> g = Bridges().run(path_graph(3))  # stored edges: 3 self-loops, then 0->1, 1->0, 1->2, 2->1
    >>> g["is_bridge"].tolist()
    [0.0, 0.0, 0.0, 1.0, 1.0, 1.0, 1.0]
    """

    name = "bridges"
    spec = {
        "is_bridge": FeatureSpec("output", "edge", "mask"),
        "is_bridge_h": FeatureSpec("hint", "edge", "mask"),
        **WALK_HINTS,
        "low": FeatureSpec("hint", "node", "scalar"),
        **STACK_HINTS,
    }
    lowlink = undirected_only = True
