"""Wrapped PyG min / max aggregation on hookgnn's kernel (``hookgnn.interop.aggregation``), against PyG itself:
the unwrapped model's outputs and ``torch.autograd.grad`` (bit for bit, float64 and float32), on random batches with
isolated nodes, edgeless graphs, self-loops, parallel edges and deliberate ties (relu'd zero messages, features
drawn from a few integers); frozen ``nn.Linear`` layers (``hookgnn.interop.frozen_linear``) against the layer and
the chain rule by hand; and ``eap`` of a float64 model keeps float64 scores, equal to the textbook loop."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from strategies import batches
from test_edge_sums_textbook import Net, _block, textbook
from torch import nn

import hookgnn.interop.frozen_linear as fl
import hookgnn.interop.session as session
from hookgnn import Graph, from_pyg
from hookgnn.attribution import eap
from hookgnn.graph import Field
from hookgnn.interop import aggregation
from hookgnn.interop.aggregation import GRAD_LARGE, fast_extreme, takes
from hookgnn.metrics.per_graph import from_loss

pyg_nn = pytest.importorskip("torch_geometric.nn")
pyg_utils = pytest.importorskip("torch_geometric.utils")

pytestmark = pytest.mark.usefixtures("one_thread")


class ExtremeConv(pyg_nn.MessagePassing):
    """m_ij = relu(W [x_j, e_ij]) (many exact zeros: ties at 0) or W [x_j, e_ij] (zeros whose gradient is seen),
    a_i = min/max_j m_ij, x'_i = [a_i, x_i] U."""

    def __init__(self, aggr: str, d: int, relu: bool) -> None:
        super().__init__(aggr=aggr)
        self.relu = relu
        self.msg = nn.Linear(d + 1, 3)
        self.upd = nn.Linear(3 + d, d)

    def forward(self, x, edge_index, edge_attr):  # noqa: ANN001, ANN201
        return self.propagate(edge_index, x=x, edge_attr=edge_attr)

    def message(self, x_j, edge_attr):  # noqa: ANN001, ANN201
        m = self.msg(torch.cat([x_j, edge_attr], dim=-1))
        return F.relu(m) if self.relu else m

    def update(self, aggr_out, x):  # noqa: ANN001, ANN201
        return self.upd(torch.cat([aggr_out, x], dim=-1))


class TwoRounds(nn.Module):
    def __init__(self, aggr: str) -> None:
        super().__init__()
        self.convs = nn.ModuleList([ExtremeConv(aggr, 2, True), ExtremeConv(aggr, 2, False)])

    def forward(self, x, edge_index, edge_attr):  # noqa: ANN001, ANN201
        return self.convs[1](self.convs[0](x, edge_index, edge_attr), edge_index, edge_attr)


def _integral(t: torch.Tensor) -> torch.Tensor:
    return t.round()  # features from a few integers: equal messages, hence ties away from 0 too


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(batch=batches(min_graphs=1, max_graphs=3, min_nodes=0, max_nodes=6, max_edges=10, node_features=2,
                     edge_features=1, dtype=torch.float64),
       aggr=st.sampled_from(["min", "max"]), seed=st.integers(0, 3), dtype=st.sampled_from([torch.float64, torch.float32]))
def test_wrapped_min_max_aggregation_equals_pyg_values_and_gradients_bit_for_bit(batch, aggr, seed, dtype):
    calls: list[int] = []
    session.fast_extreme = lambda *a: calls.append(1) or fast_extreme(*a)  # count the kernel's calls
    aggregation.GRAD_LARGE = 0  # these graphs are small: make the kernel take them, ties and empty nodes included
    try:
        _check_against_pyg(batch, aggr, seed, dtype, calls)
    finally:
        session.fast_extreme = fast_extreme
        aggregation.GRAD_LARGE = GRAD_LARGE


def _check_against_pyg(batch, aggr, seed, dtype, calls) -> None:  # noqa: ANN001
    torch.manual_seed(seed)
    net = TwoRounds(aggr).to(dtype)
    with torch.no_grad():  # integral weights: equal messages for equal inputs, many exact zeros after the relu
        for p in net.parameters():
            p.copy_(torch.randint(-2, 3, p.shape, dtype=dtype))
    hooked = from_pyg(net)
    x = _integral(batch.x).to(dtype).requires_grad_()
    e = _integral(batch.edge_attr).to(dtype).requires_grad_()
    ei = batch.edge_index
    want = net(x, ei, e)
    g_want = torch.autograd.grad(want.sin().sum(), [x, e, *net.parameters()], allow_unused=True)
    got = hooked(x, ei, e)
    g_got = torch.autograd.grad(got.sin().sum(), [x, e, *net.parameters()], allow_unused=True)
    assert len(calls) == 2  # the kernel ran, once per round
    assert torch.equal(got, want)
    for a, b in zip(g_got, g_want):
        assert (a is None) == (b is None)
        if a is not None:
            assert torch.equal(a, b)
    assert "forward" not in vars(net.convs[0].aggr_module)  # nothing left on the original model


@settings(max_examples=20, deadline=None)
@given(data=st.data(), largest=st.booleans(), dtype=st.sampled_from([torch.float64, torch.float32]))
def test_fast_extreme_equals_torch_geometric_scatter_with_ties_and_empty_nodes(data, largest, dtype):
    n = data.draw(st.integers(1, 6))
    e = data.draw(st.integers(0, 12))
    index = torch.tensor(data.draw(st.lists(st.integers(0, n - 1), min_size=e, max_size=e)), dtype=torch.long)
    values = data.draw(st.lists(st.sampled_from([-1.0, 0.0, 0.0, 2.0]), min_size=2 * e, max_size=2 * e))
    src = torch.tensor(values, dtype=dtype).reshape(e, 2).requires_grad_()
    weight = torch.arange(1, 2 * n + 1, dtype=dtype).reshape(n, 2)
    want = pyg_utils.scatter(src, index, 0, n, reduce="max" if largest else "min")
    (g_want,) = torch.autograd.grad((want * weight).sum(), src)
    got = fast_extreme(src, index, n, largest)
    (g_got,) = torch.autograd.grad((got * weight).sum(), src)
    assert torch.equal(got, want)
    assert torch.equal(g_got, g_want)


def test_aggregation_calls_the_kernel_does_not_take_run_pyg_own_code() -> None:
    rows = GRAD_LARGE // 2
    x, index = torch.zeros(rows, 2, requires_grad=True), torch.arange(rows) % 2
    assert takes(x, index, None, 2, 0)
    assert not takes(x.detach(), index, None, 2, 0)  # not large and no gradient: PyG's own is faster
    assert not takes(x[:3], index[:3], None, 2, 0)  # a gradient but tiny: PyG's own is faster
    assert takes(torch.zeros(1 << 16, 1), torch.zeros(1 << 16, dtype=torch.long), None, 1, 0)  # large
    assert not takes(x, index, torch.tensor([0, rows // 2, rows]), 2, 0)  # PyG's segment path (ptr)
    assert not takes(x.unsqueeze(0), index, None, 2, -2)  # another axis layout
    assert not takes(x.half(), index, None, 2, 0)
    assert not takes(x, index.int(), None, 2, 0)


def test_tiny_wrapped_forward_with_gradient_runs_pyg_own_aggregation() -> None:
    """A 10-node graph with a gradient: the kernel's fixed cost exceeds what it saves, so the wrapped model runs
    PyG's own min aggregation (a tiny wrapped forward was 25% slower than before the kernel came in)."""
    calls: list[int] = []
    session.fast_extreme = lambda *a: calls.append(1) or fast_extreme(*a)
    try:
        torch.manual_seed(0)
        net = TwoRounds("min")
        x, ei, e = torch.randn(10, 2, requires_grad=True), torch.randint(0, 10, (2, 30)), torch.randn(30, 1)
        hooked = from_pyg(net, example=(x.detach(), ei, e))
        got = hooked(x, ei, e)
        assert calls == []
        assert torch.equal(got, net(x, ei, e))
        big = torch.randn(GRAD_LARGE, 2, requires_grad=True)
        big_ei = torch.randint(0, 100, (2, GRAD_LARGE))
        hooked(big, big_ei, torch.randn(GRAD_LARGE, 1))
        assert calls == [1, 1]  # [E, 3] messages, E = GRAD_LARGE: large enough, once per round
    finally:
        session.fast_extreme = fast_extreme


def test_aggregation_restored_when_the_forward_raises() -> None:
    torch.manual_seed(0)
    net = TwoRounds("min")
    hooked = from_pyg(net, example=(torch.randn(3, 2), torch.tensor([[0, 1], [1, 2]]), torch.randn(2, 1)))
    with pytest.raises(RuntimeError):
        hooked(torch.randn(3, 5), torch.tensor([[0, 1], [1, 2]]), torch.randn(2, 1))  # wrong width: raises inside
    assert all("forward" not in vars(c.aggr_module) for c in net.convs)


def test_eap_weight_scores_of_a_float64_model_are_float64_and_equal_the_textbook_loop() -> None:
    gen = torch.Generator().manual_seed(0)

    parts = [Graph(x=torch.randn(n, 2, generator=gen, dtype=torch.float64),
                   edge_index=torch.randint(0, n, (2, 2 * n), generator=gen),
                   edge_attr=torch.rand(2 * n, 1, generator=gen, dtype=torch.float64)) for n in (3, 5, 4)]
    clean = Graph.collate(parts).with_fields(d=Field(torch.randn(12, generator=gen, dtype=torch.float64), "node"))
    corrupted = clean.replace(edge_attr=torch.rand(clean.edge_attr.shape, generator=gen, dtype=torch.float64))
    torch.manual_seed(0)
    net = Net().double().eval()
    model = from_pyg(net, example=clean)
    scores = eap(model, clean, corrupted, from_loss(F.l1_loss, target="d"), ig_steps=3, level="weight",
                 link_filter=lambda link: link.kind == "linear")
    assert scores.scores.dtype == torch.float64
    per_linear, _, _ = textbook(net, clean, corrupted, 3)
    want = []
    for edge in scores.edges:
        link = next(lk for lk in model.round_links(edge.round) if lk.name == edge.name)
        linear, col = _block(net, link)
        w = net.get_submodule(linear).weight.detach()[edge.dst.feature, edge.src.feature + col]
        want.append(float(w) * float(per_linear[linear][edge.src.feature + col, edge.dst.feature]))
    want_t = torch.tensor(want, dtype=torch.float64)
    torch.testing.assert_close(scores.scores, want_t, rtol=1e-10, atol=1e-10 * float(want_t.abs().max()))


@settings(max_examples=10, deadline=None)
@given(rows=st.integers(0, 40), d_in=st.integers(1, 6), extra=st.integers(1, 40), lead=st.booleans(), seed=st.integers(0, 9))
def test_frozen_linear_value_is_the_layers_and_input_gradient_equals_autograd(rows, d_in, extra, lead, seed):
    torch.manual_seed(seed)
    layer = nn.Linear(d_in, d_in + extra).double().requires_grad_(False)
    x = torch.randn(*((2,) if lead else ()), rows, d_in, dtype=torch.float64, requires_grad=True)
    assert fl.takes(layer, x) == fl.narrow(d_in, d_in + extra)  # the value and gradient hold at any width
    g = torch.randn(*x.shape[:-1], d_in + extra, dtype=torch.float64)
    got = fl.frozen_linear(layer, x)
    want = layer(x)
    assert torch.equal(got, want)
    (dx,) = torch.autograd.grad(got, x, g)
    ref = torch.einsum("...o,oi->...i", g, layer.weight)  # the chain rule by hand
    torch.testing.assert_close(dx, ref, rtol=1e-12, atol=1e-12 * max(float(ref.abs().max()) if ref.numel() else 0, 1))


def test_frozen_linear_serves_only_frozen_narrow_input_layers_with_an_input_gradient() -> None:
    layer = nn.Linear(2, 8)
    x = torch.zeros(3, 2, requires_grad=True)
    assert not fl.takes(layer, x)  # parameter gradients asked for: the layer's own backward
    layer.requires_grad_(False)
    assert fl.takes(layer, x)
    assert not fl.takes(layer, x.detach())  # no input gradient: nothing to speed up
    assert not fl.takes(nn.Linear(8, 2).requires_grad_(False), torch.zeros(3, 8, requires_grad=True))
    # widths where MKL's transposed layout was measured slower (16 -> 64) or mixed (2 -> 128): the layer's own
    assert not fl.takes(nn.Linear(16, 64).requires_grad_(False), torch.zeros(3, 16, requires_grad=True))
    assert not fl.takes(nn.Linear(2, 128).requires_grad_(False), torch.zeros(3, 2, requires_grad=True))
    assert fl.takes(nn.Linear(9, 64).requires_grad_(False), torch.zeros(3, 9, requires_grad=True))
    with torch.no_grad():
        assert not fl.takes(layer, x)


def test_attribution_runs_use_the_frozen_linear_and_leave_the_model_untouched() -> None:
    gen = torch.Generator().manual_seed(1)
    clean = Graph(x=torch.randn(4, 2, generator=gen), edge_index=torch.tensor([[0, 1, 2, 3], [1, 2, 3, 0]]),
                  edge_attr=torch.rand(4, 1, generator=gen)).with_fields(d=Field(torch.randn(4, generator=gen), "node"))
    torch.manual_seed(1)
    net = Net().eval()
    model = from_pyg(net, example=clean)
    calls: list[int] = []
    original = fl.frozen_linear
    fl.frozen_linear = lambda *a: calls.append(1) or original(*a)
    try:
        eap(model, clean, clean.replace(edge_attr=clean.edge_attr.flip(0)), from_loss(F.l1_loss, target="d"),
            ig_steps=2, level="weight")
    finally:
        fl.frozen_linear = original
    assert calls  # the input gradients of the wide first layers went through it
    assert all("forward" not in vars(m) for m in net.modules())
    assert all(p.requires_grad for p in net.parameters())
