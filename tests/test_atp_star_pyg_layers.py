"""AtP* with every round exact on wrapped PyG layers that read more than their receivers' in-edges.

Reference: exact patching of the same wrapped model (:func:`~hookgnn.patching.patch` of
every single message and of every node row of every round's output), which reruns the
whole model per patch.
The layers cover degree normalisation of the sources (LGConv, GCNConv), several
propagation steps in one call (SGConv, TAGConv, APPNP), normalisation by out-degrees
(ChebConv) and plain 1-hop layers (GraphConv, GINConv). A layer that reads the whole
graph must refuse with :class:`LocalRecomputeError` instead of answering.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from strategies import graphs
from torch import nn

from hookgnn import Graph, HookedGNN
from hookgnn.attribution import atp_star
from hookgnn.metrics import OutputSum
from hookgnn.patching import hooks, messages, patch
from hookgnn.attribution.receptive import LocalRecomputeError
from hookgnn.spec import FeatureSpec

gnn = pytest.importorskip("torch_geometric.nn")
import hookgnn  # noqa: E402

D = 3
METRIC = OutputSum("y")


class Stack(nn.Module):
    """Two rounds of PyG layers (two layers, or one layer called twice), a tanh module
    between them and a linear decoder to a scalar per node."""

    def __init__(self, make: Callable[[], nn.Module], tied: bool) -> None:
        super().__init__()
        self.convs = nn.ModuleList([make()] if tied else [make(), make()])
        self.act = nn.Tanh()
        self.decoder = nn.Linear(D, 1)

    def forward(self, x, edge_index):
        x = self.act(self.convs[0](x, edge_index))
        x = self.convs[-1](x, edge_index)
        return {"y": self.decoder(x).squeeze(-1)}


# name -> (layer factory, one layer called twice, does the layer pass messages over the graph's own edges)
LAYERS: dict[str, tuple[Callable[[], nn.Module], bool, bool]] = {
    "LGConv": (lambda: gnn.LGConv(), False, True),
    "LGConv-tied": (lambda: gnn.LGConv(), True, True),
    "SGConv": (lambda: gnn.SGConv(D, D, K=2), False, False),
    "TAGConv": (lambda: gnn.TAGConv(D, D, K=2), False, True),
    "ChebConv": (lambda: gnn.ChebConv(D, D, K=3), False, False),
    "GCNConv": (lambda: gnn.GCNConv(D, D, add_self_loops=False), False, True),
    "APPNP": (lambda: gnn.APPNP(K=3, alpha=0.2), True, False),
    "GraphConv": (lambda: gnn.GraphConv(D, D), False, True),
    "GINConv": (lambda: gnn.GINConv(nn.Sequential(nn.Linear(D, D), nn.ReLU(), nn.Linear(D, D))), False, True),
}


def _wrapped(name: str, g: Graph, seed: int) -> hookgnn.PyGModel:
    make, tied, _ = LAYERS[name]
    torch.manual_seed(seed)
    return hookgnn.from_pyg(Stack(make, tied).eval(), example=g)


def _corrupt(g: Graph, seed: int) -> Graph:
    return g.replace(x=torch.randn(g.x.shape, generator=torch.Generator().manual_seed(seed + 1)))


def _close(est: torch.Tensor, exact: torch.Tensor, model: nn.Module, g: Graph) -> None:
    """Equal up to float32 rounding of the metric: tolerances relative to the largest
    effect and to the metric itself (an effect is a difference of two metric values)."""
    with torch.no_grad():
        level = float(METRIC(model(g), g).abs().max())
    scale = max(float(exact.abs().max()) if exact.numel() else 0.0, level, 1e-6)
    torch.testing.assert_close(est, exact, atol=1e-4 * scale, rtol=1e-4)


@pytest.mark.parametrize("name", sorted(LAYERS))
@settings(max_examples=8, deadline=None)
@given(g=graphs(min_nodes=2, max_nodes=7, max_edges=14, node_features=D, edge_features=None), seed=st.integers(0, 99))
def test_every_round_exact_equals_the_exact_sweeps(name, g, seed):
    model = _wrapped(name, g, seed)
    corr = _corrupt(g, seed)
    outs = [model.output_hook(t) for t in range(model.num_rounds)]
    for direction in ("denoising", "noising"):
        nodes = patch(model, g, corr, METRIC, hooks(model, outs), direction=direction).effects().values
        est = atp_star(model, g, corr, METRIC, exact_rounds=2, level="node", direction=direction).effects().values
        _close(est, nodes, model, g)
        try:
            est = atp_star(model, g, corr, METRIC, exact_rounds=2, direction=direction).effects().values
        except ValueError as e:  # messages over the layer's own edge list (added self-loops): refused, not guessed
            assert not LAYERS[name][2] and "not one row per graph edge" in str(e)
            continue
        _close(est, patch(model, g, corr, METRIC, messages(model), direction=direction).effects().values, model, g)


@pytest.mark.parametrize("name", sorted(LAYERS))
def test_effects_on_a_fixed_graph_with_a_self_loop_and_an_isolated_node_are_not_trivial(name):
    edge_index = torch.tensor([[0, 1, 2, 3, 4, 5, 2, 6, 1, 6], [1, 2, 3, 4, 5, 0, 2, 1, 6, 3]])  # node 7 isolated
    g = Graph(x=torch.randn(8, D, generator=torch.Generator().manual_seed(0)), edge_index=edge_index)
    model = _wrapped(name, g, 0)
    corr = _corrupt(g, 0)
    outs = [model.output_hook(t) for t in range(model.num_rounds)]
    nodes = patch(model, g, corr, METRIC, hooks(model, outs)).effects().values
    assert nodes.abs().max() > 1e-3  # the comparison below is not between zeros
    levels = [("node", nodes)]
    if LAYERS[name][2]:
        levels.append(("message", patch(model, g, corr, METRIC, messages(model)).effects().values))
    for level, exact in levels:
        _close(atp_star(model, g, corr, METRIC, exact_rounds=2, level=level).effects().values, exact, model, g)


class Centred(gnn.MessagePassing):
    """A sum of in-neighbours minus its mean over the whole graph: no neighbourhood holds
    what the output at a node depends on."""

    def __init__(self) -> None:
        super().__init__(aggr="add")
        self.lin = nn.Linear(D, D)

    def forward(self, x, edge_index):
        out = self.propagate(edge_index, x=self.lin(x))
        return out - out.mean(0, keepdim=True)


def test_a_layer_with_a_cached_normalisation_is_refused_when_wrapped():
    g = Graph(x=torch.randn(4, D, generator=torch.Generator().manual_seed(0)),
              edge_index=torch.tensor([[0, 1, 2], [1, 2, 3]]))
    torch.manual_seed(0)
    with pytest.raises(TypeError, match=r"convs\.0 \(GCNConv\) has cached=True.*cached=False"):
        hookgnn.from_pyg(Stack(lambda: gnn.GCNConv(D, D, cached=True, add_self_loops=False), tied=False).eval(),
                         example=g)


@pytest.mark.parametrize("make", [Centred], ids=["global-mean"])
def test_a_layer_that_reads_the_whole_graph_refuses_with_its_name_class_and_difference(make):
    edge_index = torch.tensor([[0, 1, 2, 3, 4, 5, 6, 2], [1, 2, 3, 4, 5, 6, 0, 5]])
    g = Graph(x=torch.randn(7, D, generator=torch.Generator().manual_seed(0)), edge_index=edge_index)
    torch.manual_seed(0)
    model = hookgnn.from_pyg(Stack(make, tied=False).eval(), example=g)
    corr = _corrupt(g, 0)
    cls = type(model.round_module(0)).__name__
    for level in ("node", "message"):
        refusal = rf"round \d: model\.convs\.\d \({cls}\).*differs from a full call.*exact patching"
        with pytest.raises(LocalRecomputeError, match=refusal):
            atp_star(model, g, corr, METRIC, exact_rounds=2, level=level)
    # patches of the last round's output need no local recomputation and stay allowed
    last = model.output_hook(1)
    exact = patch(model, g, corr, METRIC, hooks(model, [last])).effects().values
    _close(atp_star(model, g, corr, METRIC, level="node", rounds=[1]).effects().values, exact, model, g)


@settings(max_examples=4, deadline=None)
@given(g=graphs(min_nodes=2, max_nodes=6, max_edges=12, node_features=2, edge_features=2), seed=st.integers(0, 99))
def test_a_processor_that_declares_too_small_a_receptive_field_is_widened_not_trusted(g, seed):
    torch.manual_seed(seed)
    model = HookedGNN("triplet_gmpnn", d_hidden=4, node_in=2, edge_in=2,
                      spec={"y": FeatureSpec("output", "node", "scalar")}, max_steps=3).eval()
    for t in range(model.num_rounds):
        model.round_module(t).receptive_hops = 1  # wrong: triplets read the in-edges of the sources too
    corr = g.replace(x=torch.randn(g.x.shape), edge_attr=torch.randn(g.edge_attr.shape))
    exact = patch(model, g, corr, METRIC, messages(model)).effects().values
    _close(atp_star(model, g, corr, METRIC, exact_rounds=3).effects().values, exact, model, g)

