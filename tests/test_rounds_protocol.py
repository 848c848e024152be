"""Patching and circuits ask the model where things are (the rounds protocol), never a name pattern.

The reference for circuits on a wrapped PyTorch Geometric model is the original model
with PyG's own message pre-hook swapping one row of ``x_j`` (no hookgnn hook point).
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from hookgnn import Graph, HookedGNN
from hookgnn.circuits import Circuit, evaluate
from hookgnn.patching import MessageEdge

pyg = pytest.importorskip("torch_geometric.nn")
from hookgnn.interop import from_pyg  # noqa: E402

D = 3


class MaxConv(pyg.MessagePassing):
    def __init__(self) -> None:
        super().__init__(aggr="max")
        self.msg, self.upd = nn.Linear(D, D), nn.Linear(2 * D, D)
        with torch.no_grad():
            self.msg.bias.fill_(0.5)  # live relus

    def forward(self, x, edge_index):  # noqa: ANN001, ANN201
        return self.propagate(edge_index, x=x)

    def message(self, x_j):  # noqa: ANN001, ANN201
        return F.relu(self.msg(x_j))

    def update(self, aggr_out, x):  # noqa: ANN001, ANN201
        return self.upd(torch.cat([aggr_out, x], -1))


class Net(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv1, self.conv2 = MaxConv(), MaxConv()

    def forward(self, x, edge_index):  # noqa: ANN001, ANN201
        return self.conv2(F.relu(self.conv1(x, edge_index)), edge_index).sum(-1)


def _graphs() -> tuple[Graph, Graph]:
    gen = torch.Generator().manual_seed(7)
    ei = torch.tensor([[0, 1, 2, 3, 0, 2], [1, 2, 3, 0, 2, 2]])
    g = Graph(x=torch.randn(4, D, generator=gen), edge_index=ei)
    return g, g.replace(x=torch.randn(4, D, generator=gen))


def node_sum(out, graph: Graph) -> torch.Tensor:  # noqa: ANN001
    return torch.zeros(graph.num_graphs).index_add(0, graph.batch, out)


def _with_row_swapped(net: Net, g: Graph, corr: Graph, conv: nn.Module, e: int) -> float:
    """The original's metric with row e of conv's x_j taken from the corrupted run (PyG hooks only)."""
    seen = {}
    def keep(m, inp) -> None:  # noqa: ANN001
        seen["x_j"] = inp[0]["x_j"].clone()

    h = conv.register_message_forward_pre_hook(keep)
    net(corr.x, corr.edge_index)
    h.remove()

    def swap(m, inp):  # noqa: ANN001, ANN202
        x_j = inp[0]["x_j"].clone()
        x_j[e] = seen["x_j"][e]
        return ({**inp[0], "x_j": x_j},)

    h = conv.register_message_forward_pre_hook(swap)
    try:
        return float(net(g.x, g.edge_index).sum())
    finally:
        h.remove()


@pytest.mark.parametrize("t, e", [(0, 1), (1, 4), (1, 0)])
def test_message_edges_drawn_without_hooks_are_found_in_a_wrapped_pyg_model(t, e):
    """A MessageEdge(t, e, u, v) carries no hook names: evaluate asks the model for round t's
    carrier (on main it assumed ``layers.{t}.hook_src``, which a PyG model does not have)."""
    torch.manual_seed(0)
    net = Net().eval()
    g, corr = _graphs()
    hooked = from_pyg(net, example=g)
    u, v = (int(i) for i in g.edge_index[:, e])
    edge = MessageEdge(t, e, u, v)
    with torch.no_grad():
        got = evaluate(hooked, g, corr, node_sum, Circuit(), [edge], ablation="resample")
        want = _with_row_swapped(net, g, corr, [net.conv1, net.conv2][t], e)
        assert got == pytest.approx(want, rel=1e-5, abs=1e-6 * max(1.0, abs(want)))
        assert got != pytest.approx(float(net(g.x, g.edge_index).sum()), abs=1e-6)


def test_hook_points_filters_names_like_run_with_cache():
    model = HookedGNN("mpnn", 4, node_in=1, max_steps=2)
    g = Graph(x=torch.ones(3, 1), edge_index=torch.tensor([[0, 1], [1, 2]]))
    for chosen in (None, "layers.1.hook_update", ["hook_node_embed", "layers.0.hook_src"], lambda n: "mlp" in n):
        _, cache = model.run_with_cache(g, names_filter=chosen)
        assert sorted(hp.name for hp in model.hook_points(chosen)) == sorted(cache.keys())
    with pytest.raises(KeyError, match="no hook point named 'layers.7.hook_update'"):
        model.hook_points(["layers.7.hook_update"])


def test_a_model_that_cannot_resume_says_so():
    torch.manual_seed(0)
    g, _ = _graphs()
    hooked = from_pyg(Net().eval(), example=g)
    assert not hooked.can_resume()
    with pytest.raises(NotImplementedError, match="cannot resume"):
        hooked.resume(g, 1, g.x, None, 1)
    model = HookedGNN("mpnn", 4, node_in=1, max_steps=2, encode_hints=True)
    assert model.can_resume(teacher_forcing=True) and not model.can_resume() and not model.can_resume(start=1)
