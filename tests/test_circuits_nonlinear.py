"""Weight links followed by an activation (``dst = relu(W src + ...)``), registered by hand.

``evaluate`` corrects their ablated weight edges at the link's ``pre`` hook point (before
the relu); the reference zeroes the same weight entries in a copy. Without ``pre`` the
ablation cannot be computed, and ``evaluate`` says which hook point is missing.
"""

from __future__ import annotations

import copy
import random

import pytest
import torch
from torch import Tensor, nn

from hookgnn import Graph, HookedGNN, HookPoint, HookedMessagePassing
from hookgnn.circuits import Circuit, evaluate
from hookgnn.nn.wiring import Link, links_of
from hookgnn.nn.wiring import register_links
from hookgnn.ops import scatter
from hookgnn.patching.components import weight_edges

D = 3


class ReluMax(HookedMessagePassing):
    """m_uv = relu(W [h_u, e_uv] + b) (``hook_pre`` before the relu); a_v = max; h'_v = U [a_v, h_v]."""

    def __init__(self, d: int) -> None:
        super().__init__(aggr="max")
        self.lin, self.up = nn.Linear(2 * d, d), nn.Linear(2 * d, d)
        self.hook_pre = HookPoint("edge")

    def message(self, h_src: Tensor, h_dst: Tensor, edge_attr: Tensor | None) -> Tensor:
        return torch.relu(self.hook_pre(self.lin(torch.cat([h_src, edge_attr], -1))))  # type: ignore[list-item]

    def update(self, aggr: Tensor, h: Tensor) -> Tensor:
        return self.up(torch.cat([aggr, h], -1))


def _links(pre: str | None):  # noqa: ANN202
    def links(layer: nn.Module) -> list[Link]:
        return [
            Link("src", "{prev}", "hook_src", "src"),
            Link("w_h", "hook_src", "hook_message", "same", lambda m: m.lin.weight[:, :D], "relu", pre=pre),
            Link("w_e", "{e}", "hook_message", "same", lambda m: m.lin.weight[:, D:], "relu", pre=pre),
            Link("max", "hook_message", "hook_aggregation", "scatter"),
            Link("up_a", "hook_aggregation", "hook_update", "same", lambda m: m.up.weight[:, :D]),
            Link("up_h", "{prev}", "hook_update", "same", lambda m: m.up.weight[:, D:]),
        ]
    return links


@pytest.fixture
def model():  # noqa: ANN201
    torch.manual_seed(0)
    m = HookedGNN(ReluMax, d_hidden=D, node_in=1, edge_in=1, max_steps=2, tie_weights=False).eval()
    with torch.no_grad():
        for layer in m.layers:
            layer.lin.bias.fill_(0.3)
    return m


def _graphs() -> tuple[Graph, Graph]:
    gen = torch.Generator().manual_seed(1)
    ei = torch.tensor([[0, 1, 2, 3, 0, 2], [1, 2, 3, 0, 0, 1]])
    g = Graph(x=torch.randn(4, 1, generator=gen), edge_index=ei, edge_attr=torch.rand(6, 1, generator=gen))
    return g, g.replace(x=torch.randn(4, 1, generator=gen))


def hidden_sum(out, graph: Graph) -> Tensor:  # noqa: ANN001
    return scatter(out.hidden.sum(1), graph.batch, graph.num_graphs, "sum")


def _entry(model: HookedGNN, edge) -> tuple[nn.Parameter, int, int]:  # noqa: ANN001
    layer = model.layers[int(edge.link.split(":")[0].split(".")[1])]
    name = edge.link.split(":")[1]
    w, off = {"w_h": (layer.lin.weight, 0), "w_e": (layer.lin.weight, D), "up_a": (layer.up.weight, 0),
              "up_h": (layer.up.weight, D)}[name]
    return w, edge.dst.feature, edge.src.feature + off


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_ablating_weight_edges_before_a_relu_equals_zeroed_weights(model, seed):
    register_links(ReluMax, _links(pre="hook_pre"))  # each test registers the wiring it needs
    g, corr = _graphs()
    universe = [e for link in links_of(model, range(2)) if link.weight is not None
                for e in weight_edges(link, link.weight.shape[1], link.weight.shape[0])]
    assert {e.link.split(":")[1] for e in universe} == {"w_h", "w_e", "up_a", "up_h"}
    circuit = Circuit.of(random.Random(seed).sample(universe, len(universe) // 2))
    got = evaluate(model, g, corr, hidden_sum, circuit, universe, ablation="zero")
    zeroed = copy.deepcopy(model)
    with torch.no_grad():
        for edge in universe:
            if edge not in circuit:
                w, j, i = _entry(zeroed, edge)
                w[j, i] = 0.0
        want = float(hidden_sum(zeroed(g), g))
        assert got != pytest.approx(float(hidden_sum(model(g), g)), abs=1e-3)
    assert got == pytest.approx(want, abs=1e-5)


def test_a_weight_link_through_a_relu_without_its_pre_activation_is_refused_naming_it(model):
    register_links(ReluMax, _links(pre=None))
    g, corr = _graphs()
    universe = [e for link in links_of(model, range(2)) if link.name == "w_h"
                for e in weight_edges(link, D, D)]
    with pytest.raises(ValueError, match=r"w_h .* through relu.*pre="):
        evaluate(model, g, corr, hidden_sum, Circuit(), universe, ablation="zero")
