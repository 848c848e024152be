"""Exact and estimated results mean the same thing under the same name.

For one (clean, corrupted) pair and one metric, every ``HookScores.values`` (and
``EdgeScores.scores``) is an effect: the metric after the patch minus ``baseline``, the
metric of the unpatched run being patched, which every result keeps. Exact sweeps are
checked against a plain loop (one forward hook that sets one row, one whole forward per
patch, the unpatched metric subtracted by hand); estimators against those exact effects directly.
"""

from __future__ import annotations

import pytest
import torch
from handbuilt import no_hooks_left
from test_attribution import SPEC, LinearSum

from hookgnn import Graph, HookedGNN
from hookgnn.attribution import atp_star, attribute, eap, message_edge_scores
from hookgnn.metrics import OutputSum
from hookgnn.patching import (
    Attribution,
    Component,
    EdgeScores,
    HookScores,
    MessageEdge,
    messages,
    nodes,
    patch,
    patch_each,
    round_hooks,
)

pytestmark = pytest.mark.usefixtures("one_thread")

ROUNDS = 3
METRIC = OutputSum("d")


def _pair(seed: int = 0) -> tuple[Graph, Graph]:
    gen = torch.Generator().manual_seed(seed)
    n, e = 5, 9
    g = Graph(x=torch.randn(n, 2, generator=gen), edge_index=torch.randint(0, n, (2, e), generator=gen),
              edge_attr=torch.rand(e, 1, generator=gen))
    return g, g.replace(x=torch.randn(n, 2, generator=gen), edge_attr=torch.rand(e, 1, generator=gen))


def _model(processor: object = "mpnn") -> HookedGNN:
    torch.manual_seed(3)
    model = HookedGNN(processor, d_hidden=4, node_in=2, edge_in=1, spec=SPEC, max_steps=ROUNDS).eval()
    with torch.no_grad():  # weights larger than the default init: every round moves the states
        for p in model.parameters():
            if p.dim() == 2:
                p.mul_(2.0)
    return model


def _plain_metric(model: HookedGNN, graph: Graph, patch: tuple[str, int, torch.Tensor] | None = None) -> float:
    """The metric (mean over graphs) of one forward, with row ``patch[1]`` of hook ``patch[0]`` set to
    ``patch[2]`` by one forward hook (no batching, no resumed rounds: one patch, one whole forward)."""
    fired = []

    def swap(act: torch.Tensor, hook: object) -> torch.Tensor:
        fired.append(1)
        out = act.clone()
        out[patch[1]] = patch[2]  # type: ignore[index]
        return out

    hooks = [] if patch is None else [(patch[0], swap)]
    with torch.no_grad():
        value = float(METRIC(model.run_with_hooks(graph, fwd_hooks=hooks), graph).double().mean())
    assert patch is None or fired == [1], "the hand-made patch must fire exactly once"
    return value


def _source_rows(model: HookedGNN, graph: Graph, name: str) -> torch.Tensor:
    seen: list[torch.Tensor] = []

    def read(act: torch.Tensor, hook: object) -> None:
        seen.append(act.detach().clone())

    with torch.no_grad():
        model.run_with_hooks(graph, fwd_hooks=[(name, read)])
    return seen[0]


def _plain_effects(model: HookedGNN, base: Graph, source: Graph, hooks: list[str]) -> tuple[torch.Tensor, float]:
    """``[hook, row]`` effects of patching each row of each hook from ``source`` into ``base``, one forward each."""
    unpatched = _plain_metric(model, base)
    table = []
    for name in hooks:
        rows = _source_rows(model, source, name)
        table.append([_plain_metric(model, base, (name, i, rows[i])) - unpatched for i in range(rows.shape[0])])
    return torch.tensor(table, dtype=torch.float64), unpatched


def _close(got: torch.Tensor, want: torch.Tensor, baseline: float) -> None:
    scale = 1.0 + abs(baseline) + float(want.abs().max())
    torch.testing.assert_close(got.double(), want.double(), rtol=1e-5, atol=1e-5 * scale)


@pytest.mark.parametrize("direction", ["denoising", "noising"])
def test_exact_sweeps_are_effects_of_a_plain_torch_patch(direction: str) -> None:
    model = _model()
    clean, corrupted = _pair()
    base, source = (corrupted, clean) if direction == "denoising" else (clean, corrupted)
    for short, selection in (("update", nodes(model, "update")), ("src", messages(model))):
        hooks = round_hooks(model, short)
        want, unpatched = _plain_effects(model, base, source, hooks)
        got = patch(model, clean, corrupted, METRIC, selection, direction=direction)
        assert got.hooks == tuple(hooks) and got.direction == direction
        assert got.baseline == pytest.approx(unpatched, rel=1e-6, abs=1e-6)
        assert float(want.abs().max()) > 1e-3  # the patches do something
        _close(got.values, want, unpatched)
        _close(got.effects().values, want, unpatched)
        _close(got.patched_metrics(), want + unpatched, unpatched)
        comps = [Component(hooks[-1], 2), Component(hooks[0], 0), Component(hooks[1], 4)]
        each = patch_each(model, clean, corrupted, METRIC, comps, direction)
        _close(each, torch.tensor([float(want[hooks.index(c.hook), c.index]) for c in comps]), unpatched)
    assert no_hooks_left(model)


def test_every_result_of_a_pair_keeps_the_same_baseline() -> None:
    model = _model()
    clean, corrupted = _pair()
    carriers = round_hooks(model, "src")
    exact = patch(model, clean, corrupted, METRIC, messages(model))
    unpatched = _plain_metric(model, corrupted)  # denoising: the corrupted run is the one patched
    results = {
        "patch nodes": patch(model, clean, corrupted, METRIC, nodes(model, "update")),
        "attribute rows": attribute(model, clean, corrupted, METRIC).rows(carriers),
        "attribute keep=rows": attribute(model, clean, corrupted, METRIC, keep="rows"),
        "attribute keep=features": attribute(model, clean, corrupted, METRIC, keep="features"),
        "EAP-IG": attribute(model, clean, corrupted, METRIC, ig_steps=3),
        "EAP-IG keep=entries": attribute(model, clean, corrupted, METRIC, ig_steps=3, keep="entries"),
        "eap": eap(model, clean, corrupted, METRIC),
        "eap messages": message_edge_scores(eap(model, clean, corrupted, METRIC, level="message")),
        "atp_star": atp_star(model, clean, corrupted, METRIC),
        "atp_star nodes": atp_star(model, clean, corrupted, METRIC, level="node"),
    }
    assert exact.baseline == pytest.approx(unpatched, rel=1e-6, abs=1e-6)
    for name, result in results.items():
        assert isinstance(result.baseline, float), name
        assert result.baseline == pytest.approx(exact.baseline, rel=1e-6, abs=1e-6), name


def test_atp_star_with_every_round_exact_equals_exact_values() -> None:
    model = _model("minagg")
    clean, corrupted = _pair(1)
    for level, exact in (("message", patch(model, clean, corrupted, METRIC, messages(model))),
                         ("node", patch(model, clean, corrupted, METRIC, nodes(model, "update")))):
        star = atp_star(model, clean, corrupted, METRIC, exact_rounds=ROUNDS, level=level)
        assert star.hooks == exact.hooks and star.baseline == pytest.approx(exact.baseline, rel=1e-6, abs=1e-6)
        assert float(exact.values.abs().max()) > 1e-3
        _close(star.values, exact.values, exact.baseline)


def test_estimates_compare_raw_with_exact_values_where_they_are_exact() -> None:
    """On a model linear in every activation attribution is exact: estimates equal exact ``.values``."""
    model = _model(LinearSum)
    clean, corrupted = _pair(2)
    carriers = round_hooks(model, "src")
    exact = patch(model, clean, corrupted, METRIC, messages(model))
    scores = eap(model, clean, corrupted, METRIC, level="message")
    assert isinstance(scores, EdgeScores)
    for estimate in (attribute(model, clean, corrupted, METRIC).rows(carriers),
                     attribute(model, clean, corrupted, METRIC, keep="rows").rows(carriers),
                     message_edge_scores(scores)):
        assert float(exact.values.abs().max()) > 1e-3
        _close(estimate.values, exact.values, exact.baseline)
    edge = MessageEdge(1, 4, int(clean.edge_index[0, 4]), int(clean.edge_index[1, 4]))
    assert scores.as_dict()[edge] == pytest.approx(float(exact[carriers[1]][4]), rel=1e-4, abs=1e-5)


def test_hook_scores_have_one_meaning() -> None:
    values = torch.tensor([[0.5, -1.0]])
    s = HookScores(values, ("h",), ("round", "node"), 2.0)
    assert s.effects() is s and torch.equal(s.effects().values, values)
    torch.testing.assert_close(s.patched_metrics(), torch.tensor([[2.5, 1.0]]))
    assert "effects" in repr(s) and "baseline=2" in repr(s)
    with pytest.raises(TypeError):
        HookScores(values, ("h",), ("round", "node"))  # type: ignore[call-arg]  # no baseline: refused
    with pytest.raises(TypeError, match="baseline"):
        HookScores(values, ("h",), ("round", "node"), torch.tensor(2.0))  # type: ignore[arg-type]


def test_attribution_fields_mean_one_thing_whatever_keep() -> None:
    model = _model()
    clean, corrupted = _pair()
    hook = "layers.1.hook_update"
    full = attribute(model, clean, corrupted, METRIC)
    entries = full.entries(hook)
    kept = {keep: attribute(model, clean, corrupted, METRIC, keep=keep) for keep in ("entries", "rows", "features")}
    tol = {"rtol": 1e-5, "atol": 1e-6 * (1 + float(entries.abs().max()))}
    torch.testing.assert_close(kept["entries"].by_entry[hook], entries, **tol)
    for keep in ("rows",):
        torch.testing.assert_close(kept[keep].by_row[hook], entries.sum(1), **tol)
    for keep in ("rows", "features"):
        torch.testing.assert_close(kept[keep].by_feature[hook], entries.sum(0), **tol)
    assert not kept["entries"].by_row and not kept["features"].by_row and not kept["rows"].by_entry
    with pytest.raises(ValueError, match="keep='features', which keeps no row sums"):
        kept["features"].row_sums(hook)
    with pytest.raises(ValueError, match="keep='rows', which keeps no entries"):
        kept["rows"].entries(hook)
    with pytest.raises(ValueError, match=r"keep='rows' fills only \['by_row', 'by_feature'\], got \['by_entry'\]"):
        Attribution({hook: "node"}, 0.0, keep="rows", by_entry={hook: entries}, by_row={hook: entries.sum(1)},
                    by_feature={hook: entries.sum(0)})
    with pytest.raises(ValueError, match=r"needs by_feature\[hook\] for every hook"):
        Attribution({hook: "node"}, 0.0, keep="rows", by_row={hook: entries.sum(1)})
