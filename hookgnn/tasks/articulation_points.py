"""Articulation points (cut vertices) of an undirected graph, by DFS low-links.

``is_cut[v] = 1`` iff removing ``v`` disconnects its component (the networkx
definition). The trajectory is the DFS of :mod:`hookgnn.tasks.depth_first` with
low values; ``is_cut_h`` switches on when a finished child proves ``v`` a cut vertex,
so its last step equals the output. ``T = 1 + 2n``.
"""

from __future__ import annotations

from hookgnn.spec import FeatureSpec
from hookgnn.tasks.depth_first import LOWLINK_HINTS, DepthFirstTask


class ArticulationPoints(DepthFirstTask):
    """Articulation points: output ``is_cut``; hints ``pi_h``, ``color``, ``disc_h``, ``low_h``, ``is_cut_h``.

    >>> from hookgnn.tasks.samplers import path_graph
    >>> ArticulationPoints().run(path_graph(4))["is_cut"].tolist()
    [0.0, 1.0, 1.0, 0.0]
    """

    name = "articulation_points"
    spec = {
        "is_cut": FeatureSpec("output", "node", "mask"),
        **LOWLINK_HINTS,
        "is_cut_h": FeatureSpec("hint", "node", "mask"),
    }
    lowlink = undirected_only = True
