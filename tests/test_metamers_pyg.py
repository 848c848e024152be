"""Metamers of a wrapped PyTorch Geometric model, checked on the original with plain torch hooks."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from hookgnn import Graph
from hookgnn.metamers import metamer

gnn = pytest.importorskip("torch_geometric.nn")
import hookgnn  # noqa: E402


class Net(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.convs = nn.ModuleList([gnn.GINEConv(nn.Sequential(nn.Linear(3, 8), nn.ReLU(), nn.Linear(8, 3)), edge_dim=1)
                                    for _ in range(2)])

    def forward(self, x, edge_index, edge_attr):
        for conv in self.convs:
            x = torch.relu(conv(x, edge_index, edge_attr))
        return x


def _first_conv_output(net: Net, g: Graph) -> torch.Tensor:
    """The first conv's output of the original model, read with a plain forward hook."""
    seen = []
    handle = net.convs[0].register_forward_hook(lambda m, args, out: seen.append(out.detach()))
    try:
        with torch.no_grad():
            net(g.x, g.edge_index, g.edge_attr)
    finally:
        handle.remove()
    return seen[0]


def test_metamers_of_a_wrapped_pyg_model_match_the_original_at_the_hook():
    torch.manual_seed(0)
    net = Net()
    ref = Graph(x=torch.randn(6, 3), edge_index=torch.tensor([[0, 1, 2, 3, 4, 5, 0], [1, 2, 3, 4, 5, 0, 3]]),
                edge_attr=torch.rand(7, 1))
    hooked = hookgnn.from_pyg(net, example=ref)
    res = metamer(hooked, ref, "convs.0.hook_output", num=2, tol=1e-3, restarts=1)
    assert bool(res.converged.all())
    want = _first_conv_output(net, ref)
    for g in res.graphs:
        got = _first_conv_output(net, g)
        assert float((got - want).pow(2).sum() / want.pow(2).sum()) <= 1e-3
        assert not torch.allclose(g.x, ref.x, atol=1e-2)  # a different input, the same activations
    assert all(not m._forward_hooks for m in net.modules())
