"""Exact patching on a wrapped PyG model against hand-modified forwards of the original.

The references patch the original with PyG's and PyTorch's own hooks (no hookgnn hook
point): a message pre-hook that swaps row ``e`` of ``x_j`` in call ``t`` of a module, a
propagate hook that swaps row ``v`` of what ``update`` returned, a module forward hook
that swaps one neuron of a ``Linear``. The model reuses one conv for two rounds, so
rounds are matched to calls, not to modules.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from hookgnn import Field, Graph
from hookgnn.metrics.per_graph import from_loss
from hookgnn.patching import hooks, messages, nodes, patch, round_hooks

pyg = pytest.importorskip("torch_geometric.nn")
from hookgnn.interop import from_pyg  # noqa: E402

D = 3


class MaxConv(pyg.MessagePassing):
    def __init__(self) -> None:
        super().__init__(aggr="max")
        self.msg = nn.Linear(D + 1, D)
        self.upd = nn.Linear(2 * D, D)
        with torch.no_grad():  # live relus: every message can matter
            self.msg.weight.mul_(2.0)
            self.msg.bias.fill_(0.5)

    def forward(self, x, edge_index, edge_attr):  # noqa: ANN001, ANN201
        return self.propagate(edge_index, x=x, edge_attr=edge_attr)

    def message(self, x_j, edge_attr):  # noqa: ANN001, ANN201
        return F.relu(self.msg(torch.cat([x_j, edge_attr], -1)))

    def update(self, aggr_out, x):  # noqa: ANN001, ANN201
        return self.upd(torch.cat([aggr_out, x], -1))


class Net(nn.Module):
    """conv_a twice (rounds 0 and 1), then conv_b (round 2), relu between rounds."""

    def __init__(self) -> None:
        super().__init__()
        self.conv_a, self.conv_b = MaxConv(), MaxConv()

    def forward(self, x, edge_index, edge_attr):  # noqa: ANN001, ANN201
        x = F.relu(self.conv_a(x, edge_index, edge_attr))
        x = F.relu(self.conv_a(x, edge_index, edge_attr))
        return self.conv_b(x, edge_index, edge_attr).sum(-1)


def _pair() -> tuple[Graph, Graph]:
    gen = torch.Generator().manual_seed(3)
    ei = torch.tensor([[0, 1, 2, 3, 0, 2, 1], [1, 2, 3, 0, 0, 0, 3]])
    one = lambda: Graph(x=torch.randn(4, D, generator=gen), edge_index=ei, edge_attr=torch.rand(7, 1, generator=gen),  # noqa: E731
                        fields={"y": Field(torch.randn(4, generator=gen), "node")})
    clean = Graph.collate([one(), one()])
    corrupted = clean.replace(x=torch.randn(8, D, generator=gen), edge_attr=torch.rand(14, 1, generator=gen))
    return clean, corrupted


def _metric(out: torch.Tensor, g: Graph) -> list[float]:
    err = (out - g["y"]) ** 2
    return [float(err[g.batch == i].mean()) for i in range(g.num_graphs)]


def _calls(net: Net) -> list[nn.Module]:
    return [net.conv_a, net.conv_a, net.conv_b]


def _run_with(net: Net, g: Graph, register: Callable[[nn.Module, int], list]) -> torch.Tensor:
    """Run ``net`` on ``g`` with hooks from ``register(module, round)`` on each round's module."""
    handles = []
    counter = {"t": -1}

    def start(module: nn.Module, args: tuple) -> None:
        counter["t"] += 1

    for m in (net.conv_a, net.conv_b):
        handles.append(m.register_forward_pre_hook(start))
        handles += register(m, counter)
    try:
        with torch.no_grad():
            return net(g.x, g.edge_index, g.edge_attr)
    finally:
        for h in handles:
            h.remove()


def _unpatched(net: Net, g: Graph) -> float:
    """The metric (mean over graphs) of the plain PyG run on ``g``: the baseline effects are taken from.
    Effects are differences of two such values, so their float32 rounding scales with it, not with the effect."""
    with torch.no_grad():
        return sum(_metric(net(g.x, g.edge_index, g.edge_attr), g)) / g.num_graphs


def _record(net: Net, g: Graph, kind: str) -> list[torch.Tensor]:
    seen: list[torch.Tensor] = []

    def register(m: nn.Module, counter: dict) -> list:
        if kind == "x_j":
            return [m.register_message_forward_pre_hook(lambda mod, inp: seen.append(inp[0]["x_j"].clone()))]
        return [m.register_propagate_forward_hook(lambda mod, inp, out: seen.append(out.clone()))]

    _run_with(net, g, register)
    return seen


@pytest.fixture(scope="module")
def setup():  # noqa: ANN201
    torch.manual_seed(0)
    net = Net().eval()
    clean, corrupted = _pair()
    return net, from_pyg(net, example=clean), clean, corrupted, from_loss(F.mse_loss, target="y")


def test_patching_each_message_equals_swapping_one_x_j_row_in_one_call(setup):
    net, hooked, clean, corrupted, metric = setup
    sweep = patch(hooked, clean, corrupted, metric, messages(hooked))
    assert sweep.values.shape == (3, clean.num_edges)
    base = _unpatched(net, corrupted)
    assert sweep.baseline == pytest.approx(base, rel=1e-5)
    source = _record(net, clean, "x_j")
    for t in range(3):
        for e in range(clean.num_edges):
            def register(m: nn.Module, counter: dict, t: int = t, e: int = e) -> list:
                def swap(mod: nn.Module, inp: tuple) -> tuple | None:
                    if mod is not _calls(net)[t] or counter["t"] != t:
                        return None
                    kw = dict(inp[0])
                    kw["x_j"] = kw["x_j"].clone()
                    kw["x_j"][e] = source[t][e]
                    return (kw,)
                return [m.register_message_forward_pre_hook(swap)]

            want = sum(_metric(_run_with(net, corrupted, register), corrupted)) / clean.num_graphs
            assert float(sweep.values[t, e]) == pytest.approx(want - base, rel=1e-5, abs=1e-6 * abs(base))  # effect
    assert sweep.values.std() > 0


@pytest.mark.parametrize("method", ["batched", "loop"])
def test_patching_update_rows_equals_swapping_one_row_of_update(setup, method):
    net, hooked, clean, corrupted, metric = setup
    assert round_hooks(hooked, "update") == ["conv_a.calls.0.hook_update", "conv_a.calls.1.hook_update",
                                             "conv_b.hook_update"]
    sweep = patch(hooked, clean, corrupted, metric, nodes(hooked, "update"), method=method)
    base = _unpatched(net, corrupted)
    source = _record(net, clean, "update")
    for t in range(3):
        for v in range(clean.num_nodes):
            def register(m: nn.Module, counter: dict, t: int = t, v: int = v) -> list:
                def swap(mod: nn.Module, inp: tuple, out: torch.Tensor) -> torch.Tensor | None:
                    if mod is not _calls(net)[t] or counter["t"] != t:
                        return None
                    out = out.clone()
                    out[v] = source[t][v]
                    return out
                return [m.register_propagate_forward_hook(swap)]

            want = sum(_metric(_run_with(net, corrupted, register), corrupted)) / clean.num_graphs
            assert float(sweep.values[t, v]) == pytest.approx(want - base, rel=1e-5, abs=1e-6 * abs(base))


def test_feature_sweep_of_a_linear_equals_swapping_one_output_column(setup):
    net, hooked, clean, corrupted, metric = setup
    hook = "conv_a.calls.1.upd.hook_out"
    sweep = patch(hooked, clean, corrupted, metric, hooks(hooked, [hook], over="feature"))
    outs: list[torch.Tensor] = []
    h = net.conv_a.upd.register_forward_hook(lambda m, i, o: outs.append(o.clone()))
    with torch.no_grad():
        net(clean.x, clean.edge_index, clean.edge_attr)
    h.remove()
    for f in range(D):
        calls = {"n": 0}

        def swap(m: nn.Module, i: tuple, o: torch.Tensor, f: int = f) -> torch.Tensor | None:
            calls["n"] += 1
            if calls["n"] != 2:  # the second call of conv_a.upd is round 1
                return None
            o = o.clone()
            o[:, f] = outs[1][:, f]
            return o

        h = net.conv_a.upd.register_forward_hook(swap)
        with torch.no_grad():
            out = net(corrupted.x, corrupted.edge_index, corrupted.edge_attr)
        h.remove()
        base = _unpatched(net, corrupted)
        want = sum(_metric(out, corrupted)) / 2 - base
        assert float(sweep.values[0, f]) == pytest.approx(want, rel=1e-5, abs=1e-6 * abs(base))
