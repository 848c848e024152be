"""Activation patching and path patching: exactness against hand computations."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from handbuilt import bellman_ford, build, corrupt, no_hooks_left, random_instance

from hookgnn import Field, Graph, HookedGNN
from hookgnn.metrics import OutputSum
from hookgnn.nn.wiring import links_of
from hookgnn.patching import (
    Component,
    MessageEdge,
    hooks,
    messages,
    nodes,
    patch,
    path_patch,
    round_hooks,
)
from hookgnn.patching.components import component_mask, components_of, state_name, weight_edges
from hookgnn.spec import FeatureSpec

SPEC = {"d": FeatureSpec("output", "node", "scalar")}


@pytest.fixture(scope="module")
def bf():
    g, v, path, pedges = random_instance(seed=0)
    T = len(pedges)
    model = build(T)
    sel = torch.zeros(g.num_nodes)
    sel[v] = 1.0
    return model, g, corrupt(g), OutputSum("d", select=sel), v, T


@pytest.fixture(scope="module")
def mpnn():
    torch.manual_seed(0)
    model = HookedGNN("mpnn", d_hidden=6, node_in=2, edge_in=1, spec=SPEC, max_steps=3)
    n, e = 7, 16
    ei = torch.randint(0, n, (2, e))
    g = Graph(x=torch.randn(n, 2), edge_index=ei, edge_attr=torch.randn(e, 1))
    g2 = Graph.collate([g, g.replace(x=torch.randn(n, 2))])
    corr = g2.replace(x=torch.randn(2 * n, 2), edge_attr=torch.randn(2 * e, 1))
    return model, g2, corr, OutputSum("d")


def test_noising_sweep_of_node_states_matches_bellman_ford_by_hand(bf):
    model, g, corr, metric, v, T = bf
    scores = patch(model, g, corr, metric, nodes(model, "update"), direction="noising")
    corr_states = bellman_ford(corr, T)
    expected = np.zeros((T, g.num_nodes))
    for t in range(T):
        for u in range(g.num_nodes):
            expected[t, u] = bellman_ford(g, T, override={(t, u): corr_states[t + 1][u]})[-1][v]
    assert scores.axes == ("round", "node")
    baseline = bellman_ford(g, T)[-1][v]
    assert scores.baseline == pytest.approx(baseline, abs=1e-4)
    np.testing.assert_allclose(scores.values.numpy(), expected - baseline, atol=1e-3)  # effects
    np.testing.assert_allclose(scores.patched_metrics().numpy(), expected, atol=1e-3)
    assert no_hooks_left(model)


def test_single_message_patch_matches_hand_computation(bf):
    model, g, corr, metric, v, T = bf
    corr_states = bellman_ford(corr, T)
    sweep = patch(model, g, corr, metric, messages(model), direction="noising")  # corrupted messages into the clean run
    src = g.edge_index[0].tolist()
    baseline = bellman_ford(g, T)[-1][v]
    for t in range(T):
        for e in range(g.num_edges):
            want = bellman_ford(g, T, message_override={(t, e): corr_states[t][src[e]]})[-1][v]
            assert sweep["layers.%d.hook_src" % t][e] == pytest.approx(want - baseline, abs=1e-3)
    t, e = T - 1, 3
    carrier = [MessageEdge(t, e, src[e], int(g.edge_index[1, e])).carrier]  # the message alone: sender -> itself
    one = path_patch(model, g, corr, metric, carrier, carrier, freeze=(), direction="noising")
    assert one - sweep.baseline == pytest.approx(float(sweep[f"layers.{t}.hook_src"][e]), abs=1e-5)
    assert no_hooks_left(model)


def test_two_pass_path_patching_equals_message_patching_for_one_edge(bf):
    model, g, corr, metric, v, T = bf
    ei = g.edge_index
    for e in [g.num_nodes, g.num_nodes + 4, 2]:  # two real edges and a self-loop
        u, w = int(ei[0, e]), int(ei[1, e])
        for t in (1, T - 1):
            senders = [Component(state_name(t), u)]
            receivers = [Component(f"layers.{t}.hook_aggregation", w)]
            two_pass = path_patch(model, g, corr, metric, senders, receivers)
            carrier = [MessageEdge(t, e, u, w).carrier]
            single = path_patch(model, g, corr, metric, carrier, carrier, freeze=())
            assert two_pass == pytest.approx(single, abs=1e-4)
    assert no_hooks_left(model)


@pytest.mark.parametrize("short,over", [("update", "row"), ("message", "row"), ("message_mlp.hook_post", "feature"),
                                        ("aggregation", "feature")])
@pytest.mark.parametrize("direction", ["denoising", "noising"])
def test_batched_sweep_equals_one_forward_per_patch(mpnn, short, over, direction):
    model, g, corr, metric = mpnn
    selection = hooks(model, round_hooks(model, short), over)
    loop = patch(model, g, corr, metric, selection, direction=direction, method="loop")
    batched = patch(model, g, corr, metric, selection, direction=direction, method="batched", copies=5)
    assert loop.axes == batched.axes and loop.hooks == batched.hooks
    torch.testing.assert_close(batched.values, loop.values, atol=1e-5, rtol=1e-5)
    assert no_hooks_left(model)


def test_patching_clean_into_clean_changes_nothing(mpnn):
    model, g, _, metric = mpnn
    s = patch(model, g, g, metric, hooks(model, round_hooks(model, "message")), direction="denoising")
    torch.testing.assert_close(s.values, torch.zeros_like(s.values), atol=1e-5 * (1 + abs(s.baseline)), rtol=1e-6)
    assert path_patch(model, g, g, metric, [Component("layers.0.hook_update", 1)],
                      [Component("layers.1.hook_aggregation", 2)]) == pytest.approx(s.baseline, abs=1e-5)


def test_sweep_axes_follow_hook_axis_not_name(mpnn):
    model, g, corr, metric = mpnn
    assert patch(model, g, corr, metric, hooks(model, round_hooks(model, "src"))).axes == ("round", "edge")
    assert patch(model, g, corr, metric, hooks(model, ["hook_node_embed"])).axes == ("round", "node")
    assert patch(model, g, corr, metric, hooks(model, ["hook_edge_embed"], over="feature")).axes == ("round", "feature")


def test_hooks_removed_when_metric_raises(mpnn):
    model, g, corr, _ = mpnn

    def bad(out, graph):
        raise RuntimeError("boom")

    for method in ("loop", "batched"):
        with pytest.raises(RuntimeError, match="boom"):
            patch(model, g, corr, bad, hooks(model, ["layers.0.hook_update"]), method=method)
        assert no_hooks_left(model)
    with pytest.raises(RuntimeError, match="boom"):
        path_patch(model, g, corr, bad, [Component("layers.0.hook_update", 0)], [Component("layers.1.hook_update", 0)])
    assert no_hooks_left(model)


def test_mismatched_structure_is_rejected(mpnn):
    model, g, _, metric = mpnn
    other = Graph(x=g.x, edge_index=g.edge_index.flip(0), edge_attr=g.edge_attr, ptr=g.ptr)
    with pytest.raises(ValueError, match="same edge_index"):
        patch(model, g, other, metric, hooks(model, ["layers.0.hook_update"]))


def test_component_masks_and_enumeration():
    comps = components_of({"h": (3, 2)}, ["h"], "row_feature")
    assert len(comps) == 6 and Component("h", 2, 1) in comps
    mask = component_mask([Component("h", 0, 1), Component("g", 1)], "h", (3, 2))
    assert mask.sum() == 1 and bool(mask[0, 1])


def test_minagg_links_name_the_weights_between_hooks():
    model = build(2)
    links = {(l.round, l.name): l for l in links_of(model, [0, 1])}
    assert links[(1, "src")].src == "layers.0.hook_update" and links[(0, "src")].src == "hook_node_embed"
    up = links[(1, "up_a")]
    assert up.dst == "layers.1.hook_update" and torch.equal(up.weight, model.layers[1].up.weight[:, :4].detach())
    edges = weight_edges(links[(0, "agg_h")], 4, 4)
    assert {(e.src.feature, e.dst.feature) for e in edges} == {(0, 0), (1, 1), (0, 2), (3, 3)}


def _hint_model(encode_hints: bool) -> tuple[HookedGNN, Graph, Graph]:
    torch.manual_seed(1)
    spec = {"d": FeatureSpec("output", "node", "scalar"), "h": FeatureSpec("hint", "node", "scalar")}
    model = HookedGNN("mpnn", d_hidden=6, node_in=2, edge_in=1, spec=spec, max_steps=3, encode_hints=encode_hints)
    n, e = 6, 14
    gen = torch.Generator().manual_seed(2)
    g = Graph(x=torch.randn(n, 2, generator=gen), edge_index=torch.randint(0, n, (2, e), generator=gen),
              edge_attr=torch.randn(e, 1, generator=gen), fields={"h": Field(torch.randn(4, n, generator=gen), "node", time=True)})
    return model, g, g.replace(x=torch.randn(n, 2, generator=gen))


def _first_hint(out, graph):
    """A metric that reads the first round's hint prediction: resumed runs must not lose it."""
    per_node = out.hints["h"][0] + out.hints["h"][-1]
    return torch.zeros(graph.num_graphs).index_add(0, graph.batch, per_node)


@pytest.mark.parametrize("encode_hints", [False, True])
def test_batched_sweep_equals_loop_for_metrics_on_hints_and_for_models_feeding_back_hints(encode_hints):
    model, g, corr = _hint_model(encode_hints)
    states = nodes(model, "update")
    loop = patch(model, g, corr, _first_hint, states, direction="denoising", method="loop")
    batched = patch(model, g, corr, _first_hint, states, direction="denoising", method="batched", copies=4)
    torch.testing.assert_close(batched.values, loop.values, atol=1e-5, rtol=1e-5)
    assert no_hooks_left(model)
