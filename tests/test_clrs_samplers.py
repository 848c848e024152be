"""CLRS-30's samplers by name: densities, self-loops, DAGs, communities and weights as in
``clrs/_src/samplers.py`` (dm-clrs 2.0.3), checked by counting over many seeded graphs."""

from __future__ import annotations

import networkx as nx
import numpy as np
import pytest

from hookgnn.tasks import SAMPLERS, TASKS, get_task
from hookgnn.tasks.clrs_samplers import CLRS_SAMPLERS, clrs_community, clrs_erdos_renyi, clrs_sampler


def counts(graphs):
    """(pairs i < j joined, pairs possible, self-loops, nodes) over ``graphs``."""
    pairs = possible = loops = nodes = 0
    for g in graphs:
        loop = g.src == g.dst
        loops += int(loop.sum())
        keys = {(min(u, v), max(u, v)) if not g.directed else (u, v) for u, v in zip(g.src[~loop], g.dst[~loop])}
        pairs += len(keys)
        nodes += g.num_nodes
        possible += g.num_nodes * (g.num_nodes - 1) // (1 if g.directed else 2)
    return pairs, possible, loops, nodes


def within(count: int, trials: int, p: float) -> bool:
    """``count`` successes out of ``trials`` is within 5 standard deviations of Bernoulli(p)."""
    return abs(count - trials * p) <= 5 * np.sqrt(trials * p * (1 - p)) + 1


@pytest.mark.parametrize("name, p, directed", [("bfs", 0.5, False), ("articulation_points", 0.2, False),
                                               ("dfs", 0.5, True), ("dijkstra", 0.5, False)])
def test_edge_and_self_loop_rates_follow_clrs(name, p, directed):
    graphs = [clrs_sampler(name)(n=12, seed=s) for s in range(60)]
    assert all(g.directed == directed for g in graphs)
    pairs, possible, loops, nodes = counts(graphs)
    # undirected: A * A^T keeps a pair with probability p^2 and the diagonal with probability p
    assert within(pairs, possible, p if directed else p * p)
    assert within(loops, nodes, p)
    if not directed:
        assert not within(pairs, possible, p)  # the p^2 rule is really what is sampled


def test_undirected_weights_are_clrs_geometric_means():
    g = clrs_sampler("dijkstra")(n=30, seed=0)
    w = g.weight
    # sqrt(u u' + 1e-3) with u, u' uniform on [0, 1): in [sqrt(1e-3), sqrt(1 + 1e-3))
    assert w.min() >= np.sqrt(1e-3) and w.max() < np.sqrt(1 + 1e-3)
    assert np.mean(w**2 - 1e-3) == pytest.approx(0.25, abs=0.05)  # E[u u'] = 1/4
    low, high = 2.0, 3.0
    d = clrs_erdos_renyi(30, 0.5, directed=True, weighted=True, low=low, high=high, seed=0)
    assert d.weight.min() >= low and d.weight.max() < high  # directed: plain uniform weights


def test_dags_are_acyclic_without_self_loops_and_not_ordered_by_index():
    backward = 0
    for s in range(20):
        g = clrs_sampler("dag_shortest_paths")(n=10, seed=s)
        G = nx.DiGraph(list(zip(g.src.tolist(), g.dst.tolist())))
        assert nx.is_directed_acyclic_graph(G) and not (g.src == g.dst).any() and g.source is not None
        backward += int((g.src > g.dst).sum())
    assert backward > 0  # the permutation makes "u < v" no topological order


def test_community_graphs_are_k_blocks_joined_only_by_toggles():
    g = clrs_community(16, k=4, p=1.0, eps=0.0, seed=0)  # complete blocks, no toggles
    G = nx.Graph(list(zip(g.src.tolist(), g.dst.tolist())))
    assert sorted(len(c) for c in nx.connected_components(G)) == [4, 4, 4, 4]
    assert g.num_edges == 4 * 16  # 4 blocks of 4 x 4 arcs, self-loops included
    toggled = clrs_community(16, k=4, p=0.0, eps=1.0, seed=0)  # only toggles: none from a later block back
    G = nx.DiGraph(list(zip(toggled.src.tolist(), toggled.dst.tolist())))
    G.remove_edges_from(nx.selfloop_edges(G))
    condensed = nx.condensation(G)
    assert condensed.number_of_nodes() == 4  # the blocks are strongly connected, and no cycle between them


def test_every_clrs_sampler_is_registered_and_runs_with_the_matching_task():
    for key in CLRS_SAMPLERS:
        assert SAMPLERS[key] is CLRS_SAMPLERS[key]
    for name, task in TASKS.items():
        g = task.sample(2, f"clrs_{name}", seed=0, n=8)
        assert g.num_graphs == 2 and g.num_nodes == 16
    a = get_task("bfs").sample(2, "clrs_bfs", seed=3, n=6)
    b = get_task("bfs").sample(2, "clrs_bfs", seed=3, n=6)
    assert (a.edge_index == b.edge_index).all() and (a["s"] == b["s"]).all()


def test_unknown_or_bad_requests_say_what_is_wrong():
    with pytest.raises(KeyError, match="no CLRS sampler for 'dijkstr'.*'dijkstra'"):
        clrs_sampler("dijkstr")
    with pytest.raises(ValueError, match="acyclic=True needs directed=True"):
        clrs_erdos_renyi(5, acyclic=True)
    with pytest.raises(ValueError, match="p must lie in"):
        clrs_erdos_renyi(5, 1.5)
    with pytest.raises(ValueError, match="cannot split 3 nodes into k=4"):
        clrs_community(3)


@pytest.mark.parametrize("name, scheme", [("dijkstra", "resample_weights"), ("bfs", "resample_source"),
                                          ("bridges", "zero_inputs"), ("mst_prim", "perturb_weights")])
def test_pairs_on_clrs_graphs_keep_the_structure_row_for_row(name, scheme):
    from hookgnn.tasks.corruptions import sample_pairs

    clean, bad = sample_pairs(get_task(name), 3, scheme, f"clrs_{name}", seed=0, n=9)
    assert (clean.edge_index == bad.edge_index).all() and (clean.ptr == bad.ptr).all()
    assert (clean.edge_index[0] == clean.edge_index[1]).sum() > clean.num_nodes  # CLRS's own self-loops kept
    if scheme != "zero_inputs":
        assert (clean["pos"] == bad["pos"]).all()
