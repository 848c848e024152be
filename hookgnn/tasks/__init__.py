"""Algorithmic tasks: CLRS-style inputs, outputs and hint trajectories on graphs.

``TASKS`` maps a name to a :class:`~hookgnn.tasks.base.Task`; :func:`get_task` looks one
up. Graphs come from :mod:`hookgnn.tasks.samplers` (hookgnn's families) and
:mod:`hookgnn.tasks.clrs_samplers` (CLRS-30's, named ``clrs_<algorithm>``); clean/corrupted pairs for patching
from :mod:`hookgnn.tasks.corruptions`.

>>> g = get_task("bellman_ford").sample(4, "erdos_renyi", seed=0, n=8, p=0.3)
>>> g.num_graphs, g["d_h"].shape[1], g["pos"].shape[0]
(4, 32, 32)
"""

from __future__ import annotations

import difflib

from hookgnn.tasks.articulation_points import ArticulationPoints
from hookgnn.tasks.base import Task
from hookgnn.tasks.bellman_ford import BellmanFord
from hookgnn.tasks.bfs import BFS
from hookgnn.tasks.bridges import Bridges
from hookgnn.tasks.clrs_samplers import CLRS_SAMPLERS, clrs_sampler
from hookgnn.tasks.dfs import DFS
from hookgnn.tasks.dijkstra import Dijkstra
from hookgnn.tasks.mst_prim import MSTPrim
from hookgnn.tasks.samplers import SAMPLERS, SampledGraph
from hookgnn.tasks.dag_shortest_paths import DAGShortestPaths
from hookgnn.tasks.floyd_warshall import FloydWarshall
from hookgnn.tasks.mst_kruskal import MSTKruskal
from hookgnn.tasks.strongly_connected_components import StronglyConnectedComponents
from hookgnn.tasks.topological_sort import TopologicalSort

SAMPLERS.update(CLRS_SAMPLERS)  # CLRS-30's distributions by name, next to hookgnn's own

TASKS: dict[str, Task] = {
    t.name: t for t in (BellmanFord(), BFS(), DFS(), Dijkstra(), MSTPrim(), ArticulationPoints(), Bridges(),
                     TopologicalSort(), StronglyConnectedComponents(), MSTKruskal(), DAGShortestPaths(),
                     FloydWarshall())
}


def get_task(name: str) -> Task:
    """The task called ``name``; a ``KeyError`` suggests close names.

    >>> get_task("dijkstra").name
    'dijkstra'
    >>> get_task("belman_ford")
    Traceback (most recent call last):
    ...
    KeyError: "unknown task 'belman_ford'; did you mean 'bellman_ford'? ..."

    :param name: a task name (``hookgnn.tasks.TASKS``).
    """
    try:
        return TASKS[name]
    except KeyError:
        close = difflib.get_close_matches(name, TASKS, n=3, cutoff=0.5)
        hint = f"did you mean {' or '.join(repr(c) for c in close)}? " if close else ""
        raise KeyError(f"unknown task {name!r}; {hint}known tasks: {sorted(TASKS)}") from None


__all__ = ["TASKS", "SAMPLERS", "CLRS_SAMPLERS", "clrs_sampler", "SampledGraph", "Task", "get_task", "BellmanFord",
           "BFS", "DFS", "Dijkstra", "MSTPrim", "ArticulationPoints", "Bridges", "TopologicalSort",
           "StronglyConnectedComponents", "MSTKruskal", "DAGShortestPaths", "FloydWarshall"]
