"""Hook points whose difference is 0 everywhere and that no gradient reaches otherwise get no tap.

An input both runs share (the edge features' encoding when only ``x`` is corrupted) has a zero
difference, so its sums are 0 whatever its gradient; tapping it would make the backward compute a
gradient nothing else needs. Reference: ``keep="all"`` (which taps every hook point), its
difference times its gradient reduced by hand in float64; the number of taps a spy counts.
"""

from __future__ import annotations

import tempfile

import pytest
import torch

import hookgnn.attribution.streamed as streamed
from handbuilt import no_hooks_left

from hookgnn import Graph, HookedGNN, HookedRootModule, HookPoint
from hookgnn.attribution import attribute
from hookgnn.cache.grad_taps import GradientTaps
from hookgnn.metrics import OutputSum
from hookgnn.spec import FeatureSpec


def _case(seed: int = 0) -> tuple[HookedGNN, Graph]:
    torch.manual_seed(seed)
    model = HookedGNN("mpnn", 8, node_in=1, edge_in=1, spec={"d": FeatureSpec("output", "node", "scalar")},
                      max_steps=3).double()
    n, e = 9, 30
    g = Graph(x=torch.rand(n, 1, dtype=torch.float64), edge_index=torch.randint(0, n, (2, e)),
              edge_attr=torch.rand(e, 1, dtype=torch.float64))
    return model, g


def _by_hand(want, name: str) -> tuple[torch.Tensor, torch.Tensor]:  # noqa: ANN001
    p = want.delta[name] * want.grad[name]
    return p.reshape(p.shape[0], -1).sum(1) if p.dim() else p, p.sum(0) if p.dim() else p


@pytest.mark.parametrize("what", ["x", "edge_attr"])
@pytest.mark.parametrize("offload", [False, True])
def test_sums_equal_keep_all_by_hand_with_an_unchanged_input(what: str, offload: bool) -> None:
    model, g = _case()
    corrupted = g.replace(**{what: torch.rand_like(getattr(g, what))})  # the other input is shared
    want = attribute(model, g, corrupted, OutputSum("d"), keep="all")
    with tempfile.TemporaryDirectory() as spill:
        got = attribute(model, g, corrupted, OutputSum("d"), keep="rows", offload=spill if offload else None)
    unchanged = "hook_edge_embed" if what == "x" else "hook_node_embed"
    assert not want.delta[unchanged].any()
    for name in want.delta:
        rows, features = _by_hand(want, name)
        torch.testing.assert_close(got.by_row[name], rows, rtol=1e-9, atol=1e-12)
        torch.testing.assert_close(got.by_feature[name], features, rtol=1e-9, atol=1e-12)


def test_an_unchanged_input_is_not_tapped(monkeypatch: pytest.MonkeyPatch) -> None:
    made: list[GradientTaps] = []

    class Counted(GradientTaps):
        def __init__(self) -> None:
            super().__init__()
            made.append(self)

    monkeypatch.setattr(streamed, "GradientTaps", Counted)
    model, g = _case(1)
    both = g.replace(x=torch.rand_like(g.x), edge_attr=torch.rand_like(g.edge_attr))
    attribute(model, g, both, OutputSum("d"), keep="rows")
    attribute(model, g, g.replace(x=both.x), OutputSum("d"), keep="rows")  # edge features shared
    assert len(made) == 2
    assert made[1].count == made[0].count - 1  # failed before: every hook point tapped either way


class _TwoHeads(HookedRootModule):
    """Two heads: one reads ``x``, the other the edge features only (seeded by the caller)."""

    def __init__(self) -> None:
        super().__init__()
        self.lin_x, self.lin_e = torch.nn.Linear(1, 2).double(), torch.nn.Linear(1, 2).double()
        self.hook_x, self.hook_e = HookPoint("node"), HookPoint("edge")
        self.setup()

    def forward(self, graph: Graph) -> tuple[torch.Tensor, torch.Tensor]:
        return self.hook_x(self.lin_x(graph.x)), self.hook_e(self.lin_e(graph.edge_attr))


@pytest.mark.parametrize(("keep", "offload"), [(k, o) for k in ("all", "rows", "entries", "features")
                                                for o in (False, True) if not (k == "all" and o)])
def test_a_metric_that_reads_no_activation_raises_as_keep_all_does(keep: str, offload: bool) -> None:
    """One question, one answer: a metric no hooked activation reaches (``.item()``, argmax, a constant) is
    rejected by every keep, also where the only hook points left untapped are shared inputs."""
    model, g = _case()
    corrupted = g.replace(x=torch.rand_like(g.x))
    argmax = lambda out, graph: out["d"].argmax().double().reshape(1)  # noqa: E731
    with tempfile.TemporaryDirectory() as spill:
        with pytest.raises(ValueError, match="does not depend on any"):
            attribute(model, g, corrupted, argmax, keep=keep, offload=spill if offload else None)
    assert no_hooks_left(model)


@pytest.mark.parametrize("head", [0, 1])
def test_a_metric_reading_only_an_unchanged_input_gets_what_keep_all_gets(head: int) -> None:
    """The metric reads the edge head only, whose input both runs share: keep="all" gives zeros (its
    difference is 0), and so must keep="rows", though no tapped activation reaches the metric."""
    torch.manual_seed(0)
    model = _TwoHeads()
    g = Graph(x=torch.rand(4, 1, dtype=torch.float64), edge_index=torch.tensor([[0, 1, 2], [1, 2, 3]]),
              edge_attr=torch.rand(3, 1, dtype=torch.float64))
    corrupted = g.replace(x=torch.rand(4, 1, dtype=torch.float64))
    metric = lambda out, graph: (out[head] ** 2).sum().reshape(1)  # noqa: E731
    want = attribute(model, g, corrupted, metric, keep="all")
    got = attribute(model, g, corrupted, metric, keep="rows")
    assert list(got.by_row) == list(want.delta) == ["hook_x", "hook_e"]
    for name in want.delta:
        rows, features = _by_hand(want, name)
        torch.testing.assert_close(got.by_row[name], rows, rtol=1e-9, atol=1e-12)
        torch.testing.assert_close(got.by_feature[name], features, rtol=1e-9, atol=1e-12)
    assert bool(got.by_row["hook_x"].any()) == (head == 0)
