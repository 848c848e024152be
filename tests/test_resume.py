"""Task.resume: the algorithm re-run from an intermediate state, checked against networkx."""

from __future__ import annotations

import networkx as nx
import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from hookgnn.tasks import get_task

SETTINGS = settings(max_examples=15, deadline=None)


@st.composite
def instances(draw, undirected: bool = False):
    """A stored graph with self-loops, parallel edges and isolated nodes, a source, a step and a node."""
    n = draw(st.integers(1, 7))
    m = draw(st.integers(0, 12))
    node = st.integers(0, n - 1)
    edges = draw(st.lists(st.tuples(node, node, st.floats(0.0, 2.0, width=32)), min_size=m, max_size=m))
    src, dst, w = [], [], []
    for u, v, x in edges:
        src += [u, v] if undirected else [u]
        dst += [v, u] if undirected else [v]
        w += [x, x] if undirected else [x]
    loops = np.stack([np.arange(n), np.arange(n)])
    ei = np.concatenate([loops, np.array([src, dst], dtype=np.int64).reshape(2, -1)], 1)
    weight = np.concatenate([np.zeros(n), np.array(w, dtype=np.float64)])
    return ei, weight, n, draw(node), draw(node), draw(st.integers(0, 8)), draw(st.floats(0.0, 3.0, width=32))


def digraph(ei: np.ndarray, w: np.ndarray, n: int, keep=None) -> nx.DiGraph:
    """The arcs u -> v (u != v) with the lightest parallel weight, on the nodes ``keep``."""
    g = nx.DiGraph()
    g.add_nodes_from(range(n) if keep is None else keep)
    for (u, v), x in zip(ei.T.tolist(), w.astype(np.float32).astype(np.float64).tolist()):
        if u != v and g.has_node(u) and g.has_node(v) and (not g.has_edge(u, v) or x < g[u][v]["weight"]):
            g.add_edge(u, v, weight=x)
    return g


def offsets_distance(g: nx.DiGraph, start: dict[int, float]) -> dict[int, float]:
    """min_u start[u] + dist(u, x): Dijkstra from a super source joined to u with weight start[u]."""
    g = g.copy()
    for u, d in start.items():
        g.add_edge("S", u, weight=d)
    if not start:
        return {}
    dist = nx.single_source_dijkstra_path_length(g, "S")
    return {x: d for x, d in dist.items() if x != "S"}


def close(a, b) -> bool:
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    scale = max(1.0, float(np.abs(b).max(initial=0.0)))
    return bool(np.allclose(a, b, rtol=1e-5, atol=1e-5 * scale))


@SETTINGS
@given(instances())
def test_bellman_ford_resume_matches_networkx_from_a_changed_distance(inst):
    ei, w, n, s, v, step, value = inst
    bf = get_task("bellman_ford")
    g = bf.run_edges(ei, w, n, s)
    at = min(step, int(g["num_steps"][0]) - 1)
    d = g["d_h"][at].clone()
    d[v] = value
    out = bf.resume(g, step, {"d_h": d})
    msk = g["msk"][at].numpy() > 0.5
    ref = offsets_distance(digraph(ei, w, n), {u: float(d[u]) for u in range(n) if msk[u]})
    assert out["reach"].tolist() == [float(x in ref) for x in range(n)]
    assert close(out["d"].numpy(), [ref.get(x, float(d[x])) for x in range(n)])  # unreached keep theirs
    assert torch.equal(out["d_h"][:step], g["d_h"][torch.clamp(torch.arange(step), max=at)])
    assert torch.equal(out["d_h"][step], d)


@SETTINGS
@given(instances())
def test_bfs_resume_reaches_each_node_at_its_hop_distance_from_the_reached_set(inst):
    ei, w, n, s, v, step, _ = inst
    bfs = get_task("bfs")
    g = bfs.run_edges(ei, w, n, s)
    at = min(step, int(g["num_steps"][0]) - 1)
    reach = g["reach_h"][at].clone()
    reach[v] = 1.0 - reach[v]
    out = bfs.resume(g, step, {"reach_h": reach})
    hops = offsets_distance(nx.DiGraph(digraph(ei, np.ones_like(w), n)), {u: 0.0 for u in range(n) if reach[u] > 0.5})
    assert out["reach"].tolist() == [float(x in hops) for x in range(n)]
    first = (out["reach_h"][step:] > 0.5).int().argmax(0)  # the step (after `step`) each node is first reached
    assert all(int(first[x]) == round(hops[x]) for x in hops)


@SETTINGS
@given(instances())
def test_dijkstra_resume_matches_networkx_on_the_unmarked_nodes(inst):
    ei, w, n, s, v, step, value = inst
    dij = get_task("dijkstra")
    g = dij.run_edges(ei, w, n, s)
    at = min(step, int(g["num_steps"][0]) - 1)
    d = g["d_h"][at].clone()
    d[v] = value
    out = dij.resume(g, step, {"d_h": d})
    mark, queue = g["mark"][at].numpy() > 0.5, g["in_queue"][at].numpy() > 0.5
    free = [x for x in range(n) if not mark[x]]
    ref = offsets_distance(digraph(ei, w, n, keep=free), {u: float(d[u]) for u in range(n) if queue[u]})
    want = [float(d[x]) if mark[x] else ref.get(x, float(d[x])) for x in range(n)]
    assert out["reach"].tolist() == [float(mark[x] or x in ref) for x in range(n)]
    reached = out["reach"].numpy() > 0.5
    assert close(out["d"].numpy()[reached], np.array(want)[reached])


@SETTINGS
@given(instances(undirected=True))
def test_prim_resume_from_its_own_state_grows_a_minimum_spanning_tree(inst):
    ei, w, n, s, _, step, _ = inst
    prim = get_task("mst_prim")
    g = prim.run_edges(ei, w, n, s)
    out = prim.resume(g, step)
    src, dst = ei
    chosen = out["pi"].numpy() > 0.5
    tree_w = sum(float(np.float32(w[e])) for e in np.flatnonzero(chosen) if src[e] != dst[e])
    comp = nx.node_connected_component(digraph(ei, w, n).to_undirected(), s)
    mst = nx.minimum_spanning_tree(digraph(ei, w, n).to_undirected().subgraph(comp))
    assert close(tree_w, mst.size(weight="weight"))


@SETTINGS
@given(instances(undirected=True))
def test_prim_resume_with_a_node_queued_adds_what_the_queue_reaches(inst):
    ei, w, n, s, v, step, _ = inst
    prim = get_task("mst_prim")
    g = prim.run_edges(ei, w, n, s)
    at = min(step, int(g["num_steps"][0]) - 1)
    mark = g["mark"][at].numpy() > 0.5
    queue = g["in_queue"][at].clone()
    if mark[v]:
        return
    queue[v] = 1.0
    out = prim.resume(g, step, {"in_queue": queue})
    free = digraph(ei, w, n, keep=[x for x in range(n) if not mark[x]])
    reached = set(np.flatnonzero(mark)) | set(offsets_distance(free, {u: 0.0 for u in range(n) if queue[u] > 0.5}))
    assert (out["mark"][-1] > 0.5).tolist() == [x in reached for x in range(n)]


@pytest.mark.parametrize("name", ["bellman_ford", "bfs", "dijkstra", "mst_prim"])
def test_resume_with_the_runs_own_hints_gives_its_outputs(name):
    task = get_task(name)
    for seed in range(4):
        g = task.sample(1, "erdos_renyi", seed=seed, n=9, p=0.35)
        for step in range(int(g["num_steps"][0]) + 2):
            out = task.resume(g, step)
            for k, fs in task.spec.items():
                if fs.stage == "output":
                    assert close(out[k].numpy(), g[k].numpy()), (name, seed, step, k)


def test_resume_names_bad_hints_shapes_batches_and_tasks():
    bf = get_task("bellman_ford")
    g = bf.sample(1, "erdos_renyi", seed=0, n=5, p=0.5)
    with pytest.raises(KeyError, match="no hint \\['reach'\\]"):
        bf.resume(g, 1, {"reach": torch.zeros(5)})
    with pytest.raises(ValueError, match="'d_h' at step 1 must have shape \\[5\\]"):
        bf.resume(g, 1, {"d_h": torch.zeros(4)})
    with pytest.raises(ValueError, match="exactly one 1 among the in-edges"):
        bf.resume(g, 1, {"pi_h": torch.zeros(g.num_edges)})
    with pytest.raises(ValueError, match="single graph"):
        bf.resume(bf.sample(2, "erdos_renyi", seed=0, n=5, p=0.5), 1)
    with pytest.raises(ValueError, match="step must be >= 0"):
        bf.resume(g, -1)
    with pytest.raises(NotImplementedError, match="dfs cannot resume"):
        get_task("dfs").resume(g, 1)
