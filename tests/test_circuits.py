"""Circuits: evaluation through hooks, selection, pruning, faithfulness, overlap."""

from __future__ import annotations

import pytest
import torch
from handbuilt import build, corrupt, no_hooks_left, random_instance

from hookgnn import Graph, HookedGNN
from hookgnn.attribution import eap
from hookgnn.circuits import (
    Circuit,
    evaluate,
    faithfulness_curve,
    greedy_from_outputs,
    jaccard,
    prune,
    select,
    weighted_jaccard,
)
from hookgnn.metrics import OutputSum, faithfulness
from hookgnn.nn.wiring import links_of
from hookgnn.patching import Component, MessageEdge, message_edges
from hookgnn.patching.components import components_of, state_name, weight_edges
from hookgnn.spec import FeatureSpec

SPEC = {"d": FeatureSpec("output", "node", "scalar")}


@pytest.fixture(scope="module")
def bf():
    g, v, path, pedges = random_instance(seed=0)
    T = len(pedges)
    sel = torch.zeros(g.num_nodes)
    sel[v] = 1.0
    model = build(T)
    metric = OutputSum("d", select=sel)
    chain = [MessageEdge(t, e, path[t], path[t + 1]) for t, e in enumerate(pedges)]
    m_clean = float(metric(model(g), g).detach())
    m_corr = float(metric(model(corrupt(g)), g).detach())
    return model, g, corrupt(g), metric, v, T, chain, m_clean, m_corr


@pytest.fixture(scope="module")
def mpnn():
    torch.manual_seed(0)
    model = HookedGNN("mpnn", d_hidden=5, node_in=2, edge_in=1, spec=SPEC, max_steps=2)
    g = Graph(x=torch.randn(6, 2), edge_index=torch.randint(0, 6, (2, 12)), edge_attr=torch.randn(12, 1))
    return model, g, g.replace(x=torch.randn(6, 2), edge_attr=torch.randn(12, 1)), OutputSum("d")


def _all_rows(model, g):
    _, cache = model.run_with_cache(g)
    return components_of({k: tuple(v.shape) for k, v in cache.items()}, list(cache), "row")


def test_full_circuit_reproduces_the_model_and_empty_circuit_the_corrupted_run(mpnn):
    model, g, corr, metric = mpnn
    universe = _all_rows(model, g)
    full = evaluate(model, g, corr, metric, Circuit.of(universe), universe)
    empty = evaluate(model, g, corr, metric, Circuit(), universe)
    assert full == pytest.approx(float(metric(model(g), g).detach()), abs=1e-5)
    assert empty == pytest.approx(float(metric(model(corr), corr).detach()), abs=1e-5)
    assert no_hooks_left(model)


def test_zero_and_mean_ablation_use_hooks_not_weights(mpnn):
    model, g, corr, metric = mpnn
    hook = "layers.1.hook_update"
    before = [p.clone() for p in model.parameters()]
    uni = [Component(hook, None, f) for f in range(5)]
    kept = Circuit.of([Component(hook, None, 0), Component(hook, None, 2)])
    zero = evaluate(model, g, corr, metric, Circuit(), uni, "zero")
    mean = evaluate(model, g, corr, metric, kept, uni, "mean", dataset=Graph.collate([g, corr]))
    want_zero = model.run_with_hooks(g, fwd_hooks=[(hook, lambda a, hook: torch.zeros_like(a))])
    # the dataset mean of every feature over all nodes of both graphs, computed per graph
    with torch.no_grad():
        a_g, a_c = model.run_with_cache(g)[1][hook], model.run_with_cache(corr)[1][hook]
    node_mean = (a_g.sum(0) + a_c.sum(0)) / (a_g.shape[0] + a_c.shape[0])  # [d]
    ablated = [1, 3, 4]

    def set_mean(act, hook):
        act = act.clone()
        act[:, ablated] = node_mean[ablated]
        return act

    want_mean = model.run_with_hooks(g, fwd_hooks=[(hook, set_mean)])
    assert zero == pytest.approx(float(metric(want_zero, g).detach()), abs=1e-5)
    assert mean == pytest.approx(float(metric(want_mean, g).detach()), abs=1e-5)
    assert mean != pytest.approx(float(metric(model(g), g).detach()), abs=1e-3)  # the ablation does something
    assert all(torch.equal(a, b) for a, b in zip(before, model.parameters()))
    assert no_hooks_left(model)


def test_resample_evaluation_rejects_a_corrupted_graph_with_other_edges(mpnn):
    model, g, corr, metric = mpnn
    perm = torch.arange(g.num_edges).flip(0)
    shuffled = corr.replace(edge_index=corr.edge_index[:, perm])
    assert not torch.equal(shuffled.edge_index, g.edge_index)
    with pytest.raises(ValueError, match="edge_index"):
        evaluate(model, g, shuffled, metric, Circuit(), [Component("layers.0.hook_update", 0)])
    assert no_hooks_left(model)


def test_links_of_rejects_a_model_that_encodes_hints():
    spec = {**SPEC, "h": FeatureSpec("hint", "node", "scalar")}
    model = HookedGNN("mpnn", d_hidden=3, node_in=1, spec=spec, max_steps=2, encode_hints=True)
    with pytest.raises(ValueError, match="encode_hints=False"):
        links_of(model, [0])


def test_shortest_path_messages_are_a_faithful_circuit(bf):
    model, g, corr, metric, v, T, chain, m_clean, m_corr = bf
    universe = message_edges(g.edge_index, range(T))
    m = evaluate(model, g, corr, metric, Circuit.of(chain), universe)
    assert float(faithfulness(m, m_clean, m_corr)) == pytest.approx(1.0, abs=1e-4)
    dropped = evaluate(model, g, corr, metric, Circuit.of(chain[1:]), universe)
    assert abs(dropped - m_clean) > 1e-3


def test_greedy_growth_from_the_output_finds_the_shortest_path(bf):
    model, g, corr, metric, v, T, chain, *_ = bf
    scores = eap(model, g, corr, metric, ig_steps=4).of_kind(MessageEdge).as_dict()
    circuit = greedy_from_outputs(scores, T, [Component(state_name(T), v)])
    assert circuit.edges == frozenset(chain)
    assert jaccard(circuit.edges, chain) == 1.0


def test_channel_zero_weight_edges_are_a_faithful_neuron_circuit(bf):
    model, g, corr, metric, v, T, chain, m_clean, m_corr = bf
    _, cache = model.run_with_cache(g)
    universe = [e for link in links_of(model, range(T))
                for e in weight_edges(link, cache[link.src].shape[1], cache[link.dst].shape[1])]
    true = [e for e in universe if e.src.feature == 0 and e.dst.feature == 0]
    assert evaluate(model, g, corr, metric, Circuit.of(true), universe) == pytest.approx(m_clean, abs=1e-4)
    assert evaluate(model, g, corr, metric, Circuit(), universe) == pytest.approx(m_corr, abs=1e-3)
    assert no_hooks_left(model)


def test_prune_drops_edges_not_connected_to_the_output(bf):
    model, g, corr, metric, v, T, chain, *_ = bf
    stray = next(e for e in message_edges(g.edge_index, [T - 1]) if e.v != v and e.u != e.v)
    pruned = prune(Circuit.of([*chain, stray]), [Component(state_name(T), v)], lambda c: c.hook == "hook_node_embed")
    assert pruned.edges == frozenset(chain)


def test_faithfulness_curve_goes_from_corrupted_to_clean(bf):
    model, g, corr, metric, v, T, chain, *_ = bf
    universe = message_edges(g.edge_index, range(T))
    ranked = chain[::-1] + [e for e in universe if e not in chain]
    curve = faithfulness_curve(model, g, corr, metric, ranked, [0, T - 1, T, len(universe)], universe)
    # the middle point: the chain without its first message, normalised by hand
    m_mid, m_full, m_empty = (evaluate(model, g, corr, metric, Circuit.of(c), universe)
                              for c in (chain[1:], universe, []))
    mid = (m_mid - m_empty) / (m_full - m_empty)
    assert abs(mid) > 1e-3  # not an end point in disguise
    torch.testing.assert_close(curve, torch.tensor([0.0, mid, 1.0, 1.0]), atol=1e-4, rtol=0)


def test_selection_and_overlap_helpers():
    scores = {Component("h", i): float(s) for i, s in enumerate([0.1, -2.0, 0.5])}
    assert select(scores, n=1) == [Component("h", 1)]
    assert weighted_jaccard(scores, scores) == 1.0
    assert jaccard([], []) == 1.0


def test_hooks_removed_when_metric_raises_during_evaluation(mpnn):
    model, g, corr, _ = mpnn

    def bad(out, graph):
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError):
        evaluate(model, g, corr, bad, Circuit(), [Component("layers.0.hook_update", 0)])
    assert no_hooks_left(model)
