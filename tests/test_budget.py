"""Chunk sizes from a memory budget: the estimate, and sweeps whose results do not depend on it."""

from __future__ import annotations

import functools
import warnings

import pytest
import torch
from test_attribution import SPEC, _graphs

from hookgnn import Graph, HookedGNN
from hookgnn.metrics import OutputSum
from hookgnn.patching import messages, nodes, patch
from hookgnn.patching.budget import ROUND_FACTOR, bytes_per_copy, copies_within, parse_bytes


def _model() -> HookedGNN:
    torch.manual_seed(0)
    return HookedGNN("mpnn", d_hidden=6, node_in=2, edge_in=1, spec=SPEC, max_steps=3)


def test_one_copy_is_the_graph_the_encodings_and_three_times_the_largest_round() -> None:
    model, (g, _) = _model(), _graphs()
    _, cache = model.run_with_cache(g)
    size = lambda t: t.numel() * t.element_size()  # noqa: E731
    rounds: dict[int, int] = {}
    for name, act in cache.items():
        t = model.round_of(name)
        if t is not None:
            rounds[t] = rounds.get(t, 0) + size(act)
    outside = sum(size(a) for n, a in cache.items() if model.round_of(n) is None)
    own = sum(size(t) for t in (g.x, g.edge_index, g.edge_attr, g.ptr, g.batch))
    assert bytes_per_copy(model, g) == own + outside + ROUND_FACTOR * max(rounds.values())
    twice = Graph.collate([g, g])
    assert bytes_per_copy(model, twice) == 2 * bytes_per_copy(model, g) - size(g.ptr[:1])  # one ptr entry shared


def test_copies_follow_the_budget() -> None:
    model, (g, _) = _model(), _graphs()
    one = bytes_per_copy(model, g)
    assert [copies_within(model, g, k * one + one // 2, most=100) for k in (1, 2, 7)] == [1, 2, 7]
    assert copies_within(model, g, 1000 * one, most=5) == 5
    with pytest.warns(UserWarning, match="less than one copy"):
        assert copies_within(model, g, one // 2, most=5) == 1


@functools.cache
def _one_forward_per_patch() -> tuple[torch.Tensor, float, torch.Tensor]:
    """Node-state sweep (values, baseline) and message sweep values, one forward per patch."""
    model, (g, corr) = _model(), _graphs()
    metric = OutputSum("d")
    loop = patch(model, g, corr, metric, nodes(model, "update"), method="loop")
    exact = patch(model, g, corr, metric, messages(model), method="loop")
    return loop.values, loop.baseline, exact.values


@pytest.mark.parametrize("budget_copies", [2, 7, 40])  # 1 copy per forward is the loop itself
def test_sweeps_within_a_budget_equal_one_forward_per_patch(budget_copies: int) -> None:
    model, (g, corr) = _model(), _graphs()
    metric = OutputSum("d")
    budget = budget_copies * bytes_per_copy(model, corr) + 1
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        got = patch(model, g, corr, metric, nodes(model, "update"), max_memory=budget)
        singles = patch(model, g, corr, metric, messages(model), max_memory=f"{budget}B")
    loop, baseline, exact = _one_forward_per_patch()
    torch.testing.assert_close(got.values, loop, rtol=1e-5, atol=1e-6)
    assert got.baseline == pytest.approx(baseline)
    torch.testing.assert_close(singles.values, exact, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("bad", ["lots", "-1GB", 0, "3 parsecs"])
def test_unreadable_budgets_name_the_value(bad: object) -> None:
    with pytest.raises(ValueError, match="memory size"):
        parse_bytes(bad)  # type: ignore[arg-type]
