"""The published MINAR / Nerem et al. Bellman-Ford network, written in PyG from its description.

Two min-aggregation ``MessagePassing`` layers in a PyG ``BasicGNN``, widths 1 -> 8 -> 1;
message ``relu(MLP([x_j, e_ij]))``, update ``MLP([aggr, x])``, two-layer MLPs 64 wide, a
relu between the layers. It is trained briefly on weighted paths (Bellman-Ford distances,
L1 loss), then wrapped with ``hookgnn.from_pyg`` and checked against references that do
not use hookgnn: the original's output, the textbook EAP-IG formula
:math:`\\Delta a_i W_{ji} \\partial L / \\partial z_j` written with plain autograd on the
original, and weights zeroed in a copy.
"""

from __future__ import annotations

import copy
import random

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from hookgnn import Graph, HookedGNN
from hookgnn.attribution import attribute, eap
from hookgnn.circuits import Circuit, evaluate
from hookgnn.metrics.per_graph import from_loss
from hookgnn.nn import MLPConv
from hookgnn.nn.wiring import links_of
from hookgnn.patching import messages, patch
from hookgnn.patching.components import WeightEdge, weight_edges
from hookgnn.tasks import get_task
from hookgnn.tasks.corruptions import sample_pairs
from hookgnn.tasks.samplers import weighted_path

pyg_nn = pytest.importorskip("torch_geometric.nn")
from torch_geometric.nn.models.basic_gnn import BasicGNN  # noqa: E402

from hookgnn import from_pyg  # noqa: E402

WIDTH, IG_STEPS = 64, 4


pytestmark = pytest.mark.usefixtures("one_thread")  # tiny tensors: one torch thread (tests/conftest.py)


class MinAggConv(pyg_nn.MessagePassing):
    """m_ij = relu(MLP_m([x_j, e_ij])); a_i = min_j m_ij; x'_i = MLP_u([a_i, x_i])."""

    def __init__(self, in_channels: int, out_channels: int, edge_dim: int = 1) -> None:
        super().__init__(aggr="min")
        self.msg_mlp = nn.Sequential(nn.Linear(in_channels + edge_dim, WIDTH), nn.ReLU(), nn.Linear(WIDTH, out_channels))
        self.upd_mlp = nn.Sequential(nn.Linear(out_channels + in_channels, WIDTH), nn.ReLU(), nn.Linear(WIDTH, out_channels))

    def forward(self, x, edge_index, edge_attr):  # noqa: ANN001, ANN201
        return self.propagate(edge_index, x=x, edge_attr=edge_attr)

    def message(self, x_j, edge_attr):  # noqa: ANN001, ANN201
        return F.relu(self.msg_mlp(torch.cat([x_j, edge_attr], dim=-1)))

    def update(self, aggr_out, x):  # noqa: ANN001, ANN201
        return self.upd_mlp(torch.cat([aggr_out, x], dim=-1))


class BellmanFordGNN(BasicGNN):
    supports_edge_weight = False
    supports_edge_attr = True
    supports_norm_batch = False

    def init_conv(self, in_channels: int, out_channels: int, **kwargs):  # noqa: ANN201
        return MinAggConv(in_channels, out_channels)


def l1_per_graph(out: torch.Tensor, graph: Graph) -> torch.Tensor:
    """Mean over graphs of each graph's L1 distance error, in plain torch."""
    err = (out.squeeze(-1) - graph["d"]).abs()
    return torch.stack([err[graph.batch == i].mean() for i in range(graph.num_graphs)]).mean()


@pytest.fixture(scope="module")
def trained() -> BellmanFordGNN:
    torch.manual_seed(0)
    net = BellmanFordGNN(2, 8, num_layers=2, out_channels=1)  # x = [s, pos]
    opt = torch.optim.Adam(net.parameters(), lr=3e-3)
    g = get_task("bellman_ford").sample(32, "weighted_path", seed=0, n=3)
    for _ in range(60):
        loss = l1_per_graph(net(g.x, g.edge_index, edge_attr=g.edge_attr), g)
        opt.zero_grad()
        loss.backward()
        opt.step()
    return net.eval()


@pytest.fixture(scope="module")
def pair() -> tuple[Graph, Graph]:
    return sample_pairs(get_task("bellman_ford"), 3, "resample_weights", "weighted_path", seed=7, n=3)


def _offset(edge: WeightEdge, d_in: int, d_out: int) -> int:
    """The input column of the source neuron's block, from the architecture: msg_mlp.0 reads
    [x_j, e_ij], upd_mlp.0 reads [aggr, x]; the second Linear of each MLP its hidden layer."""
    src = edge.src.hook
    return {"hook_src": 0, "hook_edge_attr": d_in, "hook_aggregation": 0, "hook_input": d_out}.get(
        src.rsplit(".", 1)[-1], 0)


def _linear_entry(net: nn.Module, edge: WeightEdge) -> tuple[str, int, int]:
    """(Linear module path, row, column) of the weight that carries a weight edge."""
    linear = edge.dst.hook.removesuffix(".hook_out")
    conv = net.get_submodule(linear.rsplit(".", 2)[0])
    d_in = conv.msg_mlp[0].in_features - 1
    d_out = conv.msg_mlp[2].out_features
    return linear, edge.dst.feature, edge.src.feature + _offset(edge, d_in, d_out)  # type: ignore[operator]


def _weight_edges(hooked) -> list[WeightEdge]:  # noqa: ANN001
    out = []
    for link in links_of(hooked, range(hooked.num_rounds)):
        if link.weight is not None:
            out += weight_edges(link, link.weight.shape[1], link.weight.shape[0])
    return out


def textbook(net: nn.Module, clean: Graph, corrupted: Graph, steps: int) -> tuple[dict, dict]:
    """EAP-IG by hand on the original: per Linear ``S[j, i] = sum_r du_{r,i} W_ji g_{r,j}``
    and per output neuron ``sum_r dz_{r,j} g_{r,j}`` (denoising: base = corrupted,
    source = clean; gradients averaged over inputs base + (k + 1/2)/steps (source - base));
    the metric reads the clean graph's targets, as every hookgnn function does."""
    linears = {n: m for n, m in net.named_modules() if isinstance(m, nn.Linear)}

    def run(x: torch.Tensor, e: torch.Tensor) -> tuple[torch.Tensor, dict, dict]:
        ins, outs = {}, {}

        def record(name: str):  # noqa: ANN202
            def hook(module: nn.Module, inputs: tuple, output: torch.Tensor) -> None:
                ins[name], outs[name] = inputs[0], output
            return hook

        hooks = [m.register_forward_hook(record(n)) for n, m in linears.items()]
        try:
            return net(x, corrupted.edge_index, edge_attr=e), ins, outs
        finally:
            for h in hooks:
                h.remove()

    with torch.no_grad():
        _, u_base, z_base = run(corrupted.x, corrupted.edge_attr)
        _, u_src, z_src = run(clean.x, clean.edge_attr)
    gbar = {n: torch.zeros_like(z_base[n]) for n in linears}
    for k in range(steps):
        a = (k + 0.5) / steps
        out, _, z = run(corrupted.x + a * (clean.x - corrupted.x), corrupted.edge_attr + a * (clean.edge_attr - corrupted.edge_attr))
        grads = torch.autograd.grad(l1_per_graph(out, clean), [z[n] for n in linears])
        for n, g in zip(linears, grads):
            gbar[n] += g / steps
    weights = {n: m.weight.detach() * ((u_src[n] - u_base[n]).T @ gbar[n]).T for n, m in linears.items()}
    neurons = {n: ((z_src[n] - z_base[n]) * gbar[n]).sum(0) for n in linears}
    return weights, neurons


def test_wrapped_outputs_equal_the_original(trained, pair):
    hooked = from_pyg(trained)  # hook points are found on the first call
    for g in pair:
        want = trained(g.x, g.edge_index, edge_attr=g.edge_attr)
        # exact, on every CPU code path: from_pyg calls the very same model (it copies and rewrites nothing)
        torch.testing.assert_close(hooked(g.x, g.edge_index, edge_attr=g.edge_attr), want, atol=0, rtol=0)
        torch.testing.assert_close(hooked(g), want, atol=0, rtol=0)  # called on a hookgnn Graph
    assert hooked.num_rounds == 2 and hooked.state_hook(1) == "convs.1.hook_input"


def test_eap_ig_weight_and_neuron_scores_equal_the_textbook_formula(trained, pair):
    clean, corrupted = pair
    hooked = from_pyg(trained, example=clean)
    metric = from_loss(F.l1_loss, target="d")
    scores = eap(hooked, clean, corrupted, metric, ig_steps=IG_STEPS, level="weight")
    weights, neurons = textbook(trained, clean, corrupted, IG_STEPS)
    got, want = [], []
    for edge, s in zip(scores.edges, scores.scores.tolist()):
        module = edge.dst.hook.removesuffix(".hook_out")
        if edge.dst.hook.endswith(".hook_out") and isinstance(trained.get_submodule(module), nn.Linear):
            linear, j, i = _linear_entry(trained, edge)
            got.append(s)
            want.append(float(weights[linear][j, i]))
    assert len(got) == sum(w.numel() for w in weights.values())  # every entry of every Linear (none is 0)
    torch.testing.assert_close(torch.tensor(got), torch.tensor(want), atol=1e-6, rtol=1e-4)
    assert max(abs(v) for v in want) > 1e-4  # the scores are not all zero

    attr = attribute(hooked, clean, corrupted, metric, ig_steps=IG_STEPS)
    for linear, want_n in neurons.items():
        torch.testing.assert_close(attr.features([f"{linear}.hook_out"]).values[0], want_n, atol=1e-6, rtol=1e-4)


@pytest.mark.parametrize("seed", [0, 1])
def test_zero_ablation_of_weight_edges_equals_zeroed_weights_in_a_copy(trained, pair, seed):
    clean, corrupted = pair
    hooked = from_pyg(trained, example=clean)
    metric = from_loss(F.l1_loss, target="d")
    universe = _weight_edges(hooked)
    circuit = Circuit.of(random.Random(seed).sample(universe, len(universe) // 2))
    got = evaluate(hooked, clean, corrupted, metric, circuit, universe, ablation="zero")
    zeroed = copy.deepcopy(trained)
    with torch.no_grad():
        for edge in universe:
            if edge not in circuit:
                linear, j, i = _linear_entry(zeroed, edge)
                zeroed.get_submodule(linear).weight[j, i] = 0.0
        want = float(l1_per_graph(zeroed(clean.x, clean.edge_index, edge_attr=clean.edge_attr), clean))
        full = float(l1_per_graph(trained(clean.x, clean.edge_index, edge_attr=clean.edge_attr), clean))
    assert got == pytest.approx(want, abs=1e-5)
    assert abs(got - full) > 1e-3  # the ablation matters
    assert all(i.num_fwd == 0 and i.num_bwd == 0 for i in hooked.list_hooks())


def test_the_same_network_written_natively_with_from_layers_computes_the_same(trained, pair):
    native = HookedGNN.from_layers([MLPConv(2, 8, d_edge=1, d_mlp=WIDTH), MLPConv(8, 1, d_edge=1, d_mlp=WIDTH)])
    with torch.no_grad():
        for layer, conv in zip(native.layers, trained.convs):
            for mine, theirs in ((layer.message_mlp, conv.msg_mlp), (layer.update_mlp, conv.upd_mlp)):
                mine.lin_in.load_state_dict(theirs[0].state_dict())
                mine.lin_out.load_state_dict(theirs[2].state_dict())
    clean, corrupted = pair
    with torch.no_grad():
        torch.testing.assert_close(native(clean)["out"], trained(clean.x, clean.edge_index, edge_attr=clean.edge_attr))
    metric = from_loss(F.l1_loss, target="d", output="out")
    hooked = from_pyg(trained, example=clean)
    wrapped = patch(hooked, clean, corrupted, from_loss(F.l1_loss, target="d"), messages(hooked))
    torch.testing.assert_close(patch(native, clean, corrupted, metric, messages(native)).values, wrapped.values)


def test_bring_your_pyg_model_in_ten_lines(trained, pair):
    """The README's "Bring your PyG model" section, run as written (data: PyG batches)."""
    model, data, data_corrupted = trained, pair[0].to_pyg(), pair[1].to_pyg()

    import hookgnn
    from hookgnn.attribution import eap
    from hookgnn.circuits import Circuit, evaluate, select
    from hookgnn.metrics.per_graph import from_loss

    clean, corrupted = hookgnn.Graph.from_pyg(data), hookgnn.Graph.from_pyg(data_corrupted)  # y, masks... kept
    hooked = hookgnn.from_pyg(model, example=clean)      # the same model object, hooked; called like the original
    out, cache = hooked.run_with_cache(clean)            # cache["convs.0.hook_message"], cache["message", 1], ...
    metric = from_loss(F.l1_loss, target="d")            # your loss, one value per graph
    scores = eap(hooked, clean, corrupted, metric, ig_steps=8)    # single messages and neuron-to-neuron weight edges
    circuit = Circuit.of(select(scores, n=200))
    kept = evaluate(hooked, clean, corrupted, metric, circuit, universe=scores.edges)  # the rest resampled via hooks

    assert cache["convs.0.hook_message"].shape == (clean.num_edges, 8) and out.shape == (clean.num_nodes, 1)
    full = evaluate(hooked, clean, corrupted, metric, Circuit.of(scores.edges), universe=scores.edges)
    with torch.no_grad():
        plain = float(metric(model(data.x, data.edge_index, edge_attr=data.edge_attr), clean).mean())
    assert full == pytest.approx(plain, rel=1e-5)
    assert isinstance(kept, float)


def test_eap_can_keep_only_the_learned_linear_weight_entries(trained, pair):
    clean, corrupted = pair
    hooked = from_pyg(trained, example=clean)
    metric = from_loss(F.l1_loss, target="d")
    every = eap(hooked, clean, corrupted, metric, level="weight")
    linear = eap(hooked, clean, corrupted, metric, level="weight", link_filter=lambda link: link.kind == "linear")
    numels = sum(m.weight.numel() for m in trained.convs.modules() if isinstance(m, nn.Linear))
    assert len(linear.edges) == numels < len(every.edges)  # MINAR's edges, not identity / relu / gather / scatter
    for edge in linear.edges:
        assert isinstance(trained.get_submodule(edge.dst.hook.removesuffix(".hook_out")), nn.Linear)
    assert set(linear.edges) == {e for e in every.edges if isinstance(trained.get_submodule(
        e.dst.hook.removesuffix(".hook_out")) if e.dst.hook.endswith(".hook_out") else None, nn.Linear)}
    full = every.as_dict()
    torch.testing.assert_close(linear.scores, torch.tensor([full[e] for e in linear.edges]))


@pytest.mark.parametrize("rows", [1, 60, 1 << 15])  # one graph and one step per forward, a few graphs, all at once
def test_eap_ig_over_graphs_of_many_sizes_equals_the_textbook_formula_in_any_chunking(trained, rows):
    def path(seed=None):  # noqa: ANN001, ANN202
        rng = np.random.default_rng(seed)
        return weighted_path(int(rng.integers(1, 7)), seed=rng)  # 1 to 6 nodes (1: no edges)

    clean, corrupted = sample_pairs(get_task("bellman_ford"), 6, "resample_weights", path, seed=3)
    hooked = from_pyg(trained, example=clean)
    metric = from_loss(F.l1_loss, target="d")
    scores = eap(hooked, clean, corrupted, metric, ig_steps=IG_STEPS, level="weight", rows_per_forward=rows,
                 link_filter=lambda link: link.kind == "linear")
    weights, _ = textbook(trained, clean, corrupted, IG_STEPS)  # all graphs at once, the metric their mean
    got = torch.tensor(scores.scores.tolist())
    want = torch.tensor([float(weights[linear][j, i]) for linear, j, i in map(lambda e: _linear_entry(trained, e),
                                                                              scores.edges)])
    scale = float(want.abs().max())
    assert scale > 1e-4  # not all zero
    torch.testing.assert_close(got, want, atol=1e-5 * scale, rtol=1e-4)
    with torch.no_grad():
        base = float(l1_per_graph(trained(corrupted.x, corrupted.edge_index, edge_attr=corrupted.edge_attr), clean))
    assert scores.baseline == pytest.approx(base, rel=1e-5)
