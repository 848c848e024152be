"""AtP* on models that are not a HookedGNN: wrapped PyG models and HookedGNN.from_layers.

Reference: exact patching of the same model (``patch`` of ``messages`` / of the node states),
which patches through the model's own hook points.
"""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from strategies import graphs
from torch import nn

from hookgnn import Graph, HookedGNN
from hookgnn.attribution import atp_star
from hookgnn.nn import MLPConv
from hookgnn.patching import hooks, messages, patch, round_hooks

gnn = pytest.importorskip("torch_geometric.nn")
import hookgnn  # noqa: E402


def node_sum(out, graph: Graph) -> torch.Tensor:
    """Per graph, the sum of a [N] or [N, d] node output."""
    values = out if isinstance(out, torch.Tensor) else out.hidden
    return torch.zeros(graph.num_graphs).index_add_(0, graph.batch, values.reshape(values.shape[0], -1).sum(1))


class Recurrent(nn.Module):
    """One SAGEConv (max aggregation) applied three times, with a functional relu between
    (``scale``: and a multiplication the link tracer does not follow)."""

    def __init__(self, scale: float | None = None) -> None:
        super().__init__()
        self.conv = gnn.SAGEConv(3, 3, aggr="max")
        self.scale = scale

    def forward(self, x, edge_index):
        for _ in range(3):
            x = torch.relu(self.conv(x, edge_index))
            x = x if self.scale is None else x * self.scale
        return x


class TwoGAT(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.convs = nn.ModuleList([gnn.GATConv(3, 3, heads=2, concat=False, add_self_loops=False, edge_dim=1)
                                    for _ in range(2)])
        self.act = nn.ELU()

    def forward(self, x, edge_index, edge_attr):
        return self.convs[1](self.act(self.convs[0](x, edge_index, edge_attr)), edge_index, edge_attr)


class TwoGCN(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.convs = nn.ModuleList([gnn.GCNConv(3, 3) for _ in range(2)])

    def forward(self, x, edge_index):
        return self.convs[1](torch.relu(self.convs[0](x, edge_index)), edge_index)


def _pair(g: Graph, seed: int) -> Graph:
    gen = torch.Generator().manual_seed(seed)
    return g.replace(x=torch.randn(g.x.shape, generator=gen),
                     edge_attr=None if g.edge_attr is None else torch.randn(g.edge_attr.shape, generator=gen))


@settings(max_examples=6, deadline=None)
@given(g=graphs(min_nodes=1, max_nodes=6, max_edges=12, node_features=3, edge_features=None), seed=st.integers(0, 99))
def test_recurrent_pyg_conv_with_every_round_exact_equals_exact_message_patching(g, seed):
    torch.manual_seed(seed)
    hooked = hookgnn.from_pyg(Recurrent(), example=g)
    corr = _pair(g, seed)
    exact = patch(hooked, g, corr, node_sum, messages(hooked)).values
    torch.testing.assert_close(atp_star(hooked, g, corr, node_sum, exact_rounds=3).values, exact, atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(atp_star(hooked, g, corr, node_sum).values[-1], exact[-1], atol=1e-5, rtol=1e-4)


def test_code_between_rounds_that_is_not_traced_allows_one_exact_round_only():
    torch.manual_seed(0)
    g = Graph(x=torch.randn(5, 3), edge_index=torch.tensor([[0, 1, 2, 3, 4, 0], [1, 2, 3, 4, 0, 2]]))
    corr = _pair(g, 0)
    hooked = hookgnn.from_pyg(Recurrent(scale=2.0), example=g)
    exact = patch(hooked, g, corr, node_sum, messages(hooked)).values
    torch.testing.assert_close(atp_star(hooked, g, corr, node_sum).values[-1], exact[-1], atol=1e-5, rtol=1e-4)
    with pytest.raises(NotImplementedError, match="use exact_rounds=1"):
        atp_star(hooked, g, corr, node_sum, exact_rounds=2)


def test_gat_messages_patch_through_the_same_carrier_as_the_exact_sweep():
    torch.manual_seed(0)
    g = Graph(x=torch.randn(6, 3), edge_index=torch.randint(0, 6, (2, 15)), edge_attr=torch.randn(15, 1))
    corr = _pair(g, 0)
    hooked = hookgnn.from_pyg(TwoGAT(), example=g)
    exact = patch(hooked, g, corr, node_sum, messages(hooked)).values
    torch.testing.assert_close(atp_star(hooked, g, corr, node_sum, exact_rounds=2).values, exact, atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(atp_star(hooked, g, corr, node_sum).values[-1], exact[-1], atol=1e-5, rtol=1e-4)
    assert exact.abs().max() > 1e-2


def test_layers_that_add_self_loops_refuse_message_patches_but_node_patches_are_exact():
    torch.manual_seed(1)
    g = Graph(x=torch.randn(6, 3), edge_index=torch.randint(0, 6, (2, 12)))
    corr = _pair(g, 1)
    hooked = hookgnn.from_pyg(TwoGCN(), example=g)
    with pytest.raises(ValueError, match="axis 'none'"):
        atp_star(hooked, g, corr, node_sum)
    outs = round_hooks(hooked, "hook_output")
    exact = patch(hooked, g, corr, node_sum, hooks(hooked, outs)).values
    got = atp_star(hooked, g, corr, node_sum, level="node", exact_rounds=2).values
    torch.testing.assert_close(got, exact, atol=1e-5, rtol=1e-4)


def test_from_layers_model_with_an_activation_between_rounds_is_exact_with_every_round():
    torch.manual_seed(2)
    model = HookedGNN.from_layers([MLPConv(1, 8, d_edge=1), MLPConv(8, 1, d_edge=1)], activation="relu")
    g = Graph(x=torch.randn(7, 1), edge_index=torch.randint(0, 7, (2, 16)), edge_attr=torch.rand(16, 1))
    corr = g.replace(x=torch.randn(7, 1))
    exact = patch(model, g, corr, node_sum, messages(model)).values
    torch.testing.assert_close(atp_star(model, g, corr, node_sum, exact_rounds=2).values, exact, atol=1e-6, rtol=1e-4)
    nodes = patch(model, g, corr, node_sum, hooks(model, round_hooks(model, "update"))).values
    torch.testing.assert_close(atp_star(model, g, corr, node_sum, level="node", exact_rounds=2).values, nodes,
                               atol=1e-6, rtol=1e-4)
