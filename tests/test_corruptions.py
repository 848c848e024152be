"""Clean/corrupted pairs: same structure, documented invariants, seeded."""

from __future__ import annotations

import networkx as nx
import numpy as np
import pytest
import torch

from hookgnn.tasks import TASKS, get_task
from hookgnn.tasks.corruptions import CORRUPTIONS, corrupt, is_undirected, reverse_groups, sample_pairs
from hookgnn.tasks.pointer_edges import er_dag
from pointers import pointers

WEIGHTED = ["bellman_ford", "dijkstra", "mst_prim"]
SOURCED = ["bellman_ford", "bfs", "dijkstra", "mst_prim"]


def sources(g) -> list[int]:
    return [int(p["s"].argmax()) for p in g.split()]


def pairs(name, scheme, seed=0, options=None, **kw):
    kw = {"n": 8, "p": 0.4, **kw}
    sampler = er_dag if TASKS[name].acyclic_only else "erdos_renyi"
    return sample_pairs(TASKS[name], 10, scheme, sampler, seed=seed, options=options, **kw)


@pytest.mark.parametrize("name", SOURCED)
def test_resample_source_moves_the_source_and_recomputes(name):
    clean, bad = pairs(name, "resample_source")
    assert torch.equal(clean.edge_index, bad.edge_index) and torch.equal(clean.ptr, bad.ptr)
    assert all(a != b for a, b in zip(sources(clean), sources(bad)))
    if "w" in TASKS[name].spec:
        assert torch.equal(clean["w"], bad["w"])
    for part in bad.split():
        fresh = TASKS[name].rerun(part)
        for key, fs in TASKS[name].spec.items():
            if fs.stage == "output":
                assert torch.equal(fresh[key], part[key])


def test_resample_source_keeps_the_only_node_of_a_single_node_graph():
    clean, bad = sample_pairs(get_task("bfs"), 3, "resample_source", "path", seed=0, n=1)
    assert sources(bad) == sources(clean) == [0, 0, 0]


def test_resampled_bellman_ford_distances_match_networkx():
    clean, bad = pairs("bellman_ford", "resample_source", seed=3)
    for part in bad.split():
        G = nx.DiGraph()
        G.add_nodes_from(range(part.num_nodes))
        for (u, v), w in zip(part.edge_index.t().tolist(), part["w"].tolist()):
            if u != v:
                G.add_edge(u, v, weight=w)
        dist = nx.single_source_bellman_ford_path_length(G, int(part["s"].argmax()))
        assert np.allclose(part["d"].numpy(), [dist.get(v, 0.0) for v in range(part.num_nodes)], atol=1e-5)


def _weights_symmetric(g) -> bool:
    groups = reverse_groups(g.edge_index.numpy())
    w = g["w"].numpy()
    return all(len(set(w[groups == k].tolist())) == 1 for k in np.unique(groups[groups >= 0]))


@pytest.mark.parametrize("name", WEIGHTED)
@pytest.mark.parametrize("mode", ["multiplicative", "additive"])
def test_perturb_weights_keeps_structure_source_self_loops_and_symmetry(name, mode):
    clean, bad = pairs(name, "perturb_weights", options={"scale": 0.3, "mode": mode})
    assert torch.equal(clean.edge_index, bad.edge_index) and torch.equal(clean.ptr, bad.ptr)
    assert torch.equal(clean["s"], bad["s"])
    loops = bad.edge_index[0] == bad.edge_index[1]
    assert (bad["w"][loops] == 0).all() and (bad["w"] >= 0).all()
    assert _weights_symmetric(bad)
    assert not torch.equal(clean["w"], bad["w"])
    if mode == "multiplicative":
        assert torch.equal(clean["w"] == 0, bad["w"] == 0)
        ratio = bad["w"][~loops] / clean["w"][~loops]
        assert ratio.min() > np.exp(-0.3 * 6) and ratio.max() < np.exp(0.3 * 6)


@pytest.mark.parametrize("name", WEIGHTED)
def test_resample_weights_draws_in_range_symmetrically(name):
    clean, bad = pairs(name, "resample_weights", options={"low": 2.0, "high": 3.0})
    loops = bad.edge_index[0] == bad.edge_index[1]
    w = bad["w"][~loops]
    assert ((w >= 2) & (w < 3)).all() and (bad["w"][loops] == 0).all()
    assert _weights_symmetric(bad) and torch.equal(clean["s"], bad["s"])


@pytest.mark.parametrize("name", sorted(TASKS))
def test_zero_inputs_zeroes_what_the_model_reads_and_keeps_targets(name):
    clean, bad = pairs(name, "zero_inputs")
    assert torch.equal(clean.edge_index, bad.edge_index) and torch.equal(clean.ptr, bad.ptr)
    assert (bad.x == 0).all() and (bad.edge_attr == 0).all()
    for key, fs in TASKS[name].spec.items():
        if fs.stage == "input":
            assert (bad[key] == 0).all()
        else:
            assert torch.equal(bad[key], clean[key])


@pytest.mark.parametrize("scheme", sorted(CORRUPTIONS))
def test_same_seed_gives_the_same_pair(scheme):
    a, b = pairs("bellman_ford", scheme, seed=4), pairs("bellman_ford", scheme, seed=4)
    for key in a[1].fields:
        assert torch.equal(a[1][key], b[1][key])
    assert torch.equal(a[1].x, b[1].x)


def test_schemes_refuse_tasks_without_their_input():
    dfs = get_task("dfs").sample(2, seed=0, n=5)
    with pytest.raises(ValueError, match="input 's'"):
        corrupt(get_task("dfs"), dfs, "resample_source", seed=0)
    bfs = get_task("bfs").sample(2, seed=0, n=5)
    with pytest.raises(ValueError, match="input 'w'"):
        corrupt(get_task("bfs"), bfs, "perturb_weights", seed=0)
    with pytest.raises(KeyError, match="unknown corruption"):
        corrupt(get_task("bfs"), bfs, "shuffle", seed=0)
    with pytest.raises(ValueError, match="mode"):
        corrupt(get_task("dijkstra"), get_task("dijkstra").sample(1, seed=0, n=4), "perturb_weights",
                seed=0, options={"mode": "bogus"})


def test_a_custom_scheme_that_changes_structure_is_caught():
    task = get_task("bfs")
    clean = task.sample(2, seed=0, n=5)
    other = task.sample(2, seed=1, n=5)
    with pytest.raises(AssertionError, match="structure"):
        corrupt(task, clean, lambda t, g, rng: other.graph(0), seed=0)


# ------------------------------------------------ directed graphs and float32 weights
def directed_pairs(name: str, scheme: str, options: dict, seed: int = 0):
    return sample_pairs(TASKS[name], 12, scheme, "erdos_renyi", seed=seed, options=options,
                        n=10, p=0.6, directed=True)


def antiparallel(g) -> tuple[np.ndarray, np.ndarray]:
    """Index pairs (e, f) of arcs u -> v and v -> u (u != v) of a graph without parallel arcs."""
    index = {(u, v): e for e, (u, v) in enumerate(g.edge_index.t().tolist())}
    pairs = [(e, index[(v, u)]) for (u, v), e in index.items() if u < v and (v, u) in index]
    return tuple(np.array(c) for c in zip(*pairs))


@pytest.mark.parametrize("name", ["bellman_ford", "dijkstra"])
def test_perturb_weights_on_directed_graphs_follows_the_law_per_arc(name):
    sigma = 0.1
    clean, bad = directed_pairs(name, "perturb_weights", {"scale": sigma})
    loops = clean.edge_index[0] == clean.edge_index[1]
    w, w2 = clean["w"].double().numpy(), bad["w"].double().numpy()
    arcs = ~loops.numpy() & (w > 0)
    eps = np.log(w2[arcs] / w[arcs]) / sigma  # w' = w exp(sigma eps), eps ~ N(0, 1) per arc
    assert np.abs(eps).max() < 6
    assert abs(eps.mean()) < 0.15 and 0.85 < eps.std() < 1.15
    e, f = antiparallel(clean)
    keep = (w[e] > 0) & (w[f] > 0)
    assert keep.sum() > 100
    a, b = (np.log(w2[i[keep]] / w[i[keep]]) for i in (e, f))
    assert abs(np.corrcoef(a, b)[0, 1]) < 0.3  # antiparallel arcs draw independently
    assert not np.allclose(w2[e], w2[f])


def test_additive_perturbation_and_resampling_are_per_arc_on_directed_graphs():
    sigma = 0.05
    clean, bad = directed_pairs("bellman_ford", "perturb_weights", {"scale": sigma, "mode": "additive"})
    w, w2 = clean["w"].double().numpy(), bad["w"].double().numpy()
    arcs = (clean.edge_index[0] != clean.edge_index[1]).numpy() & (w2 > 0)
    assert np.abs((w2[arcs] - w[arcs]) / sigma).max() < 6
    clean, bad = directed_pairs("dijkstra", "resample_weights", {"low": 1.0, "high": 2.0})
    e, f = antiparallel(clean)
    assert e.size > 100 and (bad["w"][e] != bad["w"][f]).all()


def test_undirected_graphs_stay_undirected_and_the_directed_option_is_checked():
    clean, bad = pairs("mst_prim", "perturb_weights", options={"scale": 0.3})
    assert is_undirected(bad.edge_index.numpy(), bad["w"].numpy()) and _weights_symmetric(bad)
    clean, _ = directed_pairs("dijkstra", "resample_source", {})
    with pytest.raises(ValueError, match="directed=False"):
        corrupt(TASKS["dijkstra"], clean, "perturb_weights", seed=0, options={"directed": False})
    g = TASKS["dijkstra"].sample(4, seed=0, n=8, p=0.5)  # undirected, but treated as directed on request
    bad = corrupt(TASKS["dijkstra"], g, "resample_weights", seed=0, options={"directed": True})
    assert not is_undirected(bad.edge_index.numpy(), bad["w"].numpy())


def unit_weight_reference(part) -> tuple[list[float], list[int]]:
    """networkx BFS levels on the stored graph; the BF rule with equal weights: the
    lowest-index in-neighbour one level up."""
    G = nx.DiGraph()
    G.add_nodes_from(range(part.num_nodes))
    G.add_edges_from((u, v) for u, v in part.edge_index.t().tolist() if u != v)
    s = int(part["s"].argmax())
    level = nx.single_source_shortest_path_length(G, s)
    pi = [v if v == s or v not in level else min(u for u in G.predecessors(v) if level.get(u) == level[v] - 1)
          for v in range(part.num_nodes)]
    return [float(level.get(v, 0)) for v in range(part.num_nodes)], pi


@pytest.mark.parametrize("scheme, options", [
    ("resample_weights", {"low": 1.0, "high": 1.0 + 2.0**-25}),  # every draw rounds to 1.0 in float32
    ("perturb_weights", {"scale": 2.0**-30}),
    ("perturb_weights", {"scale": 2.0**-30, "mode": "additive"}),
])
def test_weight_corruptions_label_the_stored_float32_weights(scheme, options):
    clean, bad = sample_pairs(TASKS["bellman_ford"], 10, scheme, "erdos_renyi", seed=1, options=options,
                              n=10, p=0.4, weights=(1.0, 1.0))
    for part in bad.split():
        loops = part.edge_index[0] == part.edge_index[1]
        assert (part["w"][~loops] == 1).all()  # the noise is below float32 resolution
        d, pi = unit_weight_reference(part)
        assert part["d"].tolist() == d
        assert pointers(part, "pi") == pi
