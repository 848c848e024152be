"""The five CLRS-30 graph tasks with pointer edges, against networkx and hand rules.

Topological sort, Kosaraju's SCC, Kruskal, DAG shortest paths and Floyd-Warshall on
hypothesis graphs (isolated nodes, self-loops, parallel edges, no edges, one node).
The tie rules are checked against networkx's recursive DFS with sorted roots and
neighbours (CLRS's DFS visits roots and white neighbours lowest first).
"""

from __future__ import annotations

import networkx as nx
import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from hookgnn.metrics import pointer_sources
from hookgnn.tasks import get_task
from hookgnn.tasks.corruptions import sample_pairs
from hookgnn.tasks.pointer_edges import er_dag
from hookgnn.tasks.samplers import SampledGraph



@st.composite
def sampled(draw: st.DrawFn, kind: str = "directed", max_nodes: int = 8) -> SampledGraph:
    """A graph with self-loops and parallel edges allowed; ``kind``: directed, undirected or dag."""
    n = draw(st.integers(1, max_nodes))
    m = draw(st.integers(0, 3 * n))
    pairs = draw(st.lists(st.tuples(st.integers(0, n - 1), st.integers(0, n - 1)), min_size=m, max_size=m))
    if kind == "dag":  # arcs go forward in a random order of the nodes (self-loops are dropped by storage)
        perm = draw(st.permutations(range(n)))
        rank = {v: i for i, v in enumerate(perm)}
        pairs = [(u, v) if rank[u] <= rank[v] else (v, u) for u, v in pairs]
    w = draw(st.lists(st.sampled_from([0.25, 0.5, 0.75, 1.0, 1.5]), min_size=len(pairs), max_size=len(pairs)))
    src = np.array([p[0] for p in pairs], dtype=np.int64)
    dst = np.array([p[1] for p in pairs], dtype=np.int64)
    return SampledGraph(n, src, dst, np.array(w, dtype=np.float64), directed=kind != "undirected")


def nx_graph(g: SampledGraph, multi: bool = False) -> nx.DiGraph:
    """The graph with nodes 0..n-1 and arcs inserted in sorted order (lightest parallel copy), no self-loops."""
    G = nx.Graph() if not g.directed else nx.DiGraph()
    G.add_nodes_from(range(g.num_nodes))
    arcs: dict[tuple[int, int], float] = {}
    for u, v, w in zip(g.src.tolist(), g.dst.tolist(), g.weight.astype(np.float32).tolist()):
        if u != v:
            key = (u, v) if g.directed else (min(u, v), max(u, v))
            arcs[key] = min(w, arcs.get(key, np.inf))
    for (u, v), w in sorted(arcs.items()):
        G.add_edge(u, v, weight=w)
    return G


def postorder(G: nx.DiGraph) -> list[int]:
    """Finish order of a recursive DFS with roots and out-neighbours in increasing order."""
    seen: set[int] = set()
    order: list[int] = []

    def visit(u: int) -> None:
        seen.add(u)
        for v in sorted(G.successors(u)):
            if v not in seen:
                visit(v)
        order.append(u)

    for s in sorted(G.nodes):
        if s not in seen:
            visit(s)
    return order


def chain(g) -> list[int]:
    """The order a (topo, topo_head) linked list spells."""
    nxt = g["topo"].tolist()  # a pointer to any node: stored as node numbers
    u, out = int(g["topo_head"].argmax()), []
    while True:
        out.append(u)
        if nxt[u] == u:
            return out
        u = nxt[u]


@settings(max_examples=20, deadline=None)
@given(sampled("dag"))
def test_topological_order_is_valid_and_follows_the_clrs_dfs_tie_rule(sg):
    G = nx_graph(sg)
    g = get_task("topological_sort").run(sg)
    order = chain(g)
    assert sorted(order) == list(range(sg.num_nodes))
    place = {v: i for i, v in enumerate(order)}
    assert all(place[u] < place[v] for u, v in G.edges)
    assert order == postorder(G)[::-1]  # reverse finishing order, roots and neighbours lowest first


@settings(max_examples=20, deadline=None)
@given(sampled("directed"))
def test_scc_partition_equals_networkx_and_ids_are_the_last_finished_node(sg):
    G = nx_graph(sg)
    g = get_task("strongly_connected_components").run(sg)
    ids = g["scc_id"].tolist()
    finish = {v: i for i, v in enumerate(postorder(G))}
    for comp in nx.strongly_connected_components(G):
        root = max(comp, key=finish.__getitem__)  # pass 2 starts from the latest finish
        assert {ids[v] for v in comp} == {root}


@settings(max_examples=20, deadline=None)
@given(sampled("undirected"))
def test_kruskal_forest_has_networkx_mst_weight_and_spans_every_component(sg):
    G = nx_graph(sg)
    g = get_task("mst_kruskal").run(sg)
    src, dst = g.edge_index
    chosen = [(int(u), int(v), float(w)) for u, v, w, m in zip(src, dst, g["w"], g["in_mst"]) if m > 0]
    assert all(g["adj"][g["in_mst"] > 0] == 1)
    forward = [(u, v, w) for u, v, w in chosen if u < v]
    assert sorted((v, u) for u, v, _ in forward) == sorted((u, v) for u, v, _ in chosen if u > v)  # symmetric
    T = nx.Graph()
    T.add_nodes_from(G.nodes)
    T.add_weighted_edges_from(forward)
    assert nx.is_forest(T) and nx.number_connected_components(T) == nx.number_connected_components(G)
    want = nx.minimum_spanning_tree(G).size(weight="weight")
    assert sum(w for *_, w in forward) == pytest.approx(want, rel=1e-6, abs=1e-6)
    assert all(G[u][v]["weight"] == pytest.approx(w) for u, v, w in forward)  # the lightest parallel copy


@settings(max_examples=20, deadline=None)
@given(sampled("dag"), st.data())
def test_dag_shortest_paths_match_networkx_and_pointers_are_tight(sg, data):
    G = nx_graph(sg)
    s = data.draw(st.integers(0, sg.num_nodes - 1))
    g = get_task("dag_shortest_paths").run(sg, source=s)
    dist = nx.single_source_dijkstra_path_length(G, s)
    d = g["d"][-1].double()
    pi = pointer_sources(g["pi"], g).tolist()
    for v in range(sg.num_nodes):
        if v in dist:
            assert float(d[v]) == pytest.approx(dist[v], rel=1e-6, abs=1e-6)
            if v != s:
                assert float(d[pi[v]]) + G[pi[v]][v]["weight"] == pytest.approx(dist[v], rel=1e-6, abs=1e-6)
        else:
            assert pi[v] == v and float(d[v]) == 0.0
    assert pi[s] == s


@settings(max_examples=20, deadline=None)
@given(sampled("directed", max_nodes=7))
def test_floyd_warshall_distances_match_networkx_and_predecessors_are_consistent(sg):
    G = nx_graph(sg)
    g = get_task("floyd_warshall").run(sg)
    n = sg.num_nodes
    src, dst = g.edge_index.tolist()
    assert sorted(set(zip(src, dst))) == [(i, j) for i in range(n) for j in range(n)]  # every pair is stored
    D, msk, Pi = g["D"][-1].double().tolist(), g["msk"][-1].tolist(), g["Pi"].tolist()
    dist = dict(nx.all_pairs_dijkstra_path_length(G))
    for e, (i, j) in enumerate(zip(src, dst)):
        assert (msk[e] == 1.0) == (j in dist[i])
        if i == j:  # the graph's own self-loop (CLRS's A[i, i]) or a shorter cycle through i, else 0
            loop = min((w for u, v, w in zip(sg.src, sg.dst, sg.weight.astype(np.float32)) if u == v == i),
                       default=None)
            cycle = min((dist[i][u] + G[u][i]["weight"] for u in G.predecessors(i) if u in dist[i]), default=np.inf)
            want = 0.0 if loop is None else min(float(loop), cycle)
            assert D[e] == pytest.approx(want, rel=1e-6, abs=1e-6)
            if loop is None or loop <= cycle:
                assert Pi[e] == i
            else:
                assert G.has_edge(Pi[e], i) and dist[i][Pi[e]] + G[Pi[e]][i]["weight"] == pytest.approx(want)
        elif j in dist[i]:
            assert D[e] == pytest.approx(dist[i][j], rel=1e-6, abs=1e-6)
            k = Pi[e]
            assert G.has_edge(k, j) and dist[i][k] + G[k][j]["weight"] == pytest.approx(dist[i][j], rel=1e-6, abs=1e-6)
        else:
            assert Pi[e] == i


@pytest.mark.parametrize("name,scheme,sampler,kw", [
    ("topological_sort", "zero_inputs", er_dag, {"n": 6}),
    ("strongly_connected_components", "zero_inputs", "erdos_renyi", {"n": 6, "p": 0.3, "directed": True}),
    ("mst_kruskal", "perturb_weights", "erdos_renyi", {"n": 6, "p": 0.4}),
    ("dag_shortest_paths", "resample_source", er_dag, {"n": 6}),
    ("floyd_warshall", "resample_weights", "erdos_renyi", {"n": 5, "directed": True}),
])
def test_corrupted_pairs_keep_every_stored_row_and_flag_pointer_edges(name, scheme, sampler, kw):
    clean, bad = sample_pairs(get_task(name), 3, scheme, sampler, seed=0, **kw)
    assert torch.equal(clean.edge_index, bad.edge_index) and torch.equal(clean["adj"], clean["adj"])
    for g in clean.split():
        own = g["adj"] > 0
        m = int(own.sum())
        assert bool(own[:m].all()) and not bool(own[m:].any())  # pointer edges come last
        pairs = set(zip(*g.edge_index[:, :m].tolist()))
        assert not pairs & set(zip(*g.edge_index[:, m:].tolist()))  # only pairs no edge joins
        if "w" in g.fields:
            assert bool((g["w"][m:] == 0).all())


def test_sparse_graphs_stay_sparse_where_the_algorithm_allows():
    sg = SampledGraph(6, np.array([0, 2, 4, 1]), np.array([1, 3, 5, 2]), np.ones(4), directed=True)
    scc = get_task("strongly_connected_components").run(sg)
    assert scc.num_edges == 6 + 4 + 4  # self-loops, arcs, their reverses (pass 2 walks them)
    path = SampledGraph(6, np.arange(5), np.arange(1, 6), np.ones(5))  # one component: its pairs are no edges
    assert get_task("mst_kruskal").run(path).num_edges == 6 + 10
    assert get_task("topological_sort").run(sg).num_edges == 6 + 4
    assert get_task("dag_shortest_paths").run(sg, source=0).num_edges == 6 + 4
    assert get_task("floyd_warshall").run(sg).num_edges == 36  # its state is dense: every pair


@pytest.mark.parametrize("name", ["topological_sort", "dag_shortest_paths"])
def test_cyclic_graphs_are_refused_by_name(name):
    cyc = SampledGraph(3, np.array([0, 1, 2]), np.array([1, 2, 0]), np.ones(3), directed=True)
    with pytest.raises(ValueError, match=f"{name} needs a directed acyclic graph"):
        get_task(name).run(cyc)
    with pytest.raises(ValueError, match="needs a directed acyclic graph"):
        get_task(name).run(SampledGraph(2, np.array([0]), np.array([1]), np.ones(1)))  # undirected: a 2-cycle


def test_kruskal_refuses_directed_graphs_and_floyd_warshall_negative_weights():
    with pytest.raises(ValueError, match="mst_kruskal needs an undirected graph"):
        get_task("mst_kruskal").run(SampledGraph(2, np.array([0]), np.array([1]), np.ones(1), directed=True))
    with pytest.raises(ValueError, match="floyd_warshall needs non-negative"):
        get_task("floyd_warshall").run(SampledGraph(2, np.array([0]), np.array([1]), -np.ones(1), directed=True))


def test_floyd_warshall_refuses_a_negative_self_loop_and_rerun_keeps_every_row():
    fw = get_task("floyd_warshall")
    with pytest.raises(ValueError, match=r"floyd_warshall needs non-negative edge weights \(edge 2 has -0.5\)"):
        fw.run(SampledGraph(2, np.array([0]), np.array([0]), np.array([-0.5]), directed=True))
    g = fw.run(SampledGraph(3, np.array([0, 1, 1]), np.array([1, 1, 2]), np.array([0.5, 0.25, 1.0]), directed=True))
    again = fw.rerun(g)
    assert torch.equal(again.edge_index, g.edge_index)
    assert all(torch.equal(again[k], g[k]) for k in fw.spec)
