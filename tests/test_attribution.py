"""Attribution patching, EAP and EAP-IG: exactness on linear models, ground truth on BF."""

from __future__ import annotations

import pytest
import torch
from handbuilt import build, corrupt, no_hooks_left, random_instance, roc_auc
from torch import nn

from hookgnn import Graph, HookedGNN, HookedMessagePassing
from hookgnn.attribution import atp_star, attribute, eap, integrated_gradients_at, message_edge_scores
from hookgnn.metrics import OutputSum
from hookgnn.patching import MessageEdge, WeightEdge, hooks, messages, patch, round_hooks
from hookgnn.spec import FeatureSpec

SPEC = {"d": FeatureSpec("output", "node", "scalar")}
NEURON_HOOKS = ("hook_src", "hook_message_pre", "hook_message", "hook_aggregation", "hook_update")


class LinearSum(HookedMessagePassing):
    """m = A h_u + C e, a = sum, h' = U [a, h]: every activation enters the output linearly."""

    def __init__(self, d: int) -> None:
        super().__init__(aggr="sum")
        self.msg = nn.Linear(2 * d, d)
        self.upd = nn.Linear(2 * d, d)

    def message(self, h_src, h_dst, edge_attr):
        return self.msg(torch.cat([h_src, edge_attr], -1))

    def update(self, aggr, h):
        return self.upd(torch.cat([aggr, h], -1))


def _graphs(seed: int = 0):
    torch.manual_seed(seed)
    n, e = 6, 14
    g = Graph(x=torch.randn(n, 2), edge_index=torch.randint(0, n, (2, e)), edge_attr=torch.randn(e, 1))
    return g, g.replace(x=torch.randn(n, 2), edge_attr=torch.randn(e, 1))


@pytest.fixture(scope="module")
def bf():
    g, v, path, pedges = random_instance(seed=1)
    T = len(pedges)
    sel = torch.zeros(g.num_nodes)
    sel[v] = 1.0
    return build(T), g, corrupt(g), OutputSum("d", select=sel), v, pedges


@pytest.mark.parametrize("direction", ["denoising", "noising"])
@pytest.mark.parametrize("short,over", [("update", "row"), ("message", "row"), ("src", "row"), ("aggregation", "feature")])
def test_attribution_equals_exact_patching_on_a_linear_model(direction, short, over):
    torch.manual_seed(1)
    model = HookedGNN(LinearSum, d_hidden=5, node_in=2, edge_in=1, spec=SPEC, max_steps=3, tie_weights=False)
    g, corr = _graphs()
    metric = OutputSum("d")
    names = round_hooks(model, short)
    exact = patch(model, g, corr, metric, hooks(model, names, over), direction=direction)
    attr = attribute(model, g, corr, metric, direction=direction)
    est = attr.rows(names) if over == "row" else attr.features(names)
    torch.testing.assert_close(est.values, exact.values, atol=1e-4, rtol=1e-4)  # both effects
    assert est.baseline == pytest.approx(exact.baseline, rel=1e-6, abs=1e-6)
    assert no_hooks_left(model)


def test_input_ig_is_complete_on_a_nonlinear_model():
    torch.manual_seed(2)
    model = HookedGNN("mpnn", d_hidden=6, node_in=2, edge_in=1, spec=SPEC, max_steps=2)
    g, corr = _graphs(2)
    metric = OutputSum("d")
    ig = attribute(model, g, corr, metric, ig_steps=64, names_filter=["hook_node_embed", "hook_edge_embed"])
    total = ig.entries("hook_node_embed").sum() + ig.entries("hook_edge_embed").sum()
    gap = float((metric(model(g), g) - metric(model(corr), corr)).detach())
    assert float(total) == pytest.approx(gap, rel=2e-2, abs=1e-3)
    assert no_hooks_left(model)


def test_activation_ig_at_a_hook_recovers_patching_that_hook():
    torch.manual_seed(3)
    model = HookedGNN("mpnn", d_hidden=6, node_in=2, edge_in=1, spec=SPEC, max_steps=2)
    g, corr = _graphs(3)
    metric = OutputSum("d")
    hook = "layers.0.hook_aggregation"
    ig = integrated_gradients_at(model, g, corr, metric, hook, ig_steps=64, chunk=16)
    _, c_clean = model.run_with_cache(g, names_filter=[hook])
    patched = model.run_with_hooks(corr, fwd_hooks=[(hook, lambda a, hook: c_clean[hook.name])])
    want = float((metric(patched, corr) - metric(model(corr), corr)).detach())
    assert list(ig.delta) == [hook]
    assert float(ig.entries(hook).sum()) == pytest.approx(want, rel=2e-2, abs=1e-3)
    assert no_hooks_left(model)


def _message_labels(model, g, pedges, rounds):
    labels = torch.zeros(rounds, g.num_edges, dtype=torch.bool)
    for t, e in enumerate(pedges):
        labels[t, e] = True
    return labels


@pytest.mark.parametrize("ig_steps", [0, 8])
def test_eap_recovers_the_shortest_path_messages_of_handbuilt_bellman_ford(bf, ig_steps):
    model, g, corr, metric, v, pedges = bf
    T = len(pedges)
    scores = eap(model, g, corr, metric, ig_steps=ig_steps)
    table = message_edge_scores(scores)
    assert table.axes == ("round", "edge") and table.values.shape == (T, g.num_edges)
    auc = roc_auc(table.values.abs(), _message_labels(model, g, pedges, T))
    print(f"message-level AUC (ig_steps={ig_steps}): {auc:.4f}")
    assert auc >= 0.99
    assert no_hooks_left(model)


@pytest.mark.parametrize("ig_steps", [0, 8])
def test_eap_recovers_channel_zero_neurons_and_edges_of_handbuilt_bellman_ford(bf, ig_steps):
    model, g, corr, metric, v, pedges = bf
    T = len(pedges)
    attr = attribute(model, g, corr, metric, ig_steps=ig_steps)
    hooks = ["hook_node_embed", "hook_edge_embed"] + [f"layers.{t}.{h}" for t in range(T) for h in NEURON_HOOKS]
    comps = attr.components(hooks, "feature")
    labels = torch.tensor([c.feature == 0 for c in comps])
    auc_neurons = roc_auc(torch.tensor([abs(s) for s in comps.values()]), labels)
    weights = eap(model, g, corr, metric, ig_steps=ig_steps).of_kind(WeightEdge)
    edge_labels = torch.tensor([e.src.feature == 0 and e.dst.feature == 0 for e in weights.edges])
    auc_edges = roc_auc(weights.scores.abs(), edge_labels)
    print(f"neuron AUC {auc_neurons:.4f}, weight-edge AUC {auc_edges:.4f} (ig_steps={ig_steps})")
    assert auc_neurons >= 0.99 and auc_edges >= 0.99


@pytest.mark.parametrize("seed", [1, 5])
def test_eap_ig_ranks_messages_like_exact_patching_when_the_tree_changes(seed):
    """Perturbed weights change the shortest-path tree between clean and corrupted, so the
    truth is the set of messages whose exact single-message patch changes d_v."""
    g, v, path, pedges = random_instance(seed=seed)
    model = build(len(pedges))
    gen = torch.Generator().manual_seed(seed)
    w = g.edge_attr * torch.exp(0.5 * torch.randn(g.edge_attr.shape, generator=gen))
    w[: g.num_nodes] = 0
    corr = g.replace(edge_attr=w)
    sel = torch.zeros(g.num_nodes)
    sel[v] = 1.0
    metric = OutputSum("d", select=sel)
    exact = patch(model, g, corr, metric, messages(model), direction="denoising")
    labels = exact.values.abs() > 1e-5
    aucs = {k: roc_auc(message_edge_scores(eap(model, g, corr, metric, ig_steps=k)).values.abs(), labels) for k in (0, 16)}
    print(f"perturbed weights, seed {seed}: message AUC vs exact effects (EAP, EAP-IG):", aucs)
    assert aucs[16] >= 0.95


def test_attribution_scores_have_named_axes_and_components():
    model = build(3)
    g, _, _, _ = random_instance(seed=0)
    attr = attribute(model, g, corrupt(g), OutputSum("d"), steps=3)
    s = attr.rows(round_hooks(model, "src"))
    assert s.axes == ("round", "edge") and s.hooks[0] == "layers.0.hook_src"
    f = attr.features(round_hooks(model, "message"))
    assert f.axes == ("round", "feature") and f.values.shape == (3, 4)
    assert isinstance(next(iter(eap(model, g, corrupt(g), OutputSum("d"), steps=3).edges)), MessageEdge)
    assert no_hooks_left(model)


def test_hooks_removed_when_metric_raises_during_attribution():
    model = build(3)
    g, _, _, _ = random_instance(seed=0)

    def bad(out, graph):
        raise RuntimeError("boom")

    for fn in (lambda: attribute(model, g, corrupt(g), bad, ig_steps=4, steps=3),
               lambda: integrated_gradients_at(model, g, corrupt(g), bad, "layers.1.hook_message", 4, steps=3)):
        with pytest.raises(RuntimeError, match="boom"):
            fn()
        assert no_hooks_left(model)


@pytest.mark.parametrize("call,arg", [
    (lambda m, g, c, f: attribute(m, g, c, f, ig_steps=-1), "ig_steps"),
    (lambda m, g, c, f: integrated_gradients_at(m, g, c, f, "layers.0.hook_message", ig_steps=0), "ig_steps"),
    (lambda m, g, c, f: eap(m, g, c, f, ig_steps=-2), "ig_steps"),
])
def test_invalid_ig_steps_raise_a_value_error_naming_the_argument(call, arg):
    model = build(2)
    g, _, _, _ = random_instance(seed=0)
    with pytest.raises(ValueError, match=arg):
        call(model, g, corrupt(g), OutputSum("d"))
    assert no_hooks_left(model)


def test_every_patching_function_defaults_to_one_direction():
    import inspect

    from hookgnn.patching import patch_each, path_patch

    fns = [patch, patch_each, path_patch, attribute, integrated_gradients_at, eap, atp_star]
    defaults = {fn.__name__: inspect.signature(fn).parameters["direction"].default for fn in fns}
    assert set(defaults.values()) == {"denoising"}, defaults


def test_exact_single_messages_and_eap_agree_in_sign_with_default_directions():
    """The README's comparison: exact single messages (``patch`` of ``messages``) against ``eap``
    scores of the same messages, both with their defaults. Attribution is exact on a linear
    model, so they must be equal."""
    torch.manual_seed(1)
    model = HookedGNN(LinearSum, d_hidden=5, node_in=2, edge_in=1, spec=SPEC, max_steps=3, tie_weights=False)
    g, corr = _graphs()
    metric = OutputSum("d")
    singles = patch(model, g, corr, metric, messages(model))
    scores = message_edge_scores(eap(model, g, corr, metric, level="message"))
    assert singles.direction == scores.direction == "denoising"
    torch.testing.assert_close(scores.values, singles.values, atol=1e-4, rtol=1e-4)
    assert singles.values.abs().max() > 1e-2


def test_results_of_different_directions_refuse_to_be_compared():
    from hookgnn.patching import check_same_direction

    torch.manual_seed(1)
    model = HookedGNN(LinearSum, d_hidden=3, node_in=2, edge_in=1, spec=SPEC, max_steps=2)
    g, corr = _graphs()
    metric = OutputSum("d")
    noising = patch(model, g, corr, metric, messages(model), direction="noising")
    denoising = attribute(model, g, corr, metric)
    assert check_same_direction(denoising, eap(model, g, corr, metric, level="message")) == "denoising"
    with pytest.raises(ValueError, match=r"different patching directions \['denoising', 'noising'\]"):
        check_same_direction(noising, denoising)
    assert "noising" in repr(noising)
