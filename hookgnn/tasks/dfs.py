"""Depth-first search forest (CLRS DFS): roots and neighbours in increasing index.

``pi[v]`` is the node from which ``v`` was discovered (roots point to themselves). One
step is one discovery or finish event, ``T = 1 + 2n`` (see
:mod:`hookgnn.tasks.depth_first`). Directed graphs follow edge direction.
"""

from __future__ import annotations

import numpy as np

from hookgnn.spec import FeatureSpec
from hookgnn.tasks.adjacency import Adjacency
from hookgnn.tasks.base import Task
from hookgnn.tasks.depth_first import depth_first


class DFS(Task):
    """DFS: no inputs; output ``pi``; hints ``pi_h``, ``color`` (white/grey/black), ``disc_h``, ``fin_h``.

    >>> from hookgnn.tasks.samplers import cycle_graph
    >>> g = DFS().run(cycle_graph(4))  # 0 -> 1 -> 2 -> 3
    >>> int(g["num_steps"][0]), g["color"].shape
    (9, torch.Size([9, 4, 3]))
    """

    name = "dfs"
    spec = {
        "pi": FeatureSpec("output", "node", "pointer"),
        "pi_h": FeatureSpec("hint", "node", "pointer"),
        "color": FeatureSpec("hint", "node", "categorical", dim=3),
        "disc_h": FeatureSpec("hint", "node", "scalar"),
        "fin_h": FeatureSpec("hint", "node", "scalar"),
    }

    def algorithm(self, adj: Adjacency, source: int) -> dict[str, np.ndarray]:
        r = depth_first(adj)
        return {k: r[k] for k in self.spec}
