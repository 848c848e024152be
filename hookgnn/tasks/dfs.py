"""Depth-first search forest (CLRS DFS): roots and neighbours in increasing index.

``pi[v]`` is the node from which ``v`` was discovered (roots point to themselves). One
step is one discovery or finish event, ``T = 1 + 2n`` (see
:mod:`hookgnn.tasks.depth_first`). Directed graphs follow edge direction.
"""

from __future__ import annotations

from hookgnn.spec import FeatureSpec
from hookgnn.tasks.depth_first import WALK_HINTS, DepthFirstTask


class DFS(DepthFirstTask):
    """DFS: no inputs; output ``pi``; hints ``pi_h``, ``color`` (white/grey/black), ``disc_h``, ``fin_h``.

    >>> from hookgnn.tasks.samplers import cycle_graph
    >>> g = DFS().run(cycle_graph(4))  # 0 -> 1 -> 2 -> 3
    >>> int(g["num_steps"][0]), g["color"].shape
    (9, torch.Size([9, 4, 3]))
    """

    name = "dfs"
    spec = {
        "pi": FeatureSpec("output", "node", "pointer"),
        **WALK_HINTS,
        "fin_h": FeatureSpec("hint", "node", "scalar"),
    }
