"""Pointers to any node (``FeatureSpec(..., any_node=True)``): stored as node numbers, so the
trajectories of topological sort, SCC, Kruskal and DAG shortest paths cost O(T (N + E)).

Memory against a bound computed from T, N and E on sparse graphs of growing size; the
decoder, loss and accuracy of such pointers against plain-torch/float64 hand calculations;
a training step on each task, its pointer accuracy counted by hand.
"""

from __future__ import annotations

import pytest
import torch

from hookgnn import Graph, HookedGNN
from hookgnn.metrics import EdgePointerAccuracy, feature_metrics
from hookgnn.models.heads import Decoder
from hookgnn.spec import EDGE_POINTER_PAD, FeatureSpec, check_edge_pointer_target, is_numbered_pointer
from hookgnn.tasks import get_task
from hookgnn.tasks.base import stored_edges
from hookgnn.tasks.pointer_edges import er_dag
from hookgnn.tasks.samplers import erdos_renyi
from hookgnn.training.losses import item_losses, task_loss

ANY = FeatureSpec("output", "node", "pointer", any_node=True)
#: Sparse families (mean degree 2 to 3) and each task's pointer to any node: (family, feature, its stage).
FAMILIES = {
    "topological_sort": (lambda n: er_dag(n, 2 / n, seed=n), "topo"),
    "dag_shortest_paths": (lambda n: er_dag(n, 2 / n, seed=n), "topo_h"),
    "strongly_connected_components": (lambda n: erdos_renyi(n, 2 / n, directed=True, seed=n), "scc_id"),
    "mst_kruskal": (lambda n: erdos_renyi(n, 3 / n, seed=n), "pi"),
}
SIZES = (16, 32, 64, 128)


def hint_bytes(g: Graph, name: str) -> int:
    spec = get_task(name).spec
    return sum(g[k].numel() * g[k].element_size() for k, fs in spec.items() if fs.stage == "hint")


@pytest.mark.parametrize("name", sorted(FAMILIES))
def test_hint_bytes_grow_like_steps_times_nodes_plus_edges(name):
    task, (family, feature) = get_task(name), FAMILIES[name]
    assert task.spec[feature].any_node
    columns = sum(fs.dim for fs in task.spec.values() if fs.stage == "hint")  # hint values per node or edge
    per_entry = []
    for n in SIZES:
        sampled = family(n)
        edges = stored_edges(sampled)[0].shape[1]  # the graph's own edges: self-loops and sampled arcs
        g = task.run(sampled, source=0)
        steps = int(g["num_steps"][0])
        assert g.num_edges <= 2 * edges  # at most the reversed arcs added (SCC); never the pairs
        used = hint_bytes(g, name)
        # every hint column takes at most 8 bytes per node or edge and step (SCC's reversed arcs: 2E)
        assert used <= 8 * columns * steps * (n + 2 * edges), (n, used)
        per_entry.append(used / (steps * (n + edges)))
    # T n^2 storage would grow this ratio ~n-fold from n = 16 to 128; O(T (N + E)) keeps it flat
    assert max(per_entry) <= 1.25 * per_entry[0], per_entry


def test_any_node_is_a_node_pointer_stored_per_node_and_refused_elsewhere():
    assert ANY.field_location == "node" and is_numbered_pointer(ANY)
    assert FeatureSpec("output", "node", "pointer").field_location == "edge"
    with pytest.raises(ValueError, match="any_node applies to node pointers only .* edge pointer"):
        FeatureSpec("output", "edge", "pointer", any_node=True)
    with pytest.raises(ValueError, match="any_node applies to node pointers only .* node mask"):
        FeatureSpec("hint", "node", "mask", any_node=True)


def two_graphs() -> Graph:
    """A 2-node and a 3-node graph: K = 3, the first graph's nodes have one padded slot."""
    a = Graph(x=torch.zeros(2, 1), edge_index=torch.tensor([[0, 1], [0, 1]]))
    b = Graph(x=torch.zeros(3, 1), edge_index=torch.tensor([[0, 1, 2, 0], [0, 1, 2, 2]]))
    return Graph.collate([a, b])


def test_any_node_decoder_scores_every_node_of_the_graph_by_hand():
    torch.manual_seed(0)
    g, d = two_graphs(), 4
    dec = Decoder(ANY, d).double()
    h = torch.randn(5, d, dtype=torch.float64)
    with torch.no_grad():
        out = dec(h, h, torch.randn(6, d, dtype=torch.float64), torch.zeros(2, d, dtype=torch.float64), g)
    assert out.shape == (5, 3)
    first, size = [0, 0, 2, 2, 2], [2, 2, 3, 3, 3]
    for v in range(5):
        for k in range(3):
            if k >= size[v]:
                assert float(out[v, k]) == EDGE_POINTER_PAD
                continue
            with torch.no_grad():
                z = h[v] @ dec.dst.weight.T + dec.dst.bias + h[first[v] + k] @ dec.target.weight.T + dec.target.bias
                want = torch.relu(z) @ dec.out.weight[0] + dec.out.bias[0]
            assert float(out[v, k]) == pytest.approx(float(want), rel=1e-10, abs=1e-12)


def test_any_node_loss_is_cross_entropy_over_the_nodes_of_the_node_graph():
    g = two_graphs()
    torch.manual_seed(1)
    logits = torch.randn(5, 3, dtype=torch.float64)
    logits[:2, 2] = EDGE_POINTER_PAD
    target = torch.tensor([1, 1, 2, 0, 0])
    want = [float(torch.logsumexp(logits[v, :n], 0) - logits[v, k])
            for v, (k, n) in enumerate(zip(target.tolist(), [2, 2, 3, 3, 3]))]
    torch.testing.assert_close(item_losses(ANY, logits, target, g), torch.tensor(want, dtype=torch.float64),
                               rtol=1e-12, atol=1e-12)
    with pytest.raises(ValueError, match="node pointer 'topo': node 1 points to node 2 of its graph, which has 2"):
        check_edge_pointer_target("topo", torch.tensor([0, 2, 0, 0, 0]), g, "node")
    with pytest.raises(ValueError, match=r"one in-graph node number per node, shape \[5\]"):
        item_losses(ANY, logits, torch.zeros(6, dtype=torch.long), g)


def test_encode_hints_refuses_pointers_to_any_node():
    spec = get_task("mst_kruskal").spec
    with pytest.raises(ValueError, match=r"encode_hints does not support node pointer hints to any node \(\['pi'\]\)"):
        HookedGNN("mpnn", 4, node_in=2, edge_in=3, spec=spec, encode_hints=True)


def hand_accuracy(logits: torch.Tensor, target: torch.Tensor, ptr: list[int]) -> tuple[float, float]:
    """Node and graph accuracy counted in plain Python: a node's pointer is the first best slot of its row."""
    right, graphs_right = 0, 0
    for g0, g1 in zip(ptr[:-1], ptr[1:]):
        ok = True
        for v in range(g0, g1):
            row = logits[v, : g1 - g0].tolist()
            hit = row.index(max(row)) == int(target[v])
            right += hit
            ok &= hit
        graphs_right += ok
    return right / ptr[-1], graphs_right / (len(ptr) - 1)


@pytest.mark.parametrize("name", sorted(FAMILIES))
def test_a_training_step_runs_and_pointer_accuracy_matches_a_hand_count(name):
    task, (family, feature) = get_task(name), FAMILIES[name]
    g = Graph.collate([task.run(family(n), source=0) for n in (4, 6, 5)])  # K = 6: padded slots in two graphs
    torch.manual_seed(0)
    model = HookedGNN("mpnn", 8, node_in=g.x.shape[1], edge_in=g.edge_attr.shape[1], spec=task.spec, max_steps=3)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    fs = task.spec[feature]
    decoder = (model.decoders if fs.stage == "output" else model.hint_decoders)[feature]
    before = decoder.target.weight.detach().clone()
    loss, parts = task_loss(model(g, steps=3), g, task.spec)
    opt.zero_grad()
    loss.backward()
    opt.step()
    assert torch.isfinite(loss) and parts[f"{'out' if fs.stage == 'output' else 'hint'}/{feature}"] > 0
    assert not torch.equal(decoder.target.weight, before)  # the pointer's decoder learned
    out = model(g, steps=3)
    if fs.stage == "output":
        pred, target = out.outputs[feature], g[feature]
    else:  # prediction 0 is compared with hint step 1 (hookgnn.training.losses)
        pred, target = out.hints[feature][0], g[feature][1]
    assert pred.shape == (g.num_nodes, 6) and target.dtype == torch.long
    metrics = feature_metrics(fs, pred, target, g)
    node_acc, graph_acc = hand_accuracy(pred.detach(), target, g.ptr.tolist())
    assert metrics["accuracy"] == pytest.approx(node_acc, rel=1e-6)  # a float32 mean
    assert metrics["graph_accuracy"] == pytest.approx(graph_acc, rel=1e-6)
    per_graph = EdgePointerAccuracy(feature, target, location="node")({feature: pred}, g)
    weighted = float((per_graph * g.ptr.diff().to(per_graph.dtype)).sum()) / g.num_nodes  # graphs by their size
    assert weighted == pytest.approx(node_acc, rel=1e-6, abs=1e-6)


def test_causal_rules_read_pointers_to_any_node_as_node_numbers():
    from hookgnn.causal.das import output_loss
    from hookgnn.causal.interchange import node_agreement, swapped_hint
    from hookgnn.causal.tables import probe_hints

    g = two_graphs()
    logits = torch.tensor([[0.0, 2.0, EDGE_POINTER_PAD], [1.0, 1.0, EDGE_POINTER_PAD], [0.0, 0.0, 3.0],
                           [5.0, 0.0, 0.0], [0.0, 4.0, 1.0]], dtype=torch.float64)
    target = torch.tensor([1, 1, 2, 0, 2])  # node 1 ties: slot 0 is predicted, wrong; node 4 wrong
    assert node_agreement(ANY, logits, target, g, 1e-6).tolist() == [True, False, True, True, False]
    lp = torch.log_softmax(logits, -1)
    want = -(lp[0, 1] + lp[1, 1] + lp[2, 2] + lp[3, 0] + lp[4, 2]) / 5
    torch.testing.assert_close(output_loss(ANY, logits, target, g), want, rtol=1e-12, atol=1e-12)

    topo = get_task("topological_sort")
    base, source = topo.run(er_dag(5, 0.5, seed=1)), topo.run(er_dag(5, 0.5, seed=2))
    swapped = swapped_hint(topo, "topo_h", base, source, node=3, step=10)  # source has 11 steps, base 13
    want_row = base["topo_h"][10].clone()
    want_row[3] = source["topo_h"][10][3]
    assert int(want_row[3]) != int(base["topo_h"][10][3]) and torch.equal(swapped, want_row)
    model = HookedGNN("mpnn", 4, node_in=base.x.shape[1], edge_in=base.edge_attr.shape[1], spec=topo.spec)
    with pytest.raises(ValueError, match="probe_hints does not support pointers to any node .'topo_h'"):
        probe_hints(model, [base, source], topo.spec, hints=["topo_h"])
