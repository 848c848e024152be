"""Standard PyG layers, wrapped and converted, against the PyG originals.

On random graphs (isolated nodes, self-loops, parallel edges): the wrapped model's
outputs and gradients equal the original's, its cached ``hook_src`` / ``hook_message``
equal what PyG's own message hooks see, and :func:`~hookgnn.interop.to_native` gives a
hookgnn processor with the original's output.
"""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from strategies import graphs
from torch import nn

from hookgnn.graph import Graph

pyg = pytest.importorskip("torch_geometric.nn")
from hookgnn.interop import from_pyg, to_native  # noqa: E402

D, DE = 4, 3
SETTINGS = settings(max_examples=12, deadline=None)
GRAPHS = graphs(min_nodes=1, node_features=D, edge_features=DE, max_edges=14)


def _mlp() -> nn.Sequential:
    return nn.Sequential(nn.Linear(D, 6), nn.ReLU(), nn.Linear(6, D))


LAYERS = {
    "gine": lambda: pyg.GINEConv(_mlp(), edge_dim=DE, train_eps=True, eps=0.2),
    "gat": lambda: pyg.GATConv(D, 2, heads=2, edge_dim=DE),
    "gat_no_loops": lambda: pyg.GATConv(D, 2, heads=2, edge_dim=DE, add_self_loops=False, residual=True),
    "gcn": lambda: pyg.GCNConv(D, 5),
    "sage": lambda: pyg.SAGEConv(D, 5),
    "sage_max": lambda: pyg.SAGEConv(D, 5, aggr="max", normalize=True),
    "gin": lambda: pyg.GINConv(_mlp(), eps=0.3),
}
USES_EDGES = {"gine", "gat", "gat_no_loops"}


class Net(nn.Module):
    """One layer on (x, edge_index, edge_attr), then a Linear head."""

    def __init__(self, kind: str) -> None:
        super().__init__()
        self.kind, self.conv = kind, LAYERS[kind]()
        self.head = nn.LazyLinear(1)

    def forward(self, x, edge_index, edge_attr):  # noqa: ANN001, ANN201
        h = self.conv(x, edge_index, edge_attr) if self.kind in USES_EDGES else self.conv(x, edge_index)
        return self.head(h.relu())


def _net(kind: str, g: Graph, seed: int) -> Net:
    torch.manual_seed(seed)
    net = Net(kind).eval()
    net(g.x, g.edge_index, g.edge_attr)  # materialise the lazy head
    return net


def _message_hooks(conv: nn.Module) -> tuple[list, list]:
    srcs, msgs = [], []
    handles = [conv.register_message_forward_pre_hook(lambda m, inp: srcs.append(inp[0]["x_j"].detach().clone())),
               conv.register_message_forward_hook(lambda m, inp, out: msgs.append(out.detach().clone()))]
    return handles, [srcs, msgs]


@pytest.mark.parametrize("kind", sorted(LAYERS))
@SETTINGS
@given(g=GRAPHS, seed=st.integers(0, 2**16))
def test_wrapped_layer_outputs_gradients_and_messages_equal_the_original(kind: str, g: Graph, seed: int) -> None:
    net = _net(kind, g, seed)
    hooked = from_pyg(net)
    x = g.x.clone().requires_grad_()
    params = list(net.parameters())
    want = net(x, g.edge_index, g.edge_attr)
    want_grads = torch.autograd.grad(want.square().sum(), [x, *params], allow_unused=True)
    got = hooked(x, g.edge_index, g.edge_attr)
    got_grads = torch.autograd.grad(got.square().sum(), [x, *params], allow_unused=True)
    torch.testing.assert_close(got, want, atol=0, rtol=0)
    for a, b in zip(got_grads, want_grads):
        assert (a is None) == (b is None)
        if a is not None:
            torch.testing.assert_close(a, b, atol=0, rtol=0)

    handles, (srcs, msgs) = _message_hooks(net.conv)
    try:
        _, cache = hooked.run_with_cache(g.x, g.edge_index, g.edge_attr)
    finally:
        for h in handles:
            h.remove()
    torch.testing.assert_close(cache["conv.hook_message"], msgs[0], atol=0, rtol=0)
    torch.testing.assert_close(cache["conv.hook_src"], srcs[0], atol=0, rtol=0)
    # a layer's own edge list (self-loops added, so reordered) is not the graph's edges,
    # even when the counts agree: graph edge e is not row e
    own: list[torch.Tensor] = []
    handle = net.conv.register_propagate_forward_pre_hook(lambda m, inp: own.append(inp[0]))
    try:
        net(g.x, g.edge_index, g.edge_attr)
    finally:
        handle.remove()
    same = own[0].shape == g.edge_index.shape and torch.equal(own[0], g.edge_index)
    assert hooked.hook_dict["conv.hook_message"].axis == ("edge" if same else "none")


@pytest.mark.parametrize("kind", ["gine", "gat_no_loops", "gcn", "sage", "sage_max", "gin"])
@SETTINGS
@given(g=GRAPHS, seed=st.integers(0, 2**16))
def test_converted_native_processor_equals_the_original_layer(kind: str, g: Graph, seed: int) -> None:
    torch.manual_seed(seed)
    conv = LAYERS[kind]().eval()
    for p in conv.parameters():  # non-zero everywhere (PyG initialises some biases to 0)
        torch.nn.init.normal_(p, std=0.5)
    native = to_native(conv)
    if kind in USES_EDGES:
        want, got = conv(g.x, g.edge_index, g.edge_attr), native(g.x, g.edge_index, g.edge_attr)
    else:
        want, got = conv(g.x, g.edge_index), native(g.x, g.edge_index)
    torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("make, match", [
    (lambda: pyg.GATConv(D, 2, heads=2), "add_self_loops"),
    (lambda: pyg.GCNConv(D, 5, improved=True), "improved"),
    (lambda: pyg.SAGEConv(D, 5, project=True), "project"),
    (lambda: pyg.GINConv(nn.Sequential(nn.Linear(D, D), nn.BatchNorm1d(D), nn.ReLU(), nn.Linear(D, D))), "two-layer"),
    (lambda: pyg.GINEConv(nn.Sequential(nn.Linear(D, 6), nn.ReLU(), nn.Linear(6, 2))), "keeps the width"),
    (lambda: pyg.GraphConv(D, D), "no native processor for GraphConv"),
])
def test_layers_that_cannot_be_converted_raise_naming_why(make, match) -> None:  # noqa: ANN001
    with pytest.raises(ValueError, match=match):
        to_native(make())
