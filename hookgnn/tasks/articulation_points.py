"""Articulation points (cut vertices) of an undirected graph, by DFS low-links, probed as
CLRS-30 probes them.

``is_cut[v] = 1`` iff removing ``v`` disconnects its component (the networkx
definition). The trajectory is CLRS's DFS with low values and child counts (see
:mod:`hookgnn.tasks.depth_first`): one step per discovery, push, back-edge inspection
and finish; ``low`` and ``is_cut_h`` change when a node *finishes* (it takes its
children's low values and decides whether it is a cut vertex), so the last step
equals the output.
"""

from __future__ import annotations

from hookgnn.spec import FeatureSpec
from hookgnn.tasks.depth_first import STACK_HINTS, WALK_HINTS, DepthFirstTask


class ArticulationPoints(DepthFirstTask):
    """Articulation points: input ``pos``; output ``is_cut``; hints ``is_cut_h``, ``pi_h``, ``color``,
    ``d``, ``f``, ``low``, ``child_cnt``, ``s_prev``, ``s``, ``u``, ``v``, ``s_last``, ``time``.

    >>> from hookgnn.tasks.samplers import path_graph
    >>> ArticulationPoints().run(path_graph(4))["is_cut"].tolist()
    [0.0, 1.0, 1.0, 0.0]
    """

    name = "articulation_points"
    spec = {
        "is_cut": FeatureSpec("output", "node", "mask"),
        "is_cut_h": FeatureSpec("hint", "node", "mask"),
        **WALK_HINTS,
        "low": FeatureSpec("hint", "node", "scalar"),
        "child_cnt": FeatureSpec("hint", "node", "scalar"),
        **STACK_HINTS,
    }
    lowlink = undirected_only = True
