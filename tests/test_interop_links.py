"""Traced neuron links of wrapped PyG models: concatenations, other activations, zero weights.

References are written on the original model with plain PyTorch hooks and autograd.
"""

from __future__ import annotations

import pytest
import torch
from torch import nn

from hookgnn import Field, Graph
from hookgnn.attribution import eap
from hookgnn.circuits import Circuit, evaluate
from hookgnn.metrics.per_graph import from_loss
from hookgnn.nn.wiring import links_of
from hookgnn.patching.components import weight_edges

pyg = pytest.importorskip("torch_geometric.nn")
from hookgnn.interop import from_pyg  # noqa: E402

D, STEPS = 3, 3


class TanhConv(pyg.MessagePassing):
    def __init__(self, d_in: int) -> None:
        super().__init__(aggr="sum")
        self.mlp = nn.Sequential(nn.Linear(d_in, 4), nn.Tanh(), nn.Linear(4, D))

    def forward(self, x, edge_index):  # noqa: ANN001, ANN201
        return self.propagate(edge_index, x=x)

    def message(self, x_j):  # noqa: ANN001, ANN201
        return self.mlp(x_j)


class SkipNet(nn.Module):
    """conv1, then [h, x] concatenated into conv2 (a skip connection between rounds)."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1, self.conv2 = TanhConv(D), TanhConv(2 * D)

    def forward(self, x, edge_index):  # noqa: ANN001, ANN201
        h = self.conv1(x, edge_index)
        return self.conv2(torch.cat([h, x], dim=-1), edge_index).sum(-1)


def _pair() -> tuple[Graph, Graph]:
    gen = torch.Generator().manual_seed(0)
    ei = torch.tensor([[0, 1, 2, 3, 2], [1, 2, 3, 0, 0]])
    g = Graph(x=torch.randn(4, D, generator=gen), edge_index=ei, fields={"y": Field(torch.randn(4, generator=gen), "node")})
    return g, g.replace(x=torch.randn(4, D, generator=gen))


@pytest.fixture
def setup():  # noqa: ANN201
    torch.manual_seed(0)
    net = SkipNet()
    clean, corrupted = _pair()
    return net, from_pyg(net, example=clean), clean, corrupted, from_loss(torch.nn.functional.mse_loss, target="y")


def test_a_concatenation_between_rounds_is_a_selection_link(setup):
    net, hooked, *_ = setup
    links = {(l.src, l.dst): l for l in links_of(hooked, [1])}
    skip = links[("hook_x", "conv2.hook_input")]
    prev = links[("conv1.hook_output", "conv2.hook_input")]
    eye = torch.eye(D)
    torch.testing.assert_close(prev.weight, torch.cat([eye, torch.zeros(D, D)]))
    torch.testing.assert_close(skip.weight, torch.cat([torch.zeros(D, D), eye]))
    first = links[("conv2.hook_src", "conv2.mlp.0.hook_out")]
    torch.testing.assert_close(first.weight, net.conv2.mlp[0].weight.detach())


def test_eap_scores_a_tanh_link_with_the_tanh_derivative(setup):
    net, hooked, clean, corrupted, metric = setup
    scores = eap(hooked, clean, corrupted, metric, ig_steps=STEPS, level="weight")
    name = "layers.0:conv1.mlp.0.hook_out->conv1.mlp.1.hook_out"
    got = torch.tensor([s for e, s in zip(scores.edges, scores.scores.tolist()) if e.link == name])
    assert len(got) == 4

    z: list[torch.Tensor] = []
    y: list[torch.Tensor] = []
    hz = net.conv1.mlp[0].register_forward_hook(lambda m, i, o: z.append(o))
    hy = net.conv1.mlp[1].register_forward_hook(lambda m, i, o: y.append(o))
    try:
        def metric_of(x: torch.Tensor) -> torch.Tensor:
            return ((net(x, clean.edge_index) - clean["y"]) ** 2).mean()

        with torch.no_grad():
            metric_of(corrupted.x)
            metric_of(clean.x)
        z_base, z_src = z[0], z[1]
        through = torch.zeros_like(z_base)
        for k in range(STEPS):
            a = (k + 0.5) / STEPS
            z.clear(), y.clear()
            m = metric_of(corrupted.x + a * (clean.x - corrupted.x))
            (g_y,) = torch.autograd.grad(m, [y[0]])
            through += (1 - torch.tanh(z[0].detach()) ** 2) * g_y / STEPS
    finally:
        hz.remove(), hy.remove()
    torch.testing.assert_close(got, ((z_src - z_base) * through).sum(0), atol=1e-6, rtol=1e-4)


def test_resampling_one_tanh_neuron_equals_patching_it_in_the_original(setup):
    net, hooked, clean, corrupted, metric = setup
    link = next(l for l in links_of(hooked, [0]) if l.dst == "conv1.mlp.1.hook_out")
    edges = [e for e in weight_edges(link, 4, 4) if e.dst.feature == 2]
    got = evaluate(hooked, clean, corrupted, metric, Circuit(), edges, ablation="resample")
    with torch.no_grad():
        y_corr: list[torch.Tensor] = []
        h = net.conv1.mlp[1].register_forward_hook(lambda m, i, o: y_corr.append(o))
        net(corrupted.x, corrupted.edge_index)
        h.remove()

        def patch(m: nn.Module, i: tuple, o: torch.Tensor) -> torch.Tensor:
            o = o.clone()
            o[:, 2] = y_corr[0][:, 2]
            return o

        h = net.conv1.mlp[1].register_forward_hook(patch)
        want = float(((net(clean.x, clean.edge_index) - clean["y"]) ** 2).mean())
        h.remove()
    assert got == pytest.approx(want, rel=1e-5)
    with torch.no_grad():
        assert got != pytest.approx(float(metric(net(clean.x, clean.edge_index), clean)), abs=1e-6)


def test_zero_weights_are_edges_only_when_asked(setup):
    net, hooked, clean, corrupted, metric = setup
    with torch.no_grad():
        net.conv2.mlp[2].weight[1, :] = 0.0
    kept = eap(hooked, clean, corrupted, metric, level="weight")
    every = eap(hooked, clean, corrupted, metric, level="weight", zero_weights=True)
    name = "layers.1:conv2.mlp.1.hook_out->conv2.mlp.2.hook_out"
    n_kept = sum(e.link == name for e in kept.edges)
    zero = [s for e, s in zip(every.edges, every.scores.tolist()) if e.link == name and e.dst.feature == 1]
    assert n_kept == 4 * (D - 1) and sum(e.link == name for e in every.edges) == 4 * D
    assert zero == [0.0] * 4


def test_links_registered_for_a_layer_class_join_the_traced_ones():
    from hookgnn.nn.wiring import Link, register_links

    class MyGINEConv(pyg.GINEConv):  # registered here, not for every GINEConv of the session
        pass

    class Net(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv = MyGINEConv(nn.Sequential(nn.Linear(D, 4), nn.ReLU(), nn.Linear(4, D)), edge_dim=2)

        def forward(self, x, edge_index, edge_attr):  # noqa: ANN001, ANN201
            return self.conv(x, edge_index, edge_attr)

    g, _ = _pair()
    g = g.replace(edge_attr=torch.rand(g.num_edges, 2))
    # GINE's message relu(x_j + lin(e)) adds two activations: tracing stops there
    register_links(MyGINEConv, lambda m: [Link("x_j", "hook_src", "hook_message", "same", None, "relu"),
                                          Link("e", "lin.hook_out", "hook_message", "same", None, "relu")])
    hooked = from_pyg(Net(), example=g)
    links = {l.name: (l.src, l.dst, l.act) for l in links_of(hooked, [0])}
    assert links["x_j"] == ("conv.hook_src", "conv.hook_message", "relu")
    assert links["e"] == ("conv.lin.hook_out", "conv.hook_message", "relu")
    assert links["hook_edge_attr->conv.lin.hook_out"][1] == "conv.lin.hook_out"  # traced
