"""Labels follow the stored inputs: the pointer rule on parallel edges, float32 weights,
and weight corruptions (references: brute force over the stored edges and networkx)."""

from __future__ import annotations

import networkx as nx
import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from hookgnn.graph import Graph
from hookgnn.tasks import TASKS, get_task
from hookgnn.tasks.base import stored_edges
from hookgnn.tasks.samplers import SampledGraph
from pointers import pointers

TINY = 2.0**-30  # far below float32 resolution at weights >= 1/4 (half an ulp is 2^-26)


@st.composite
def multigraphs(draw, directed: bool | None = None, max_n: int = 7, min_k: int = 0):
    """Small graphs with parallel edges (of unequal weights), self-loops and isolated nodes."""
    n = draw(st.integers(1, max_n))
    pairs = draw(st.lists(st.tuples(st.integers(0, n - 1), st.integers(0, n - 1)), max_size=2 * n))
    pairs += draw(st.lists(st.sampled_from(pairs), max_size=n)) if pairs else []  # parallel copies
    k = draw(st.lists(st.integers(min_k, 6), min_size=len(pairs), max_size=len(pairs)))
    src, dst = (np.array([p[i] for p in pairs], dtype=np.int64) for i in (0, 1))
    is_directed = draw(st.booleans()) if directed is None else directed
    return SampledGraph(n, src, dst, np.array(k, dtype=float) / 4, is_directed, draw(st.integers(0, n - 1)))


def pointer_edges_follow_the_rule(g: Graph, name: str, weighted: bool) -> None:
    """Brute force: every pointer 1 sits on the lowest-index edge u -> v among the lightest
    stored copies (``weighted``) or among all copies (tasks without input ``w``)."""
    src, dst = g.edge_index.tolist()
    w = g["w"].tolist() if weighted else [0.0] * len(src)
    mask = g[name].reshape(-1, g.num_edges)
    for row in mask:
        for e in torch.nonzero(row).flatten().tolist():
            copies = [f for f in range(len(src)) if (src[f], dst[f]) == (src[e], dst[e])]
            lightest = min(w[f] for f in copies)
            assert e == min(f for f in copies if w[f] == lightest), f"{name}: pointer on edge {e}"


def same_labels(a: Graph, b: Graph, name: str) -> None:
    for key in TASKS[name].spec:
        assert torch.equal(a[key], b[key]), f"{name}: field {key} differs"


@pytest.mark.parametrize("name", sorted(TASKS))
@settings(max_examples=30, deadline=None)
@given(data=st.data())
def test_pointers_sit_on_the_lowest_index_lightest_stored_edge_and_rerun_agrees(name, data):
    task = TASKS[name]
    g = data.draw(multigraphs(directed=False if task.undirected_only else True if task.acyclic_only else None))
    if task.acyclic_only:  # arcs from the lower to the higher node: a DAG
        g = SampledGraph(g.num_nodes, np.minimum(g.src, g.dst), np.maximum(g.src, g.dst), g.weight, True, g.source)
    out = task.run(g)
    for key, fs in task.spec.items():
        if fs.type == "pointer" and fs.location == "node" and not fs.any_node:  # any_node: node numbers
            pointer_edges_follow_the_rule(out, key, task.uses_weights)
    same_labels(task.rerun(out), out, name)


def test_bfs_pointer_ignores_the_unstored_weights_of_parallel_edges():
    # 0 - 1 twice, the second copy lighter: BFS stores no weights, so node 1 points along the first copy
    g = SampledGraph(2, np.array([0, 0]), np.array([1, 1]), np.array([0.75, 0.25]), source=0)
    out = get_task("bfs").run(g)
    src, dst = out.edge_index.tolist()
    assert [(src[e], dst[e], e) for e in torch.nonzero(out["pi"]).flatten().tolist()] == [(0, 0, 0), (0, 1, 2)]


# ------------------------------------------------------------ float32 weights
def lexicographic_bellman_ford(g: Graph, source: int) -> tuple[list[float], list[int]]:
    """networkx reference for Bellman-Ford on the *stored* weights (all multiples of 1/4):
    distance first, hop count second; pi[v] = lowest u on such a path (see bellman_ford.py)."""
    n = g.num_nodes
    arc: dict[tuple[int, int], int] = {}
    for (u, v), w in zip(g.edge_index.t().tolist(), g["w"].tolist()):
        if u != v:
            assert w * 4 == round(w * 4), "reference needs weights k / 4"
            arc[(u, v)] = min(arc.get((u, v), 10**9), round(w * 4))
    G = nx.DiGraph()
    G.add_nodes_from(range(n))
    G.add_weighted_edges_from((u, v, k * n + 1) for (u, v), k in arc.items())
    cost = nx.single_source_dijkstra_path_length(G, source)
    pi = list(range(n))
    for v in cost:
        if v != source:
            pi[v] = min(u for u in cost if (u, v) in arc and cost[u] + arc[(u, v)] * n + 1 == cost[v])
    return [cost[v] // n / 4 if v in cost else 0.0 for v in range(n)], pi


@settings(max_examples=60, deadline=None)
@given(multigraphs(min_k=1), st.lists(st.sampled_from([0.0, TINY, -TINY, 2 * TINY]), min_size=40, max_size=40))
def test_bellman_ford_labels_follow_float32_weights_given_to_run_edges_and_rerun(g, jitter):
    ei, w = stored_edges(g)  # exact multiples of 1/4
    w64 = w + np.where(ei[0] != ei[1], np.resize(jitter, w.shape[0]), 0.0)  # equal to w once rounded to float32
    task = get_task("bellman_ford")
    out = task.run_edges(ei, w64, g.num_nodes, g.source)
    assert out["w"].tolist() == w.tolist()
    d, pi = lexicographic_bellman_ford(out, g.source)
    assert out["d"].tolist() == d and pointers(out, "pi") == pi
    pointer_edges_follow_the_rule(out, "pi", weighted=True)
    again = task.rerun(out, weight=w64)
    same_labels(again, out, "bellman_ford")


@settings(max_examples=60, deadline=None)
@given(multigraphs(min_k=1), st.lists(st.sampled_from([0.0, TINY, -TINY]), min_size=40, max_size=40))
def test_dijkstra_pointer_is_the_first_extracted_parent_on_float32_weights(g, jitter):
    ei, w = stored_edges(g)
    w64 = w + np.where(ei[0] != ei[1], np.resize(jitter, w.shape[0]), 0.0)
    out = get_task("dijkstra").run_edges(ei, w64, g.num_nodes, g.source)
    G = nx.DiGraph()
    G.add_nodes_from(range(g.num_nodes))
    for (u, v), x in zip(ei.T.tolist(), w.tolist()):  # the float32 values, exact in float64
        if u != v and (not G.has_edge(u, v) or G[u][v]["weight"] > x):
            G.add_edge(u, v, weight=x)
    dist = nx.single_source_dijkstra_path_length(G, g.source)
    pi = pointers(out, "pi")
    for v in dist:
        if v != g.source:  # positive weights: nodes leave the queue in (d, index) order
            cands = [u for u in dist if G.has_edge(u, v) and dist[u] + G[u][v]["weight"] == dist[v]]
            assert pi[v] == min(cands, key=lambda u: (dist[u], u))
    pointer_edges_follow_the_rule(out, "pi", weighted=True)


def test_prim_breaks_a_float32_tie_by_first_added_node():
    # triangle 0-1-2 from root 0: w(0,2) = 1 + 2^-30 is 1 once stored, a tie with w(1,2) = 1,
    # so node 2 keeps the first offer (from node 0) although 1 + 2^-30 > 1 in float64
    ei = np.array([[0, 1, 2, 0, 1, 0, 2, 1, 2], [0, 1, 2, 1, 0, 2, 0, 2, 1]])
    w = np.array([0, 0, 0, 1, 1, 1 + TINY, 1 + TINY, 1, 1])
    prim = get_task("mst_prim")
    out = prim.run_edges(ei, w, 3, 0)
    assert out["w"].tolist() == [0, 0, 0, 1, 1, 1, 1, 1, 1]
    assert pointers(out, "pi") == [0, 0, 0]
    assert pointers(prim.rerun(out, weight=w), "pi") == [0, 0, 0]


def test_run_edges_rejects_weights_that_overflow_float32():
    ei = np.array([[0, 1, 0], [0, 1, 1]])
    with pytest.raises(ValueError, match="edge 2 .* float32"):
        get_task("dijkstra").run_edges(ei, np.array([0.0, 0.0, 1e39]), 2, 0)
    with pytest.raises(ValueError, match=r"shape \[3\]"):
        get_task("dijkstra").run_edges(ei, np.zeros(2), 2, 0)
    with pytest.raises(ValueError, match="out of range"):
        get_task("bfs").run_edges(np.array([[0, 1, 0], [0, 1, 2]]), np.zeros(3), 2, 0)
