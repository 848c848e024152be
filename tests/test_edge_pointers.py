"""Edge pointers (an edge points to a node) and models on the five new CLRS tasks.

Decoder, loss, accuracy and metrics against plain-torch/float64 hand calculations; a
HookedGNN trains on every new task, and exact patching and attribution of its output
hook against per-row recomputations from plain forwards.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from hookgnn import Graph, HookedGNN
from hookgnn.attribution import attribute
from hookgnn.metrics import EdgePointerAccuracy, EdgePointerLogProb, PointerLogProb, feature_metrics, from_loss
from hookgnn.models.heads import Decoder
from hookgnn.patching import hooks, patch
from hookgnn.spec import EDGE_POINTER_PAD, FeatureSpec
from hookgnn.tasks import get_task
from hookgnn.tasks.corruptions import sample_pairs
from hookgnn.tasks.pointer_edges import er_dag
from hookgnn.training.losses import item_losses, task_loss

pytestmark = pytest.mark.usefixtures("one_thread")
EDGE_PTR = FeatureSpec("output", "edge", "pointer")


def two_graphs() -> Graph:
    """A 2-node and a 3-node graph: K = 3, the first graph's edges have one padded slot."""
    a = Graph(x=torch.zeros(2, 1), edge_index=torch.tensor([[0, 1, 0], [0, 1, 1]]))
    b = Graph(x=torch.zeros(3, 1), edge_index=torch.tensor([[0, 2], [1, 0]]))
    return Graph.collate([a, b])


def test_edge_pointer_spec_is_stored_on_edges_and_graph_pointers_are_refused():
    assert EDGE_PTR.field_location == "edge"
    with pytest.raises(ValueError, match="pointer features live on nodes .* or edges .* not on 'graph'"):
        FeatureSpec("output", "graph", "pointer")


def test_edge_pointer_loss_is_cross_entropy_over_the_nodes_of_the_edge_graph():
    g = two_graphs()
    torch.manual_seed(0)
    logits = torch.randn(5, 3, dtype=torch.float64)
    logits[:3, 2] = EDGE_POINTER_PAD  # what the decoder puts past graph 0's last node
    target = torch.tensor([1, 0, 1, 2, 0])
    want = []
    for e, (k, n) in enumerate(zip(target.tolist(), [2, 2, 2, 3, 3])):
        row = logits[e, :n]
        want.append(float(torch.logsumexp(row, 0) - row[k]))
    got = item_losses(EDGE_PTR, logits, target, g)
    torch.testing.assert_close(got, torch.tensor(want, dtype=torch.float64), rtol=1e-12, atol=1e-12)


def test_edge_pointer_accuracy_counts_edges_and_graphs():
    g = two_graphs()
    logits = torch.tensor([[2.0, 1.0, EDGE_POINTER_PAD], [0.0, 3.0, EDGE_POINTER_PAD], [1.0, 1.0, EDGE_POINTER_PAD],
                           [0.0, 0.0, 5.0], [4.0, 0.0, 0.0]])
    target = torch.tensor([0, 1, 1, 2, 0])  # edge 2 ties: the lowest node (0) is predicted, wrong
    m = feature_metrics(EDGE_PTR, logits, target, g)
    assert m["accuracy"] == pytest.approx(4 / 5) and m["graph_accuracy"] == pytest.approx(1 / 2)
    per_graph = EdgePointerAccuracy("Pi", target)({"Pi": logits}, g)
    torch.testing.assert_close(per_graph, torch.tensor([2 / 3, 1.0]))


def test_edge_pointer_targets_out_of_their_graph_are_refused():
    g = two_graphs()
    with pytest.raises(ValueError, match="edge 1 points to node 2 of its graph, which has 2 nodes"):
        item_losses(EDGE_PTR, torch.zeros(5, 3), torch.tensor([0, 2, 0, 0, 0]), g)
    with pytest.raises(ValueError, match=r"EdgePointerLogProb: output 'Pi' has shape \(5,\)"):
        EdgePointerLogProb()({"Pi": torch.zeros(5)}, g.replace())


def test_edge_pointer_decoder_matches_a_hand_computation():
    torch.manual_seed(0)
    g = two_graphs()
    d = 4
    dec = Decoder(EDGE_PTR, d).double()
    h, e = torch.randn(5, d, dtype=torch.float64), torch.randn(5, d, dtype=torch.float64)
    with torch.no_grad():
        out = dec(h, h, e, torch.zeros(2, d, dtype=torch.float64), g)
    assert out.shape == (5, 3)
    first = [0, 0, 0, 2, 2]  # each edge's graph's first node and size
    size = [2, 2, 2, 3, 3]
    for r, (i, j) in enumerate(g.edge_index.T.tolist()):
        for k in range(3):
            if k >= size[r]:
                assert float(out[r, k]) == EDGE_POINTER_PAD
                continue
            with torch.no_grad():
                z = (h[i] @ dec.src.weight.T + dec.src.bias + h[j] @ dec.dst.weight.T + dec.dst.bias
                     + e[r] @ dec.edge.weight.T + dec.edge.bias + h[first[r] + k] @ dec.target.weight.T + dec.target.bias)
                want = torch.relu(z) @ dec.out.weight[0] + dec.out.bias[0]
            assert float(out[r, k]) == pytest.approx(float(want), rel=1e-10, abs=1e-12)


def test_edge_pointer_log_prob_matches_hand_computation():
    g = two_graphs()
    logits = torch.tensor([[0.0, 1.0, EDGE_POINTER_PAD]] * 3 + [[0.0, 1.0, 2.0]] * 2, dtype=torch.float64)
    target = torch.tensor([1, 1, 0, 2, 0])
    lp = torch.log_softmax(logits, -1)
    want = torch.stack([(lp[0, 1] + lp[1, 1] + lp[2, 0]) / 3, (lp[3, 2] + lp[4, 0]) / 2])
    torch.testing.assert_close(EdgePointerLogProb("Pi", target)({"Pi": logits}, g), want)


def test_encode_hints_refuses_edge_pointer_hints():
    spec = get_task("floyd_warshall").spec
    with pytest.raises(ValueError, match=r"encode_hints does not support edge pointer hints \(\['Pi_h'\]\)"):
        HookedGNN("mpnn", 4, node_in=1, edge_in=2, spec=spec, encode_hints=True)


CASES = {  # task: (sampler, sampler kwargs, corruption, metric)
    "topological_sort": (er_dag, {"n": 5}, "zero_inputs", EdgePointerLogProb("topo", "topo", location="node")),
    "strongly_connected_components": ("erdos_renyi", {"n": 5, "p": 0.3, "directed": True}, "zero_inputs",
                                      EdgePointerLogProb("scc_id", "scc_id", location="node")),
    "mst_kruskal": ("erdos_renyi", {"n": 5, "p": 0.5}, "perturb_weights",
                    from_loss(F.binary_cross_entropy_with_logits, target="in_mst", output="in_mst")),
    "dag_shortest_paths": (er_dag, {"n": 5}, "resample_source", PointerLogProb("pi", "pi")),
    "floyd_warshall": ("erdos_renyi", {"n": 4, "p": 0.4, "directed": True}, "perturb_weights", EdgePointerLogProb()),
}


def model_for(name: str, g: Graph) -> HookedGNN:
    torch.manual_seed(0)
    return HookedGNN("mpnn", 8, node_in=g.x.shape[1], edge_in=g.edge_attr.shape[1], spec=get_task(name).spec,
                     max_steps=3)


@pytest.mark.parametrize("name", sorted(CASES))
def test_a_hooked_gnn_trains_on_the_task_with_its_hints(name):
    sampler, kw, _, _ = CASES[name]
    task = get_task(name)
    g = task.sample(3, sampler, seed=0, **kw)
    model = model_for(name, g)
    opt = torch.optim.Adam(model.parameters(), lr=5e-2)
    losses = []
    for _ in range(10):
        loss, parts = task_loss(model(g, steps=3), g, task.spec)
        assert set(parts) == {f"out/{k}" for k, s in task.spec.items() if s.stage == "output"} | \
            {f"hint/{k}" for k, s in task.spec.items() if s.stage == "hint"}
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    assert all(torch.isfinite(torch.tensor(losses))) and losses[-1] < 0.9 * losses[0]


def per_row_reference(model: HookedGNN, metric, clean: Graph, corrupted: Graph, out: str) -> torch.Tensor:
    """Denoising effect of patching each row of the output with the clean run's: recomputed from two plain forwards."""
    with torch.no_grad():
        src, base = model(clean, steps=3).outputs[out], model(corrupted, steps=3).outputs[out]
        m0 = metric({out: base}, clean).mean()
        effects = []
        for r in range(base.shape[0]):
            moved = base.clone()
            moved[r] = src[r]
            effects.append(metric({out: moved}, clean).mean() - m0)
    return torch.stack(effects)


@pytest.mark.parametrize("name", sorted(CASES))
def test_patching_and_attribution_of_the_output_match_plain_forwards(name):
    sampler, kw, scheme, metric = CASES[name]
    clean, bad = sample_pairs(get_task(name), 2, scheme, sampler, seed=0, **kw)
    model = model_for(name, clean).eval()
    out = next(iter(model.output_spec))
    hook = f"hook_out.{out}"
    want = per_row_reference(model, metric, clean, bad, out)
    scores = patch(model, clean, bad, metric, hooks(model, [hook]), steps=3)
    scale = float(want.abs().max()) + 1e-6
    torch.testing.assert_close(scores.values[0].double(), want.double(), rtol=1e-4, atol=1e-5 * scale)
    base = model(bad, steps=3).outputs[out].detach().requires_grad_(True)
    grad, = torch.autograd.grad(metric({out: base}, clean).mean(), base)
    delta = model(clean, steps=3).outputs[out].detach() - base.detach()
    attr = attribute(model, clean, bad, metric, names_filter=lambda n: n == hook, steps=3)
    got = attr.delta[hook] * attr.grad[hook]
    torch.testing.assert_close(got.double(), (delta * grad).double(), rtol=1e-4, atol=1e-6 * scale)
