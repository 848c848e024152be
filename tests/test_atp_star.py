"""AtP*: exact where it recomputes, against exact patching, a brute force and hand computations."""

from __future__ import annotations

import pytest
import torch
from handbuilt import bellman_ford, build, no_hooks_left
from hypothesis import given, settings
from hypothesis import strategies as st
from strategies import graphs
from torch import nn

from hookgnn import Graph, HookedGNN, HookedMessagePassing
from hookgnn.attribution import atp_star, attribute
from hookgnn.attribution.atp_star import replace_one
from hookgnn.metrics import OutputSum
from hookgnn.patching import HookScores, messages, nodes, patch, round_hooks
from hookgnn.spec import FeatureSpec

SPEC = {"d": FeatureSpec("output", "node", "scalar")}
PROCESSORS = ["mpnn", "minagg", "pgn", "gat", "gine", "triplet_gmpnn"]


class MaxOfRelu(HookedMessagePassing):
    """A user's own processor: m = relu(W [h_u, h_v, e]); a = max; h' = tanh(U [a, h]) + h."""

    def __init__(self, d: int) -> None:
        super().__init__(aggr="max")
        self.msg, self.upd = nn.Linear(3 * d, d), nn.Linear(2 * d, d)

    def message(self, h_src, h_dst, edge_attr):
        return torch.relu(self.msg(torch.cat([h_src, h_dst, edge_attr], -1)))

    def update(self, aggr, h):
        return torch.tanh(self.upd(torch.cat([aggr, h], -1))) + h


class LinearMessages(HookedMessagePassing):
    """m = A [h_u, e] (linear); a = sum or mean; h' = U [a, h] (linear)."""

    def __init__(self, d: int, aggr: str = "sum") -> None:
        super().__init__(aggr=aggr)  # type: ignore[arg-type]
        self.msg, self.upd = nn.Linear(2 * d, d), nn.Linear(2 * d, d)

    def message(self, h_src, h_dst, edge_attr):
        return self.msg(torch.cat([h_src, edge_attr], -1))

    def update(self, aggr, h):
        return self.upd(torch.cat([aggr, h], -1))


def _model(processor, rounds: int, d: int = 4, seed: int = 0) -> HookedGNN:
    torch.manual_seed(seed)
    model = HookedGNN(processor, d_hidden=d, node_in=2, edge_in=2, spec=SPEC, max_steps=rounds).eval()
    with torch.no_grad():  # weights larger than the default init: every round moves the states
        for p in model.parameters():
            if p.dim() == 2:
                p.mul_(2.0)
    return model


def close_to_exact(est: HookScores, exact: HookScores) -> None:
    """Equal up to float32 rounding of the metric values whose difference an effect is: atol
    scales with the largest metric seen (the baseline or a patched run), rtol with each effect."""
    base = torch.as_tensor(exact.baseline, dtype=exact.values.dtype)
    metrics = torch.cat([base.reshape(-1), (exact.values + base).reshape(-1)]).abs()
    scale = max(1.0, float(metrics.max()))
    torch.testing.assert_close(est.values, exact.values, atol=4e-6 * scale, rtol=1e-4)


def _corrupt(g: Graph, seed: int) -> Graph:
    gen = torch.Generator().manual_seed(seed)
    return g.replace(x=torch.randn(g.x.shape, generator=gen),
                     edge_attr=torch.randn(g.edge_attr.shape, generator=gen))


# ------------------------------------------------------------------ exactness
@pytest.mark.parametrize("processor", [*PROCESSORS, MaxOfRelu])
@settings(max_examples=8)
@given(g=graphs(min_nodes=1, max_nodes=6, max_edges=12, node_features=2, edge_features=2), seed=st.integers(0, 99))
def test_all_rounds_exact_equals_exact_message_patching_on_random_graphs(processor, g, seed):
    rounds = 3
    model = _model(processor, rounds, seed=seed)
    corr = _corrupt(g, seed)
    metric = OutputSum("d")
    exact = patch(model, g, corr, metric, messages(model))
    est = atp_star(model, g, corr, metric, exact_rounds=rounds)
    close_to_exact(est, exact)
    assert no_hooks_left(model)


@pytest.mark.parametrize("processor", ["mpnn", "gat", "triplet_gmpnn", MaxOfRelu])
@settings(max_examples=6)
@given(g=graphs(min_nodes=1, max_nodes=6, max_edges=12, node_features=2, edge_features=2), seed=st.integers(0, 99))
def test_all_rounds_exact_equals_node_sweep_on_random_graphs(processor, g, seed):
    rounds = 3
    model = _model(processor, rounds, seed=seed)
    corr = _corrupt(g, seed)
    metric = OutputSum("d")
    exact = patch(model, g, corr, metric, nodes(model, "update"))
    est = atp_star(model, g, corr, metric, exact_rounds=rounds, level="node")
    close_to_exact(est, exact)


def test_the_last_round_is_exact_with_one_exact_round():
    g = Graph(x=torch.randn(7, 2), edge_index=torch.randint(0, 7, (2, 20)), edge_attr=torch.randn(20, 2))
    model = _model("mpnn", 3, seed=1)
    corr = _corrupt(g, 1)
    exact = patch(model, g, corr, OutputSum("d"), messages(model)).values
    est = atp_star(model, g, corr, OutputSum("d"), exact_rounds=1).values
    torch.testing.assert_close(est[-1], exact[-1], atol=2e-5, rtol=1e-4)
    assert exact[-1].abs().max() > 1e-2


@pytest.mark.parametrize("aggr", ["sum", "mean"])
def test_sum_and_mean_with_linear_rounds_are_exact_with_one_exact_round(aggr):
    torch.manual_seed(3)
    model = HookedGNN(lambda d: LinearMessages(d, aggr), d_hidden=4, node_in=2, edge_in=2, spec=SPEC,
                      max_steps=4, tie_weights=False)
    g = Graph(x=torch.randn(6, 2), edge_index=torch.randint(0, 6, (2, 15)), edge_attr=torch.randn(15, 2))
    corr = _corrupt(g, 3)
    exact = patch(model, g, corr, OutputSum("d"), messages(model)).values
    est = atp_star(model, g, corr, OutputSum("d"), exact_rounds=1).values
    torch.testing.assert_close(est, exact, atol=1e-4, rtol=1e-4)
    assert exact.abs().max() > 1e-2


# -------------------------------------------------------- hand-built network
def _two_routes(w02: float) -> Graph:
    """Source 0; routes 0 -> 1 -> 3 (weights 1, 1) and 0 -> 2 -> 3 (weights w02, 1.5); self-loops first."""
    ei = torch.tensor([[0, 1, 2, 3, 0, 0, 1, 2], [0, 1, 2, 3, 1, 2, 3, 3]])
    w = torch.tensor([[0.0], [0.0], [0.0], [0.0], [1.0], [w02], [1.0], [1.5]])
    return Graph(x=torch.tensor([[1.0], [0.0], [0.0], [0.0]]), edge_index=ei, edge_attr=w)


@pytest.mark.parametrize("rounds", [2, 3])
def test_a_losing_message_that_becomes_the_minimum_is_scored_exactly(rounds):
    """Corrupted: d_2 = 3, so node 3 takes 0 -> 1 -> 3 (d_3 = 2) and 2 -> 3 loses (4.5).
    Clean: d_2 = 0.1. Patching the clean sender into message 2 -> 3 of round 1 makes it the
    new minimum, d_3 = 1.6: an effect of -0.4 that attribution patching scores 0."""
    clean, corrupted = _two_routes(0.1), _two_routes(3.0)
    model = build(rounds)
    metric = OutputSum("d", select=torch.tensor([0.0, 0.0, 0.0, 1.0]))
    edge, t = 7, 1
    hand = bellman_ford(corrupted, rounds, message_override={(t, edge): bellman_ford(clean, rounds)[t][2]})[-1][3]
    base = bellman_ford(corrupted, rounds)[-1][3]
    assert hand - base == pytest.approx(-0.4, abs=1e-5)
    est = atp_star(model, clean, corrupted, metric)
    attr = attribute(model, clean, corrupted, metric).rows(round_hooks(model, "src"))
    assert float(est[f"layers.{t}.hook_src"][edge]) == pytest.approx(hand - base, abs=1e-4)
    assert float(attr[f"layers.{t}.hook_src"][edge]) == 0.0


# ------------------------------------------------------------ leave-one-out
@settings(max_examples=60)
@given(st.data())
def test_replace_one_equals_recomputing_each_node_by_brute_force(data):
    n = data.draw(st.integers(1, 5))
    e = data.draw(st.integers(1, 12))
    reduce = data.draw(st.sampled_from(["max", "min", "sum", "mean"]))
    ints = st.integers(-3, 3)  # small integers: ties everywhere, exact sums
    msg = torch.tensor(data.draw(st.lists(st.lists(ints, min_size=2, max_size=2), min_size=e, max_size=e)), dtype=torch.float64)
    new = torch.tensor(data.draw(st.lists(st.lists(ints, min_size=2, max_size=2), min_size=e, max_size=e)), dtype=torch.float64)
    dst = torch.tensor(data.draw(st.lists(st.integers(0, n - 1), min_size=e, max_size=e)))
    pick = {"max": lambda t: t.max(0).values, "min": lambda t: t.min(0).values, "sum": lambda t: t.sum(0),
            "mean": lambda t: t.mean(0)}[reduce]
    aggr = torch.stack([pick(msg[dst == v]) if (dst == v).any() else torch.zeros(2, dtype=torch.float64)
                        for v in range(n)])
    got = replace_one(msg, new, aggr, dst, reduce)
    for i in range(e):
        changed = msg.clone()
        changed[i] = new[i]
        torch.testing.assert_close(got[i], pick(changed[dst == dst[i]]))


# ---------------------------------------------------------------- arguments
def test_bad_arguments_are_named_and_leave_no_hooks():
    model = _model("mpnn", 2)
    g = Graph(x=torch.randn(3, 2), edge_index=torch.tensor([[0, 1], [1, 2]]), edge_attr=torch.randn(2, 2))
    corr = _corrupt(g, 0)
    with pytest.raises(ValueError, match="exact_rounds must be >= 1"):
        atp_star(model, g, corr, OutputSum("d"), exact_rounds=0)
    with pytest.raises(ValueError, match=r"rounds \[5\] do not exist"):
        atp_star(model, g, corr, OutputSum("d"), rounds=[5])
    with pytest.raises(ValueError, match="same edge_index"):
        atp_star(model, g, g.replace(edge_index=torch.tensor([[1, 0], [2, 1]])), OutputSum("d"))

    def broken(out, graph):
        raise RuntimeError("metric failed")

    with pytest.raises(RuntimeError, match="metric failed"):
        atp_star(model, g, corr, broken)
    assert no_hooks_left(model)
