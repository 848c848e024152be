"""Depth-first search forest, probed as CLRS-30 probes it (``T = 3n``).

Roots and neighbours in increasing index (of ``pos``); ``pi[v]`` is the node from which
``v`` was discovered (roots point to themselves). The trajectory is CLRS's, step for
step and value for value (see :mod:`hookgnn.tasks.depth_first`). Directed graphs follow
edge direction.
"""

from __future__ import annotations

from hookgnn.spec import FeatureSpec
from hookgnn.tasks.depth_first import STACK_HINTS, WALK_HINTS, DepthFirstTask


class DFS(DepthFirstTask):
    """DFS: input ``pos``; output ``pi``; hints ``pi_h``, ``color``, ``d``, ``f``, ``s_prev``, ``s``,
    ``u``, ``v``, ``s_last``, ``time`` (CLRS's names and values).

    >>> from hookgnn.tasks.samplers import cycle_graph
    >>> g = DFS().run(cycle_graph(4))  # 0 -> 1 -> 2 -> 3
    >>> int(g["num_steps"][0]), g["color"].shape, round(float(g["time"][-1, 0]), 2)
    (12, torch.Size([12, 4, 3]), 0.08)
    """

    name = "dfs"
    spec = {
        "pi": FeatureSpec("output", "node", "pointer"),
        **WALK_HINTS,
        **STACK_HINTS,
    }
