"""CLRS's ``pos`` input on every task: labels follow the order of ``pos``, not node indices.

Renumbering a graph's nodes (edges kept in order, ``pos`` carried along with its node)
must renumber every output and hint: node features move with their node, edge features
(pointers included) stay on their edge, pointers stored as node numbers (edge pointers,
pointers to any node) are renumbered too, and trajectories keep their length.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from hookgnn.tasks import TASKS, get_task
from hookgnn.tasks.base import stored_edges
from hookgnn.tasks.pointer_edges import er_dag
from hookgnn.tasks.samplers import SampledGraph


@st.composite
def instances(draw, undirected: bool, acyclic: bool = False):
    n = draw(st.integers(1, 8))
    m = draw(st.integers(0, 14))
    src = draw(st.lists(st.integers(0, n - 1), min_size=m, max_size=m))
    dst = draw(st.lists(st.integers(0, n - 1), min_size=m, max_size=m))  # self-loops and multi-edges allowed
    w = draw(st.lists(st.sampled_from([0.0, 0.25, 0.5, 1.0]), min_size=m, max_size=m))  # many ties
    directed = False if undirected else acyclic or draw(st.booleans())
    perm = np.array(draw(st.permutations(range(n))))
    if acyclic:  # arcs point forward in the order perm
        src, dst = zip(*[(u, v) if perm[u] <= perm[v] else (v, u) for u, v in zip(src, dst)]) if m else ([], [])
    source = draw(st.integers(0, n - 1))
    return SampledGraph(n, np.array(src, dtype=np.int64), np.array(dst, dtype=np.int64), np.array(w), directed), \
        perm, source


def renumbered(task_name: str, g, perm: np.ndarray, field: str) -> torch.Tensor:
    """Field ``field`` of ``g`` with node ``i`` moved to ``perm[i]`` (edges stay)."""
    fs = get_task(task_name).spec[field]
    value = g[field]
    if fs.type == "pointer" and fs.location == "edge":  # an edge points to a node: its number moves
        return torch.from_numpy(perm)[value]
    if fs.type == "pointer" and fs.any_node:  # a node points to any node: its number moves, and its row
        value = torch.from_numpy(perm)[value]
    if fs.field_location != "node":
        return value
    axis = 1 if fs.stage == "hint" else 0
    out = torch.empty_like(value)
    index = [slice(None)] * value.dim()
    index[axis] = torch.from_numpy(perm)
    out[tuple(index)] = value
    return out


@pytest.mark.parametrize("name", sorted(TASKS))
@settings(max_examples=25, deadline=None)
@given(data=st.data())
def test_renumbering_nodes_with_pos_renumbers_every_label(name, data):
    task = get_task(name)
    sampled, perm, source = data.draw(instances(task.undirected_only, task.acyclic_only))
    ei, w = stored_edges(sampled)
    n = sampled.num_nodes
    clean = task.run_edges(ei, w, n, source)
    pos = np.empty(n)
    pos[perm] = np.arange(n) / n  # node perm[i] keeps node i's position
    moved = task.run_edges(perm[ei], w, n, int(perm[source]), pos=pos)
    assert torch.equal(moved["num_steps"], clean["num_steps"])
    for field in task.spec:
        assert torch.equal(moved[field], renumbered(name, clean, perm, field)), field
    if n >= 2 and not np.array_equal(perm, np.arange(n)):
        assert not torch.equal(moved["pos"], clean["pos"])


def test_default_pos_is_i_over_n_and_every_task_has_it():
    for task in TASKS.values():
        g = task.sample(2, er_dag if task.acyclic_only else "erdos_renyi", seed=0, n=5, p=0.5)
        assert task.spec["pos"].stage == "input" and task.spec["pos"].location == "node"
        assert torch.equal(g["pos"], torch.tensor([0.0, 0.2, 0.4, 0.6, 0.8] * 2))
        assert torch.equal(g.x[:, -1], g["pos"])


def test_dfs_roots_and_neighbours_follow_pos_not_index():
    # triangle 0 - 1 - 2: with pos i/n the walk is 0 -> 1 -> 2; with pos reversed it is 2 -> 1 -> 0
    ei, w = stored_edges(SampledGraph(3, np.array([0, 1, 0]), np.array([1, 2, 2]), np.zeros(3)))
    dfs = get_task("dfs")
    parents = lambda g: [int(ei[0][(g["pi"] > 0).numpy() & (ei[1] == v)][0]) for v in range(3)]  # noqa: E731
    assert parents(dfs.run_edges(ei, w, 3)) == [0, 0, 1]
    assert parents(dfs.run_edges(ei, w, 3, pos=np.array([0.9, 0.5, 0.1]))) == [1, 2, 2]


def test_rerun_keeps_the_stored_pos():
    bfs = get_task("bfs")
    ei, w = stored_edges(SampledGraph(3, np.array([0, 0]), np.array([1, 2]), np.zeros(2)))
    g = bfs.run_edges(ei, w, 3, 1, pos=np.array([0.0, 0.7, 0.3]))
    again = bfs.rerun(g)
    assert torch.equal(again["pos"], g["pos"]) and torch.equal(again["pi"], g["pi"])


@pytest.mark.parametrize("pos, match", [
    (np.array([0.1, 0.1, 0.2]), "pos must be distinct.*nodes 0 and 1"),
    (np.array([0.1, np.nan, 0.2]), "pos of node 1 is not finite"),
    (np.array([0.1, 0.2]), r"pos must be real numbers of shape \[3\]"),
    (np.array([1.0, 1.0 + 2**-30, 0.5]), "pos must be distinct"),  # equal once stored as float32
])
def test_bad_pos_is_refused_with_the_reason(pos, match):
    ei, w = stored_edges(SampledGraph(3, np.array([0]), np.array([1]), np.zeros(1)))
    with pytest.raises(ValueError, match=match):
        get_task("bfs").run_edges(ei, w, 3, 0, pos=pos)


RESUMABLE = ["bellman_ford", "bfs", "dijkstra", "mst_prim"]


@pytest.mark.parametrize("name", RESUMABLE)
@settings(max_examples=20, deadline=None)
@given(data=st.data())
def test_resume_breaks_ties_by_pos_like_run(name, data):
    # resuming a renumbered graph (pos carried along) from step k renumbers the resumed labels
    task = get_task(name)
    sampled, perm, source = data.draw(instances(task.undirected_only))
    ei, w = stored_edges(sampled)
    n = sampled.num_nodes
    clean = task.run_edges(ei, w, n, source)
    pos = np.empty(n)
    pos[perm] = np.arange(n) / n
    moved = task.run_edges(perm[ei], w, n, int(perm[source]), pos=pos)
    step = data.draw(st.integers(0, int(clean["num_steps"][0]) - 1))
    a, b = task.resume(clean, step), task.resume(moved, step)
    assert torch.equal(a["num_steps"], b["num_steps"])
    for field in task.spec:
        assert torch.equal(b[field], renumbered(name, a, perm, field)), field
