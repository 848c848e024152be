"""DFS, articulation points, bridges and Prim's MST against networkx references."""

from __future__ import annotations

import networkx as nx
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hookgnn.graph import Graph
from hookgnn.tasks import get_task
from hookgnn.tasks.samplers import SampledGraph, path_graph
from pointers import pointers


@st.composite
def graphs(draw, directed: bool | None = False, max_n: int = 9, distinct_weights: bool = False):
    """Small graphs with isolated nodes, self-loops and parallel edges."""
    n = draw(st.integers(1, max_n))
    m = draw(st.integers(0, 2 * n))
    src = draw(st.lists(st.integers(0, n - 1), min_size=m, max_size=m))
    dst = draw(st.lists(st.integers(0, n - 1), min_size=m, max_size=m))
    if distinct_weights:
        k = draw(st.lists(st.integers(0, 100), min_size=m, max_size=m, unique=True))
    else:
        k = draw(st.lists(st.integers(0, 4), min_size=m, max_size=m))
    is_directed = draw(st.booleans()) if directed is None else directed
    return SampledGraph(n, np.array(src), np.array(dst), np.array(k) / 4, is_directed, draw(st.integers(0, n - 1)))


def simple(g: SampledGraph, multi: bool = False) -> nx.Graph:
    """networkx graph without self-loops; parallel edges kept only when ``multi``; min weights."""
    G = (nx.MultiDiGraph() if multi else nx.DiGraph()) if g.directed else (nx.MultiGraph() if multi else nx.Graph())
    G.add_nodes_from(range(g.num_nodes))
    ends = zip(g.src.tolist(), g.dst.tolist()) if g.directed else map(sorted, zip(g.src.tolist(), g.dst.tolist()))
    # inserting (u, v) in lexicographic order makes every adjacency list increasing
    for (u, v), w in sorted(zip(map(tuple, ends), g.weight.tolist())):
        if u == v:
            continue
        if multi or not G.has_edge(u, v) or G[u][v]["weight"] > w:
            G.add_edge(u, v, weight=w)
    return G


@settings(max_examples=80, deadline=None)
@given(graphs(directed=None))
def test_dfs_forest_matches_networkx_dfs_with_sorted_neighbours_and_roots(g):
    out = get_task("dfs").run(g)
    G = simple(g)
    assert all(list(G[u]) == sorted(G[u]) for u in G), "the reference must visit neighbours increasingly"
    ref_pi, order = list(range(g.num_nodes)), []
    for root in range(g.num_nodes):
        if root in order:
            continue
        unvisited = G.subgraph(set(G) - set(order))  # a view: keeps the adjacency order
        order += list(nx.dfs_preorder_nodes(unvisited, root))
        for u, v in nx.dfs_edges(unvisited, root):
            ref_pi[v] = u
    assert pointers(out, "pi") == ref_pi
    disc = out["d"][-1]
    assert sorted(range(g.num_nodes), key=lambda v: float(disc[v])) == order
    assert int(out["num_steps"][0]) == 3 * g.num_nodes  # CLRS: per node a push (or root start), discovery, finish
    assert out["color"][-1].argmax(-1).tolist() == [2] * g.num_nodes  # all black
    assert out["color"][0].argmax(-1).tolist() == [0] * g.num_nodes  # all white


def test_dfs_rejects_nothing_directed_but_low_link_tasks_need_undirected_graphs():
    g = SampledGraph(3, np.array([0, 1]), np.array([1, 2]), np.zeros(2), directed=True)
    get_task("dfs").run(g)
    for name in ("articulation_points", "bridges", "mst_prim"):
        with pytest.raises(ValueError, match="undirected"):
            get_task(name).run(g)


@settings(max_examples=80, deadline=None)
@given(graphs())
def test_articulation_points_match_networkx(g):
    out = get_task("articulation_points").run(g)
    cut = set(nx.articulation_points(simple(g)))
    assert out["is_cut"].tolist() == [float(v in cut) for v in range(g.num_nodes)]


@settings(max_examples=80, deadline=None)
@given(graphs())
def test_bridges_match_networkx_on_both_directions_and_ignore_parallel_edges(g):
    out = get_task("bridges").run(g)
    bridges = {frozenset(e) for e in nx.bridges(simple(g, multi=True))}
    src, dst = out.edge_index.tolist()
    want = [float(u != v and frozenset((u, v)) in bridges) for u, v in zip(src, dst)]
    assert out["is_bridge"].tolist() == want


def test_path_bridges_and_cut_vertices():
    g = path_graph(5)
    assert get_task("articulation_points").run(g)["is_cut"].tolist() == [0, 1, 1, 1, 0]
    assert int(get_task("bridges").run(g)["is_bridge"].sum()) == 8  # 4 edges, both directions


def _tree_weight(g: SampledGraph, out: Graph) -> tuple[float, set[int]]:
    """Total weight of the pointer tree and the nodes whose pointer chain reaches the root."""
    G = simple(g)
    pi = pointers(out, "pi")
    total, component = 0.0, set()
    for v in range(g.num_nodes):
        walk, seen = v, set()
        while pi[walk] != walk:
            assert walk not in seen, "pointers must not cycle"
            seen.add(walk)
            walk = pi[walk]
        if walk == g.source:
            component.add(v)
        if pi[v] != v:
            total += G[pi[v]][v]["weight"]
    return total, component


@settings(max_examples=80, deadline=None)
@given(graphs())
def test_prim_tree_spans_the_root_component_with_networkx_mst_weight(g):
    out = get_task("mst_prim").run(g)
    G = simple(g)
    comp = nx.node_connected_component(G, g.source)
    total, reached = _tree_weight(g, out)
    assert reached == comp
    mst = nx.minimum_spanning_tree(G.subgraph(comp))
    assert total == pytest.approx(mst.size(weight="weight"))
    assert int(out["num_steps"][0]) == 1 + len(comp)


@settings(max_examples=60, deadline=None)
@given(graphs(distinct_weights=True))
def test_prim_with_distinct_weights_gives_the_unique_mst(g):
    out = get_task("mst_prim").run(g)
    G = simple(g)
    comp = nx.node_connected_component(G, g.source)
    mst = nx.minimum_spanning_tree(G.subgraph(comp))
    pi = pointers(out, "pi")
    assert {frozenset((pi[v], v)) for v in range(g.num_nodes) if pi[v] != v} == {frozenset(e) for e in mst.edges}


def test_prim_ties_go_to_the_first_added_node():
    # triangle 0-1-2 with equal weights from root 0: node 2 is offered weight 1 by 0 first
    g = SampledGraph(3, np.array([0, 0, 1]), np.array([1, 2, 2]), np.ones(3), source=0)
    assert pointers(get_task("mst_prim").run(g), "pi") == [0, 0, 0]
