"""Bridges of an undirected graph, by DFS low-links.

``is_bridge[e] = 1`` on both stored directions ``u -> v`` and ``v -> u`` of an edge whose
removal disconnects its component; self-loops and parallel edges are never bridges
(the networkx multigraph definition). The trajectory is the DFS of
:mod:`hookgnn.tasks.depth_first` with low values; ``is_bridge_h`` switches on when the
tree edge's child finishes with ``low[c] > disc[p]``. ``T = 1 + 2n``.
"""

from __future__ import annotations

from hookgnn.spec import FeatureSpec
from hookgnn.tasks.depth_first import LOWLINK_HINTS, DepthFirstTask


class Bridges(DepthFirstTask):
    """Bridges: output ``is_bridge`` (edge mask); hints ``pi_h``, ``color``, ``disc_h``, ``low_h``,
    ``is_bridge_h``.

    >>> from hookgnn.tasks.samplers import path_graph
    >>> g = Bridges().run(path_graph(3))  # stored edges: 3 self-loops, then 0->1, 1->0, 1->2, 2->1
    >>> g["is_bridge"].tolist()
    [0.0, 0.0, 0.0, 1.0, 1.0, 1.0, 1.0]
    """

    name = "bridges"
    spec = {
        "is_bridge": FeatureSpec("output", "edge", "mask"),
        **LOWLINK_HINTS,
        "is_bridge_h": FeatureSpec("hint", "edge", "mask"),
    }
    lowlink = undirected_only = True
