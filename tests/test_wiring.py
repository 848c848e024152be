"""Processor wiring (hookgnn.nn.wiring): links declared by each processor, found by protocol.

References, independent of the links: each weighted destination's pre-activation is
rebuilt in plain torch (float64) from the cached activations of its sources, through the
links' weights, gathers and the layer's bias, and compared with the cached destination
itself; so a link with the wrong columns (a block order that drifted from the forward's
concatenation) fails.
"""

from __future__ import annotations

import warnings

import pytest
import torch
from torch import nn

from hookgnn import Graph, HookedGNN
from hookgnn.circuits import Circuit, evaluate
from hookgnn.metrics import OutputSum
from hookgnn.nn import MinAgg, MLPConv, MPNN
from hookgnn.nn.wiring import LINKS, Link, declared_links, links_of, register_links
from hookgnn.patching.components import weight_edges
from hookgnn.spec import FeatureSpec

SPEC = {"d": FeatureSpec("output", "node", "scalar")}
D = 3


class RenamedMPNN(MPNN):
    """An MPNN under another class name (no override)."""


class RenamedMinAgg(MinAgg):
    """A MinAgg under another class name (no override)."""


def _graph() -> Graph:
    gen = torch.Generator().manual_seed(2)
    ei = torch.tensor([[0, 1, 2, 3, 0, 2, 2], [1, 2, 3, 0, 0, 1, 2]])  # a cycle, self-loops, a chord
    return Graph(x=torch.randn(4, 1, generator=gen), edge_index=ei, edge_attr=torch.rand(7, 1, generator=gen))


def _model(processor) -> HookedGNN:  # noqa: ANN001
    torch.manual_seed(4)
    return HookedGNN(processor, d_hidden=D, node_in=1, edge_in=1, spec=SPEC, max_steps=2, tie_weights=False).eval()


def _biases(model: HookedGNN, t: int) -> dict[str, torch.Tensor]:
    layer = model.layers[t]
    if isinstance(layer, MinAgg):
        return {"hook_message_pre": layer.agg.bias, "hook_update": layer.up.bias}
    return {"message_mlp.hook_pre": layer.message_mlp.lin_in.bias, "hook_message": layer.message_mlp.lin_out.bias,
            "update_mlp.hook_pre": layer.update_mlp.lin_in.bias, "hook_update_pre": layer.update_mlp.lin_out.bias}


def _rebuilt(model: HookedGNN, g: Graph, t: int) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """Per weighted destination of round t: (sum of W a_src over its links + bias, cached value), float64."""
    _, cache = model.run_with_cache(g)
    src, dst = g.edge_index
    sums: dict[str, torch.Tensor] = {}
    for link in links_of(model, [t]):
        if link.weight is None:
            continue
        a = cache[link.src].double()
        a = a if link.rows == "same" else a[src if link.rows == "src" else dst]
        sums[link.dst] = sums.get(link.dst, 0) + a @ link.weight.double().T
    bias = {model.round_hook(k, t): b for k, b in _biases(model, t).items()}
    return {h: (s + bias[h].detach().double(), cache[h].double()) for h, s in sums.items()}


@pytest.mark.parametrize("processor", [MPNN, RenamedMPNN, MinAgg, RenamedMinAgg], ids=lambda c: c.__name__)
def test_links_rebuild_each_weighted_hook_from_its_sources(processor):
    model, g = _model(processor), _graph()
    for t in range(2):
        got = _rebuilt(model, g, t)
        assert len(got) == (2 if issubclass(processor, MinAgg) else 4)
        for hook, (rebuilt, cached) in got.items():
            scale = float(cached.abs().max())
            torch.testing.assert_close(rebuilt, cached, rtol=1e-5, atol=1e-6 * scale, msg=hook)


@pytest.mark.parametrize("parent", [MPNN, MinAgg], ids=lambda c: c.__name__)
def test_a_subclass_under_another_name_keeps_its_parents_wiring(parent):
    child = type(f"My{parent.__name__}", (parent,), {})
    torch.manual_seed(0)
    a, b = parent(D), child(D)
    b.load_state_dict(a.state_dict())
    la, lb = declared_links(a), declared_links(b)
    assert [(l.name, l.src, l.dst, l.rows, l.act) for l in la] == [(l.name, l.src, l.dst, l.rows, l.act) for l in lb]
    for x, y in zip(la, lb):
        assert (x.weight is None) == (y.weight is None)
        if x.weight is not None:
            assert torch.equal(x.weight(a), y.weight(b))


def test_weight_edges_of_a_renamed_processor_are_evaluated_like_zeroed_weights():
    """A subclass under another name keeps its weight edges end to end (evaluate vs zeroed weights)."""
    import copy

    model, g = _model(RenamedMinAgg), _graph()
    universe = [e for link in links_of(model, range(2)) if link.name == "up_h"
                for e in weight_edges(link, D, D)]
    assert len(universe) == 2 * D * D
    got = evaluate(model, g, g, OutputSum("d"), Circuit(), universe, ablation="zero")
    zeroed = copy.deepcopy(model)
    with torch.no_grad():
        for layer in zeroed.layers:
            layer.up.weight[:, D:] = 0.0
        want = float(OutputSum("d")(zeroed(g), g).mean())
    assert got == pytest.approx(want, rel=1e-5, abs=1e-6 * max(1.0, abs(want)))
    with torch.no_grad():
        assert got != pytest.approx(float(OutputSum("d")(model(g), g).mean()), abs=1e-4)


def test_mlpconv_links_rebuild_its_first_layers():
    torch.manual_seed(1)
    model = HookedGNN.from_layers([MLPConv(1, 4, d_edge=1, d_mlp=5), MLPConv(4, 2, d_edge=1, d_mlp=5)])
    g = _graph()
    _, cache = model.run_with_cache(g)
    for t, layer in enumerate(model.layers):
        got = {}
        for link in links_of(model, [t]):
            if link.weight is not None and link.dst.endswith("message_mlp.hook_pre"):
                got[link.name] = cache[link.src].double() @ link.weight.double().T
        want = cache[f"layers.{t}.message_mlp.hook_pre"].double() - layer.message_mlp.lin_in.bias.detach().double()
        torch.testing.assert_close(got["m_h"] + got["m_e"], want, rtol=1e-5, atol=1e-6)


def test_register_links_by_class_is_inherited_and_by_name_warns():
    class Plain(nn.Linear):
        pass

    class Child(Plain):
        pass

    links = [Link("w", "{prev}", "hook_out", "same", lambda m: m.weight)]
    register_links(Plain, lambda m: links)
    assert declared_links(Child(2, 2)) == links
    with pytest.warns(DeprecationWarning, match=r"register_links\(TheClass, fn\)"):
        register_links("NamedOnly", lambda m: links)
    try:
        named = type("NamedOnly", (nn.Linear,), {})
        assert declared_links(type("Sub", (named,), {})(2, 2)) == links  # by name, along the class hierarchy
    finally:
        LINKS.pop("NamedOnly")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert declared_links(nn.Linear(2, 2)) is None


def test_a_processor_without_wiring_is_refused_naming_it():
    from hookgnn.nn import GIN

    model = HookedGNN(GIN, d_hidden=D, node_in=1, max_steps=1)
    with pytest.raises(KeyError, match=r"no neuron-level wiring for processor GIN \(round 0\).*links\(\)"):
        links_of(model, [0])
