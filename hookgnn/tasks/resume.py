"""Resuming an algorithm from an intermediate state: the counterfactuals of interchange interventions.

:meth:`Task.resume(graph, step, hints) <hookgnn.tasks.base.Task.resume>` takes a stored
single graph, keeps its hint trajectory before ``step``, sets the algorithm's state at
``step`` to the graph's hints there with ``hints`` (stored form, by spec name) written over
them, and runs the algorithm on from that state to its end. Steps ``0 .. step - 1`` of the
returned graph are the original ones (the last one repeated when ``step`` is past the end),
step ``step`` is the given state, and the outputs are the resumed run's final state.

The continuations below read the hints by their role, found in the task's spec by stage
and type (:func:`hint_roles`), so they hold whatever the hints are called:

* Bellman-Ford (scalar ``d``, pointer ``pi``, mask ``msk``): synchronous relaxation
  :math:`d_{k+1}[v] = \\min(d_k[v], \\min_{u \\to v, msk_k[u]} d_k[u] + w(u, v))` until
  nothing changes; from any state it ends at
  :math:`d[v] = \\min_{u : msk[u]} d_{step}[u] + \\mathrm{dist}(u, v)`.
* BFS (mask ``reach``, pointer ``pi``): one frontier expansion per step; ends at every node
  reachable from the reached set.
* Dijkstra / Prim (scalar key, pointer ``pi``, masks ``in_queue`` and ``mark``, mask_one
  ``u``): extract the lowest-key queued node (ties: lowest index), mark it, relax (Dijkstra:
  key ``d[u] + w``, Prim: ``w``) its arcs to unmarked nodes, until the queue is empty.

The state comes from stored (float32) hints, so the continuations compute in float64 but
count a key as improved only when the improvement shows in float32: resuming a run at any step
with its own hints gives back that run (up to the float32 rounding of its scalars).

Cost: one step is ``O(n + E)`` (Bellman-Ford, BFS) or ``O(n)`` plus the extracted node's
arcs (Dijkstra, Prim), as in the full runs.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING

import numpy as np
import torch
from torch import Tensor

from hookgnn.fields import Field
from hookgnn.graph import Graph
from hookgnn.spec import FeatureType, Spec
from hookgnn.tasks.adjacency import Adjacency, adjacency, first_of_runs
from hookgnn.tasks.positions import node_positions, unrank

if TYPE_CHECKING:
    from hookgnn.tasks.base import Task

#: A continuation: (arcs, the raw state by role) -> the raw outputs and hint trajectories by role.
Continuation = Callable[[Adjacency, dict[str, np.ndarray]], dict[str, np.ndarray]]


def hint_roles(spec: Spec, roles: dict[str, FeatureType], stage: str = "hint") -> dict[str, str]:
    """Role -> feature name: for each role (a name the algorithm uses, with the feature type it
    has), the one feature of ``stage`` and that type in ``spec``; where several share the type,
    the one named like the role (``in_queue``, ``mark``).

    >>> from hookgnn.tasks import get_task
    >>> hint_roles(get_task("bellman_ford").spec, {"d": "scalar", "pi": "pointer", "msk": "mask"})
    {'d': 'd_h', 'pi': 'pi_h', 'msk': 'msk'}
    """
    found: dict[str, str] = {}
    for role, kind in roles.items():
        names = [n for n, fs in spec.items() if fs.stage == stage and fs.type == kind]
        if len(names) > 1:
            names = [n for n in names if n == role or n.removesuffix("_h") == role]
        if len(names) != 1:
            raise KeyError(f"cannot tell which {stage} of type {kind!r} holds the algorithm's {role!r}: candidates "
                           f"{[n for n, fs in spec.items() if fs.stage == stage and fs.type == kind]}")
        found[role] = names[0]
    return found


def continue_bellman_ford(adj: Adjacency, state: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Bellman-Ford from the state ``d`` (float), ``pi`` (node indices), ``msk`` (bool) on.

    Returns ``d``, ``pi``, ``msk`` trajectories ``[K, n]`` (row 0: the given state) and the
    outputs by type: ``out_scalar`` (``d``), ``out_pointer`` (``pi``), ``out_mask`` (reached).

    >>> from hookgnn.tasks.adjacency import adjacency
    >>> a = adjacency(np.array([[0, 1], [1, 2]]), np.array([1.0, 1.0]), 3)  # 0 -> 1 -> 2
    >>> r = continue_bellman_ford(a, {"d": np.array([0., 5., 0.]), "pi": np.arange(3), "msk": np.array([1, 1, 0]) > 0})
    >>> r["d"].tolist()
    [[0.0, 5.0, 0.0], [0.0, 1.0, 6.0], [0.0, 1.0, 2.0]]
    """
    n = adj.num_nodes
    nodes = np.arange(n)
    order = adj.by_target()  # arcs by (v, u): the first minimum of a run has the lowest u
    arc_u, arc_v, arc_w = adj.src[order], adj.dst[order], adj.weight[order]
    d, pi, msk = state["d"].astype(np.float64), state["pi"].astype(np.int64), state["msk"].astype(bool)
    trajectory = [(d, pi, msk)]
    for _ in range(n + 1):  # a changed node has a new hop count, at most n - 1 of them
        cand = np.where(msk[arc_u], d[arc_u] + arc_w, np.inf)
        best = np.full(n, np.inf)
        np.minimum.at(best, arc_v, cand)
        hit = np.flatnonzero((cand == best[arc_v]) & np.isfinite(cand))
        first = hit[first_of_runs(arc_v[hit])]
        best_u = nodes.copy()
        best_u[arc_v[first]] = arc_u[first]
        change = _f32(best) < np.where(msk, _f32(d), np.inf)
        if not change.any():
            break
        d, pi, msk = np.where(change, best, d), np.where(change, best_u, pi), msk | change
        trajectory.append((d, pi, msk))
    ds, pis, msks = (np.stack(a) for a in zip(*trajectory))
    return {"d": ds, "pi": pis, "msk": msks, "out_scalar": d, "out_pointer": pi, "out_mask": msk}


def continue_bfs(adj: Adjacency, state: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """BFS from the state ``reach`` (bool), ``pi`` (node indices) on: each step reaches, from
    the reached set, every unreached out-neighbour (parent: the lowest-index reached in-neighbour).

    >>> from hookgnn.tasks.adjacency import adjacency
    >>> a = adjacency(np.array([[0, 1], [1, 2]]), np.zeros(2), 3)
    >>> continue_bfs(a, {"reach": np.array([0, 1, 0]) > 0, "pi": np.arange(3)})["out_mask"].tolist()
    [False, True, True]
    """
    order = adj.by_target()
    arc_u, arc_v = adj.src[order], adj.dst[order]
    reach, pi = state["reach"].astype(bool), state["pi"].astype(np.int64)
    trajectory = [(reach, pi)]
    while True:
        cand = np.flatnonzero(reach[arc_u] & ~reach[arc_v])
        if cand.size == 0:
            break
        first = cand[first_of_runs(arc_v[cand])]
        reach, pi = reach.copy(), pi.copy()
        reach[arc_v[first]], pi[arc_v[first]] = True, arc_u[first]
        trajectory.append((reach, pi))
    reaches, pis = (np.stack(a) for a in zip(*trajectory))
    return {"reach": reaches, "pi": pis, "out_mask": reach, "out_pointer": pi}


def continue_priority_search(adj: Adjacency, state: dict[str, np.ndarray], path_cost: bool) -> dict[str, np.ndarray]:
    """Dijkstra (``path_cost``: key ``key[u] + w``) or Prim (key ``w``) from the state ``key``,
    ``pi``, ``in_queue``, ``mark``, ``u`` on, one extraction per step.

    >>> from hookgnn.tasks.adjacency import adjacency
    >>> a = adjacency(np.array([[0, 1], [1, 2]]), np.array([1.0, 1.0]), 3)
    >>> s = {"key": np.zeros(3), "pi": np.arange(3), "in_queue": np.array([1, 0, 0]) > 0,
    ...      "mark": np.zeros(3) > 0, "u": np.array([1., 0, 0])}
    >>> continue_priority_search(a, s, path_cost=True)["out_scalar"].tolist()
    [0.0, 1.0, 2.0]
    """
    key, pi = state["key"].astype(np.float64).copy(), state["pi"].astype(np.int64).copy()
    in_queue, mark = state["in_queue"].astype(bool).copy(), state["mark"].astype(bool).copy()
    trajectory = [(key.copy(), pi.copy(), in_queue.copy(), mark.copy(), state["u"].astype(np.float32))]
    while in_queue.any():
        u = int(np.where(in_queue, key, np.inf).argmin())  # the first minimum: the lowest index
        in_queue[u], mark[u] = False, True
        lo, hi = adj.indptr[u], adj.indptr[u + 1]
        v = adj.dst[lo:hi]
        new = adj.weight[lo:hi] + (key[u] if path_cost else 0.0)
        upd = ~mark[v] & (~in_queue[v] | (_f32(new) < _f32(key[v])))
        key[v[upd]], pi[v[upd]], in_queue[v[upd]] = new[upd], u, True
        one = np.zeros(adj.num_nodes, dtype=np.float32)
        one[u] = 1.0
        trajectory.append((key.copy(), pi.copy(), in_queue.copy(), mark.copy(), one))
    keys, pis, queues, marks, us = (np.stack(a) for a in zip(*trajectory))
    return {"key": keys, "pi": pis, "in_queue": queues, "mark": marks, "u": us,
            "out_scalar": key, "out_pointer": pi, "out_mask": mark}


def _f32(a: np.ndarray) -> np.ndarray:
    """``a`` rounded to float32 (as the hints store it), as float64."""
    return a.astype(np.float32).astype(np.float64)


def continue_dijkstra(adj: Adjacency, state: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Dijkstra from a state on (:func:`continue_priority_search`, key ``key[u] + w``)."""
    return continue_priority_search(adj, state, path_cost=True)


def continue_prim(adj: Adjacency, state: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Prim from a state on (:func:`continue_priority_search`, key ``w``)."""
    return continue_priority_search(adj, state, path_cost=False)


#: The state of Dijkstra and Prim, role -> type.
PRIORITY_ROLES: dict[str, FeatureType] = {"key": "scalar", "pi": "pointer", "in_queue": "mask", "mark": "mask",
                                          "u": "mask_one"}


def decode_pointer(stored: Tensor, edge_index: Tensor, num_nodes: int) -> np.ndarray:
    """Node pointers ``pi[v] = u`` from one step of a stored pointer (a 0/1 mask ``[E]`` with
    one 1 among the in-edges of every node); ``ValueError`` naming a node without exactly one.

    >>> ei = torch.tensor([[0, 1, 0], [0, 1, 1]])
    >>> decode_pointer(torch.tensor([1., 0., 1.]), ei, 2).tolist()
    [0, 0]
    """
    on = stored.detach().cpu() > 0.5
    dst = edge_index[1].cpu()
    count = torch.bincount(dst[on], minlength=num_nodes)
    if bool((count != 1).any()):
        v = int(torch.nonzero(count != 1)[0])
        raise ValueError(f"a pointer needs exactly one 1 among the in-edges of each node; node {v} has {int(count[v])}")
    pi = torch.empty(num_nodes, dtype=torch.long)
    pi[dst[on]] = edge_index[0].cpu()[on]
    return pi.numpy()


def resume_run(task: Task, graph: Graph, step: int, hints: Mapping[str, Tensor] | None,
               roles: dict[str, FeatureType], cont: Continuation) -> Graph:
    """What :meth:`Task.resume <hookgnn.tasks.base.Task.resume>` does for a task whose algorithm
    state is the hints of ``roles`` (role -> type, :func:`hint_roles`) and whose continuation is
    ``cont``; the module docstring has the rules.

    >>> from hookgnn.tasks import get_task
    >>> from hookgnn.tasks.samplers import path_graph
    >>> bfs = get_task("bfs")
    >>> g = bfs.run(path_graph(3), source=0)
    >>> bfs.resume(g, 1, {"reach_h": torch.tensor([1., 1., 1.])})["reach_h"].tolist()
    [[1.0, 0.0, 0.0], [1.0, 1.0, 1.0]]
    """
    if graph.num_graphs != 1:
        raise ValueError(f"resume takes a single graph, got a batch of {graph.num_graphs}")
    names = hint_roles(task.spec, roles)
    hints = dict(hints or {})
    unknown = sorted(set(hints) - set(names.values()))
    if unknown:
        raise KeyError(f"{task.name} has no hint {unknown} that resume can set; its state is the hints "
                       f"{sorted(names.values())}")
    steps = int(graph["num_steps"][0])
    if step < 0:
        raise ValueError(f"step must be >= 0, got {step}")
    n, ei = graph.num_nodes, graph.edge_index
    state: dict[str, np.ndarray] = {}
    for role, name in names.items():
        fs = task.spec[name]
        value = hints.get(name, graph[name][min(step, steps - 1)])
        want = (graph.num_edges,) if fs.type == "pointer" else tuple(graph[name].shape[1:])
        if tuple(value.shape) != want:
            raise ValueError(f"hint {name!r} at step {step} must have shape {list(want)} (stored form), "
                             f"got {list(value.shape)}")
        value = value.detach().cpu()
        state[role] = decode_pointer(value, ei, n) if fs.type == "pointer" else value.double().numpy()
        if fs.type == "mask":
            state[role] = state[role] > 0.5
    weight = graph["w"].double().cpu().numpy() if task.uses_weights else np.zeros(graph.num_edges)
    source = int(graph["s"].argmax()) if task.needs_source else 0
    edge_index = ei.cpu().numpy().astype(np.int64)
    # the algorithm breaks ties by `pos` order: continue on nodes numbered by rank, as Task.run_edges does
    pos = node_positions(n, graph["pos"].double().cpu().numpy() if "pos" in graph.fields else None)
    order = np.argsort(pos, kind="stable")  # order[r]: the node of rank r
    rank = np.empty_like(order)
    rank[order] = np.arange(n)
    for role, name in names.items():
        state[role] = rank[state[role][order]] if task.spec[name].type == "pointer" else state[role][order]
    raw = cont(adjacency(rank[edge_index], weight, n), state)
    by_type = {fs.type: name for name, fs in task.spec.items() if fs.stage == "output"}
    out = {name: unrank(fs, np.asarray(raw[f"out_{fs.type}"]), rank, order)
           for name, fs in task.spec.items() if fs.stage == "output"}
    if len(by_type) != len(out):
        raise KeyError(f"resume tells {task.name}'s outputs apart by type; two share a type: {sorted(out)}")
    out.update({name: unrank(task.spec[name], np.asarray(raw[role]), rank, order) for role, name in names.items()})
    built = task._build(out, edge_index, weight, n, source, pos)
    fields = built.fields  # a new graph of ours: prepend the kept steps (same items, so still valid)
    for name in names.values():
        before = graph[name][torch.clamp(torch.arange(step), max=steps - 1)]
        fields[name] = Field(torch.cat([before, fields[name].value]), fields[name].location, time=True)
    fields["num_steps"] = Field(torch.tensor([step + int(built["num_steps"][0])]), "graph")
    return built
