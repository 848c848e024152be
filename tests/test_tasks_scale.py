"""Tasks on a moderately large sparse graph: hints are O(T (N + E)) in shape and in the
memory spent making them (not timed; bench_tasks.py measures speed), and the outputs
still agree with networkx."""

from __future__ import annotations

import tracemalloc

import networkx as nx
import numpy as np
import pytest

from hookgnn.graph import Graph
from hookgnn.tasks import TASKS
from hookgnn.tasks.samplers import SampledGraph, erdos_renyi

N = 300
#: Every task that takes an undirected graph and keeps it sparse: Floyd-Warshall's state is dense (every pair
#: stored, O(T n^2)); topological sort and DAG shortest paths need a DAG (test_tasks_pointer_memory.py).
SPARSE = sorted(name for name, task in TASKS.items() if name != "floyd_warshall" and not task.acyclic_only)


@pytest.fixture(scope="module")
def sparse() -> SampledGraph:
    return erdos_renyi(N, 3 / (N - 1), seed=0)  # mean degree 3


@pytest.fixture(scope="module")
def labelled(sparse) -> dict[str, tuple[Graph, int]]:
    """Every task run on the graph, with the tracemalloc peak (bytes) of the run."""
    out = {}
    for name in SPARSE:
        task = TASKS[name]
        tracemalloc.start()
        try:
            g = task.run(sparse, source=0)
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
        out[name] = (g, peak)
    return out


@pytest.mark.parametrize("name", SPARSE)
def test_hints_are_node_or_edge_trajectories_of_num_steps(name, labelled):
    g, _ = labelled[name]
    steps, n, e = int(g["num_steps"][0]), g.num_nodes, g.num_edges
    degree = np.bincount(g.edge_index[0].numpy(), minlength=n) - 1  # without the self-loop
    # CLRS's DFS: 3 steps per node; with low-links one more per neighbour met at each visit
    assert n == N and steps <= 3 * N + int((degree ** 2).sum())
    for key, fs in TASKS[name].spec.items():
        if fs.stage != "hint":
            continue
        want = (steps, {"edge": e, "node": n, "graph": 1}[fs.field_location])
        want += (fs.dim,) if fs.type == "categorical" else ()
        assert tuple(g[key].shape) == want, key
        assert g[key].element_size() == (8 if fs.type == "pointer" and fs.any_node else 4), key


@pytest.mark.parametrize("name", SPARSE)
def test_labelling_memory_is_linear_in_steps_times_nodes_plus_edges(name, labelled):
    g, peak = labelled[name]
    size = int(g["num_steps"][0]) * (g.num_nodes + g.num_edges)
    # the stored hints alone take 4 bytes per entry and feature; a dense n x n state per
    # step (n^3 in all) would take ~150 bytes per entry here
    assert peak < 48 * size, f"{name}: {peak / size:.1f} bytes per T (N + E) entry"


def nx_simple(g: SampledGraph) -> nx.Graph:
    G = nx.Graph()
    G.add_nodes_from(range(g.num_nodes))
    for (u, v), w in sorted(zip(zip(g.src.tolist(), g.dst.tolist()), g.weight.tolist())):
        G.add_edge(u, v, weight=float(np.float32(w)))  # the stored (float32) weight; no parallel edges here
    return G


def test_outputs_at_scale_agree_with_networkx(sparse, labelled):
    G = nx_simple(sparse)
    comp = nx.node_connected_component(G, 0)
    reach = [float(v in comp) for v in range(N)]
    dist = nx.single_source_dijkstra_path_length(G, 0)
    for name in ("bellman_ford", "dijkstra"):
        g, _ = labelled[name]
        assert g["reach"].tolist() == reach
        assert np.allclose(g["d"].numpy(), [dist.get(v, 0.0) for v in range(N)], atol=1e-5)
    assert labelled["bfs"][0]["reach"].tolist() == reach
    cut = set(nx.articulation_points(G))
    assert labelled["articulation_points"][0]["is_cut"].tolist() == [float(v in cut) for v in range(N)]
    bridges = {frozenset(e) for e in nx.bridges(G)}
    b = labelled["bridges"][0]
    src, dst = b.edge_index.tolist()
    assert b["is_bridge"].tolist() == [float(u != v and frozenset((u, v)) in bridges) for u, v in zip(src, dst)]
    assert b["is_bridge_h"][0].sum() == 0 and bool((b["is_bridge_h"][-1] == b["is_bridge"]).all())
    mst = nx.minimum_spanning_tree(G.subgraph(comp))
    prim = labelled["mst_prim"][0]
    chosen = prim["pi"] > 0
    tree = sum(prim["w"][chosen].double().tolist())
    assert tree == pytest.approx(mst.size(weight="weight"), abs=1e-6)
