"""Properties shared by every task: spec coverage, hint shapes, final hint == output,
batching round-trips, the registry and speed."""

from __future__ import annotations


import numpy as np
import pytest
import torch

from hookgnn.graph import Graph
from hookgnn.spec import FeatureSpec
from hookgnn.tasks import TASKS, get_task
from hookgnn.tasks.base import encode_pointers, stored_edges
from hookgnn.tasks.pointer_edges import er_dag
from hookgnn.tasks.samplers import SampledGraph, erdos_renyi

# hint -> the output its final step must equal
FINAL = {
    "bellman_ford": {"pi_h": "pi", "d_h": "d", "msk": "reach"},
    "bfs": {"pi_h": "pi", "reach_h": "reach"},
    "dfs": {"pi_h": "pi"},
    "dijkstra": {"pi_h": "pi", "d_h": "d", "mark": "reach"},
    "mst_prim": {"pi_h": "pi"},
    "articulation_points": {"is_cut_h": "is_cut"},
    "bridges": {"is_bridge_h": "is_bridge"},
    "topological_sort": {"topo_h": "topo", "topo_head_h": "topo_head"},
    "strongly_connected_components": {"scc_id_h": "scc_id"},
    "mst_kruskal": {"in_mst_h": "in_mst"},
    "dag_shortest_paths": {"pi_h": "pi"},
    "floyd_warshall": {"Pi_h": "Pi"},
}
ALL = sorted(TASKS)


def batch(name: str, seed: int = 0) -> Graph:
    return TASKS[name].sample(12, er_dag if TASKS[name].acyclic_only else "erdos_renyi", seed=seed, n=7, p=0.3)


def own_edges(g: Graph) -> torch.Tensor:
    """The graph's own edges: all, or those flagged ``adj`` where pointer edges were added."""
    return g.edge_index[:, g["adj"] > 0] if "adj" in g.fields else g.edge_index


def test_registry_covers_every_task_with_a_final_hint_check():
    assert set(FINAL) == set(TASKS)
    assert all(TASKS[k].name == k for k in TASKS)


@pytest.mark.parametrize("name", ALL)
def test_every_spec_feature_is_a_field_at_its_location(name):
    task, g = TASKS[name], batch(name)
    for key, fs in task.spec.items():
        assert isinstance(fs, FeatureSpec)
        f = g.fields[key]
        assert f.location == fs.field_location and f.time == (fs.stage == "hint")
        if fs.type == "categorical":
            assert f.value.shape[-1] == fs.dim
    assert g["num_steps"].dtype == torch.long and g["num_steps"].shape == (g.num_graphs,)
    assert g.x.shape[1] >= 1 and g.edge_attr is not None and g.edge_attr.shape[1] >= 1


@pytest.mark.parametrize("name", ALL)
def test_hints_have_num_steps_steps_and_end_in_the_outputs(name):
    for g in batch(name).split():
        steps = int(g["num_steps"][0])
        for hint, output in FINAL[name].items():
            trace = g[hint]
            assert trace.shape[0] >= steps  # padded to the batch's longest trajectory
            assert torch.equal(trace[steps - 1], g[output]), f"{hint}[-1] != {output}"
            assert torch.equal(trace[steps:], trace[steps - 1 : steps].expand_as(trace[steps:]))


@pytest.mark.parametrize("name", ALL)
def test_single_graph_hints_have_shape_t_by_items(name):
    task = TASKS[name]
    g = task.run((er_dag if task.acyclic_only else erdos_renyi)(6, 0.4, seed=3), seed=0)
    steps = int(g["num_steps"][0])
    for key, fs in task.spec.items():
        if fs.stage == "hint":
            assert g[key].shape[:2] == (steps, g.count(fs.field_location))


@pytest.mark.parametrize("name", ALL)
def test_pointers_and_mask_ones_are_well_formed_at_every_step(name):
    task, g = TASKS[name], batch(name)
    dst = g.edge_index[1]
    for key, fs in task.spec.items():
        value = g[key] if fs.stage == "hint" else g[key][None]
        if fs.type == "pointer" and (fs.location == "edge" or fs.any_node):  # in-graph node numbers
            size = g.ptr.diff()[g.owner(fs.field_location)]
            assert value.dtype == torch.long and bool(((value >= 0) & (value < size)).all())
            continue
        if fs.type == "pointer":
            per_node = torch.zeros(value.shape[0], g.num_nodes).index_add_(1, dst, value)
            assert torch.equal(per_node, torch.ones_like(per_node))
        if fs.type == "mask_one":
            per_graph = torch.zeros(value.shape[0], g.num_graphs).index_add_(1, g.batch, value)
            assert torch.equal(per_graph, torch.ones_like(per_graph))
        if fs.type in ("mask", "mask_one", "pointer"):
            assert set(value.unique().tolist()) <= {0.0, 1.0}


@pytest.mark.parametrize("name", ALL)
def test_collate_of_split_round_trips_and_matches_single_runs(name):
    g = batch(name, seed=5)
    again = Graph.collate(g.split())
    assert torch.equal(again.edge_index, g.edge_index) and torch.equal(again.ptr, g.ptr)
    assert torch.equal(again.x, g.x) and torch.equal(again.edge_attr, g.edge_attr)
    for key in g.fields:
        assert torch.equal(again[key], g[key])
    for part in g.split():  # rerunning a stored graph reproduces it
        steps = int(part["num_steps"][0])
        fresh = TASKS[name].rerun(part)
        for key, fs in TASKS[name].spec.items():
            value = part[key][:steps] if fs.stage == "hint" else part[key]
            assert torch.equal(fresh[key], value)


@pytest.mark.parametrize("name", ALL)
def test_same_seed_same_batch_and_same_graphs_across_tasks(name):
    a, b = batch(name, seed=11), batch(name, seed=11)
    for key in a.fields:
        assert torch.equal(a[key], b[key])
    if not TASKS[name].acyclic_only:  # the same graphs (acyclic tasks draw DAGs)
        assert torch.equal(own_edges(a), batch("bfs", seed=11).edge_index)
    assert not torch.equal(batch(name, seed=12).edge_index, a.edge_index) or a.num_edges == a.num_nodes


def test_inputs_are_stacked_into_x_and_edge_attr():
    g = get_task("bellman_ford").sample(3, "grid", seed=0, rows=2, cols=2)
    assert torch.equal(g.x[:, 0], g["s"]) and torch.equal(g.edge_attr[:, 0], g["w"])
    d = get_task("dfs").sample(2, "cycle", seed=0, n=4)
    pos = torch.tensor([0.0, 0.25, 0.5, 0.75] * 2)  # CLRS's i / n per graph
    assert torch.equal(d.x, pos[:, None]) and torch.equal(d.edge_attr, torch.ones(d.num_edges, 1))
    assert torch.equal(g.x[:, 1], g["pos"])


def test_stored_graph_has_one_self_loop_per_node_first_and_both_directions():
    g = SampledGraph(3, np.array([0, 1, 2, 0]), np.array([1, 1, 0, 1]), np.array([0.5, 0.9, 0.25, 0.125]))
    ei, w = stored_edges(g)  # the graph's own self-loop 1 -> 1 is kept once, after the stored ones
    assert ei.tolist() == [[0, 1, 2, 0, 1, 1, 2, 0, 0, 1], [0, 1, 2, 1, 0, 1, 0, 2, 1, 0]]
    assert w.tolist() == [0, 0, 0, 0.5, 0.5, float(np.float32(0.9)), 0.25, 0.25, 0.125, 0.125]
    pi = get_task("bfs").run(g, source=1)["pi"]  # 1 points to itself on edge 1, not on its own loop 5
    assert pi.tolist() == [0, 1, 0, 0, 1, 0, 0, 1, 0, 0]


def test_pointer_lands_on_the_lightest_then_lowest_index_parallel_edge():
    ei = np.array([[0, 1, 0, 0, 0], [0, 1, 1, 1, 1]])
    w = np.array([0.0, 0.0, 0.5, 0.25, 0.25])
    assert encode_pointers(np.array([0, 0]), ei, w).tolist() == [1, 0, 0, 1, 0]
    with pytest.raises(ValueError, match="no such edge"):
        encode_pointers(np.array([1, 1]), ei, w)


def test_tasks_see_the_lightest_parallel_edge():
    g = SampledGraph(2, np.array([0, 0]), np.array([1, 1]), np.array([0.75, 0.25]), source=0)
    out = get_task("bellman_ford").run(g)
    assert out["d"].tolist() == [0.0, 0.25]
    assert out["pi"].tolist() == [1, 0, 0, 0, 1, 0]  # loops, 0->1 (0.75), 1->0, 0->1 (0.25), 1->0


def test_run_edges_rejects_a_node_without_self_loop():
    with pytest.raises(ValueError, match="self-loop"):
        get_task("bfs").run_edges(np.array([[0], [1]]), np.zeros(1), 2, 0)


def test_get_task_suggests_close_names():
    with pytest.raises(KeyError, match="did you mean 'dijkstra'"):
        get_task("dijkstr")
    with pytest.raises(KeyError, match="known tasks"):
        get_task("zzz")


def test_single_node_graphs_run_for_every_task():
    g = SampledGraph(1, np.zeros(0), np.zeros(0), np.zeros(0))
    for task in TASKS.values():
        out = task.run(g)
        assert out.num_nodes == 1 and out.num_edges == 1

