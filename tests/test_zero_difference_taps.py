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
from hookgnn import Graph, HookedGNN
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
