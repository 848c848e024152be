"""The 0.2 entry points: ``patch`` with each selector, ``attribute``, ``select``, ``over_pairs``.

References are independent of hookgnn's patching code: a plain loop of forwards with one
forward hook each (the row or the column of the source run's activation put in), the
metric averaged by hand; the mean over pairs is a Python loop over single-pair results.
"""

from __future__ import annotations

import math

import pytest
import torch

from hookgnn import Graph, HookedGNN
from hookgnn.nn import MLPConv
from hookgnn.parallel import over_pairs
from hookgnn.attribution import atp_star, attribute, eap
from hookgnn.circuits import select
from hookgnn.metrics import OutputSum
from hookgnn.patching import (
    Component, EdgeScores, HookScores, MessageEdge, Selection, hooks, messages, neurons, nodes, patch,
)
from hookgnn.spec import FeatureSpec

SPEC = {"d": FeatureSpec("output", "node", "scalar")}
METRIC = OutputSum("d")


def node_sum(out, graph: Graph) -> torch.Tensor:
    """Per graph, the sum of a [N] or [N, d] node output (for models without named outputs)."""
    values = out if isinstance(out, torch.Tensor) else out.hidden
    return torch.zeros(graph.num_graphs).index_add_(0, graph.batch, values.reshape(values.shape[0], -1).sum(1))


@pytest.fixture(scope="module")
def mpnn():
    torch.manual_seed(0)
    model = HookedGNN("mpnn", d_hidden=5, node_in=2, edge_in=1, spec=SPEC, max_steps=3)
    n, e = 6, 12
    g = Graph(x=torch.randn(n, 2), edge_index=torch.randint(0, n, (2, e)), edge_attr=torch.randn(e, 1))
    two = Graph.collate([g, g.replace(x=torch.randn(n, 2))])
    corrupted = two.replace(x=torch.randn(2 * n, 2), edge_attr=torch.randn(2 * e, 1))
    return model, two, corrupted


def loop_reference(model, clean, corrupted, metric, names, over):
    """Effects of patching each row (or column) alone, denoising: one hooked forward per patch."""
    with torch.no_grad():
        _, source = model.run_with_cache(clean, names_filter=list(names))
        baseline = float(metric(model(corrupted), corrupted).mean())
        table = []
        for h in names:
            width = source[h].shape[0] if over == "row" else source[h].shape[1]
            row = []
            for i in range(width):
                def put(act, hook, h=h, i=i):
                    act = act.clone()
                    if over == "row":
                        act[i] = source[h][i]
                    else:
                        act[:, i] = source[h][:, i]
                    return act
                with model.hooks(fwd_hooks=[(h, put)]):
                    row.append(float(metric(model(corrupted), corrupted).mean()) - baseline)
            table.append(row)
    return torch.tensor(table, dtype=torch.float64), baseline


def assert_effects_close(got: HookScores, want: torch.Tensor, baseline: float) -> None:
    scale = max(float(want.abs().max()), abs(baseline), 1e-3)
    torch.testing.assert_close(got.values.double(), want, rtol=1e-4, atol=1e-5 * scale)
    assert got.baseline == pytest.approx(baseline, rel=1e-5, abs=1e-6 * scale)
    assert float(want.abs().max()) > 1e-4  # the patches do something, so the comparison can fail


@pytest.mark.parametrize("method", ["batched", "loop"])
@pytest.mark.parametrize("choose", ["messages", "nodes", "neurons", "hooks"])
def test_patch_with_each_selector_equals_one_hooked_forward_per_component(mpnn, choose, method):
    model, clean, corrupted = mpnn
    selection = {
        "messages": lambda: messages(model),
        "nodes": lambda: nodes(model, "update", rounds=[0, 2]),
        "neurons": lambda: neurons(model, "aggregation"),
        "hooks": lambda: hooks(model, ["layers.1.hook_message", "layers.2.hook_message"]),
    }[choose]()
    got = patch(model, clean, corrupted, METRIC, selection, method=method, copies=7)
    want, baseline = loop_reference(model, clean, corrupted, METRIC, selection.hooks, selection.over)
    axis = {"messages": "edge", "nodes": "node", "neurons": "feature", "hooks": "edge"}[choose]
    assert got.axes == ("round", axis) and got.hooks == selection.hooks and got.direction == "denoising"
    assert_effects_close(got, want, baseline)


def test_selectors_follow_the_rounds_protocol_on_a_from_layers_stack():
    torch.manual_seed(2)
    model = HookedGNN.from_layers([MLPConv(1, 8, d_edge=1), MLPConv(8, 1, d_edge=1)], activation="relu")
    g = Graph(x=torch.randn(7, 1), edge_index=torch.randint(0, 7, (2, 16)), edge_attr=torch.rand(16, 1))
    corrupted = g.replace(x=torch.randn(7, 1))
    for site, selection in (("src", messages(model)), ("update", nodes(model))):
        assert selection.hooks == tuple(model.round_hook(site, t) for t in range(model.num_rounds))
        want, baseline = loop_reference(model, g, corrupted, node_sum, selection.hooks, "row")
        assert_effects_close(patch(model, g, corrupted, node_sum, selection), want, baseline)


def test_selectors_refuse_what_they_cannot_select(mpnn):
    model, clean, corrupted = mpnn
    with pytest.raises(ValueError, match="node rows.*hook_message"):
        nodes(model, "message")
    with pytest.raises(KeyError, match="no hook point 'hook_nothing'"):
        nodes(model, "nothing")
    with pytest.raises(KeyError, match="layers.9.hook_update"):
        hooks(model, ["layers.9.hook_update"])
    with pytest.raises(TypeError, match="list of hook names"):
        hooks(model, "layers.0.hook_update")
    with pytest.raises(ValueError, match="no rounds"):
        messages(model, rounds=[])
    with pytest.raises(Exception, match="'column'"):  # a ValueError, or the runtime type checker's error first
        Selection(("layers.0.hook_update",), "column")  # type: ignore[arg-type]
    with pytest.raises(Exception, match="Selection|selector"):  # TypeError, or the type checker's
        patch(model, clean, corrupted, METRIC, [Component("layers.0.hook_update", 0)])  # type: ignore[arg-type]


def test_attribute_without_ig_steps_is_the_first_order_estimate_by_hand(mpnn):
    """attribute(ig_steps=0) = (a_clean - a_corrupted) * dm/da at the corrupted run, by autograd by hand."""
    model, clean, corrupted = mpnn
    h = "layers.1.hook_update"
    with torch.no_grad():
        _, source = model.run_with_cache(clean, names_filter=[h])
    kept: dict[str, torch.Tensor] = {}

    def grab(act, hook):
        act.retain_grad()
        kept["a"] = act
        return act

    with model.hooks(fwd_hooks=[(h, grab)]):
        METRIC(model(corrupted), corrupted).mean().backward()
    want = ((source[h] - kept["a"].detach()) * kept["a"].grad).double()
    for keep in ("all", "entries"):
        got = attribute(model, clean, corrupted, METRIC, names_filter=[h], keep=keep).entries(h).double()
        torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-6 * float(want.abs().max()))
    assert float(want.abs().max()) > 1e-4


def test_attribute_rows_agree_for_every_keep_with_and_without_ig_steps(mpnn):
    """One alpha grid: keep='all' and the streamed keep='rows' give the same numbers for ig_steps 0 and 3."""
    model, clean, corrupted = mpnn
    names = [model.round_hook("update", t) for t in range(3)]
    for ig_steps in (0, 3):
        whole = attribute(model, clean, corrupted, METRIC, ig_steps=ig_steps, names_filter=names).rows(names)
        rows = attribute(model, clean, corrupted, METRIC, ig_steps=ig_steps, names_filter=names, keep="rows").rows(names)
        scale = float(whole.values.abs().max())
        torch.testing.assert_close(rows.values, whole.values, rtol=1e-4, atol=1e-6 * scale)
        assert rows.baseline == whole.baseline
    with pytest.raises(ValueError, match="ig_steps must be >= 0"):
        attribute(model, clean, corrupted, METRIC, ig_steps=-1)


# ------------------------------------------------------------------------ select
def test_select_by_n_by_threshold_and_by_both_never_pads():
    scores = {"a": 1.0, "b": -3.0, "c": 2.0, "d": 0.0, "e": 2.0}
    assert select(scores, n=2) == ["b", "c"]
    assert select(scores, n=10) == ["b", "c", "e", "a"]  # "d" scores nothing: never chosen to fill
    assert select(scores, threshold=1.5) == ["b", "c", "e"]
    assert select(scores, n=2, threshold=1.5) == ["b", "c"]
    assert select(scores, n=0) == []
    assert select(scores, n=3, absolute=False) == ["c", "e", "a"]
    assert select(scores, threshold=-5.0, absolute=False) == ["c", "e", "a", "d", "b"]
    assert select({"x": 0.0, "y": 0.0}, n=2) == []


def test_select_takes_results_and_refuses_bad_arguments():
    s = HookScores(torch.tensor([[0.5, -2.0], [0.0, 1.0]]), ("h0", "h1"), ("round", "node"), baseline=0.0)
    assert select(s, n=5) == [Component("h0", 1), Component("h1", 1), Component("h0", 0)]
    u, v = MessageEdge(0, 0, 0, 1), MessageEdge(0, 1, 1, 2)
    assert select(EdgeScores([u, v], torch.tensor([0.1, -0.3]), baseline=0.0), threshold=0.2) == [v]
    with pytest.raises(ValueError, match="n= .*threshold="):
        select({"a": 1.0})
    with pytest.raises(ValueError, match="n must be >= 0"):
        select({"a": 1.0}, n=-1)
    with pytest.raises(ValueError, match="'a' is NaN"):
        select({"a": math.nan}, n=1)
    with pytest.raises(TypeError, match="mapping of scores"):
        select([1.0, 2.0], n=1)


# -------------------------------------------------------------------- over_pairs
def _pairs():
    torch.manual_seed(3)
    n, e = 5, 9
    g = Graph(x=torch.randn(n, 2), edge_index=torch.randint(0, n, (2, e)), edge_attr=torch.randn(e, 1))
    return [(g.replace(x=torch.randn(n, 2)), g.replace(x=torch.randn(n, 2))) for _ in range(3)]


@pytest.mark.parametrize("scorer", ["patch", "attribute", "eap", "atp_star"])
def test_over_pairs_of_any_scorer_is_the_mean_of_single_pair_results(mpnn, scorer):
    model = mpnn[0]
    pairs = _pairs()
    fn, kwargs = {
        "patch": (patch, {"components": messages(model), "direction": "noising"}),
        "attribute": (attribute, {"ig_steps": 2, "keep": "rows"}),
        "eap": (eap, {"level": "message"}),
        "atp_star": (atp_star, {}),
    }[scorer]
    got = over_pairs(fn, model, pairs, METRIC, **kwargs)
    singles = [fn(model, c, k, METRIC, **kwargs) for c, k in pairs]
    baseline = sum(r.baseline for r in singles) / len(singles)
    assert got.baseline == pytest.approx(baseline, rel=1e-6, abs=1e-7)
    if scorer == "attribute":
        hooks_ = [model.round_hook("update", t) for t in range(model.num_rounds)]
        want = torch.stack([r.rows(hooks_).values.double() for r in singles]).mean(0)
        values = got.rows(hooks_).values.double()
    elif scorer == "eap":
        assert got.edges == singles[0].edges
        want, values = torch.stack([r.scores.double() for r in singles]).mean(0), got.scores.double()
    else:
        assert (got.hooks, got.axes, got.direction) == (singles[0].hooks, singles[0].axes, singles[0].direction)
        want, values = torch.stack([r.values.double() for r in singles]).mean(0), got.values.double()
    torch.testing.assert_close(values, want, rtol=1e-5, atol=1e-6 * float(want.abs().max()))
    assert float(want.abs().max()) > 1e-4
