"""Filter then verify, and the estimator audit, against exact patching and scipy."""

from __future__ import annotations

import pytest
import torch
from handbuilt import no_hooks_left
from scipy.stats import spearmanr

from hookgnn import Graph, HookedGNN
from hookgnn.attribution import atp_star, attribute
from hookgnn.circuits import Circuit, audit, evaluate, spearman, verify
from hookgnn.circuits.verify import message_edges_of
from hookgnn.metrics import OutputSum, faithfulness
from hookgnn.patching import Component, HookScores, messages, nodes, patch, patch_each, round_hooks
from hookgnn.spec import FeatureSpec

SPEC = {"d": FeatureSpec("output", "node", "scalar")}


@pytest.fixture(scope="module")
def setting():
    torch.manual_seed(4)
    model = HookedGNN("mpnn", d_hidden=5, node_in=2, edge_in=1, spec=SPEC, max_steps=3).eval()
    with torch.no_grad():
        for p in model.parameters():
            if p.dim() == 2:
                p.mul_(2.0)
    g = Graph(x=torch.randn(7, 2), edge_index=torch.randint(0, 7, (2, 18)), edge_attr=torch.randn(18, 1))
    corr = g.replace(x=torch.randn(7, 2), edge_attr=torch.randn(18, 1))
    return model, g, corr, OutputSum("d")


def _atol(model: HookedGNN, g: Graph, metric: OutputSum) -> float:
    """An effect is a difference of two metric values: float32 rounding scales with the metric, not the effect."""
    with torch.no_grad():
        return 1e-6 * float(metric(model(g), g).abs().max())


def test_spearman_equals_scipy_with_ties():
    gen = torch.Generator().manual_seed(0)
    a = torch.randint(0, 5, (40,), generator=gen).float()
    b = a + torch.randint(0, 3, (40,), generator=gen).float()
    assert spearman(a, b) == pytest.approx(spearmanr(a.numpy(), b.numpy()).statistic, abs=1e-12)


def test_patch_each_equals_the_sweep_entries(setting):
    model, g, corr, metric = setting
    hooks = round_hooks(model, "update")
    sweep = patch(model, g, corr, metric, nodes(model, "update"))
    comps = [Component(hooks[2], 4), Component(hooks[0], 1), Component(hooks[1], 6)]
    got = patch_each(model, g, corr, metric, comps)
    want = torch.tensor([float(sweep[c.hook][c.index]) for c in comps], dtype=torch.float64)
    torch.testing.assert_close(got, want, rtol=1e-5, atol=_atol(model, g, metric))
    with pytest.raises(ValueError, match="needs an index and no feature"):
        patch_each(model, g, corr, metric, [Component(hooks[0], None, 1)])


def test_verify_returns_exact_effects_for_the_top_k_of_the_ranking(setting):
    model, g, corr, metric = setting
    exact = patch(model, g, corr, metric, messages(model))
    estimate = attribute(model, g, corr, metric).rows(round_hooks(model, "src"))
    k = 10
    verified = verify(model, g, corr, metric, estimate, k=k)
    assert len(verified.exact) == k and len(verified.ranked) == exact.values.numel()
    by_estimate = sorted(verified.ranked, key=lambda c: -abs(float(estimate[c.hook][c.index])))[:k]
    assert set(verified.exact) == set(by_estimate)
    for c, v in verified.exact.items():
        assert v == pytest.approx(float(exact[c.hook][c.index]), rel=1e-5, abs=_atol(model, g, metric))
    head = [abs(verified.exact[c]) for c in verified.ranked[:k]]
    assert head == sorted(head, reverse=True)
    assert no_hooks_left(model)


def test_audit_measures_agreement_against_exact_patching(setting):
    model, g, corr, metric = setting
    exact = patch(model, g, corr, metric, messages(model))
    est = atp_star(model, g, corr, metric, exact_rounds=3)  # exact: the audit must say so
    a, b = est.effects().values.flatten(), exact.effects().values.flatten()
    torch.testing.assert_close(a, b, rtol=1e-5, atol=_atol(model, g, metric))  # equal up to float32 rounding
    result = audit(model, g, corr, metric, est, exact, k=5)
    # a third of the effects are 0, and float32 rounding (1 ulp of the metric) breaks their ties in a
    # CPU-dependent order: the rank correlation is scipy's on the same scores, and near 1, not exactly 1
    assert result.spearman == pytest.approx(spearmanr(a.numpy(), b.numpy()).statistic, abs=1e-9)
    assert result.spearman > 0.95 and result.recall_at_k == 1.0
    assert result.size_exact == result.size_estimate
    # the size reported reaches the target, checked with evaluate directly
    ranked = torch.argsort(exact.values.flatten().abs(), descending=True).tolist()
    width = exact.values.shape[1]
    units = message_edges_of(model, g, [exact.component(i // width, i % width) for i in range(exact.values.numel())])
    run = lambda c: evaluate(model, g, corr, metric, c, units)  # noqa: E731
    faith = faithfulness(run(Circuit.of([units[i] for i in ranked[:result.size_exact]])), run(Circuit.of(units)),
                         run(Circuit()))
    assert float(faith) >= 0.9


def test_audit_warns_when_agreement_is_low_and_refuses_mixed_directions(setting):
    model, g, corr, metric = setting
    exact = patch(model, g, corr, metric, messages(model))
    noise = HookScores(torch.randn(exact.values.shape, generator=torch.Generator().manual_seed(1)), exact.hooks,
                       exact.axes, exact.baseline)
    with pytest.warns(UserWarning, match="agrees poorly with exact patching"):
        result = audit(model, g, corr, metric, noise, exact, k=5)
    a, b = noise.values.flatten().numpy(), exact.values.flatten().numpy()
    assert result.spearman == pytest.approx(spearmanr(a, b).statistic, abs=1e-9)
    with pytest.raises(ValueError, match="different patching directions"):
        audit(model, g, corr, metric, noise, patch(model, g, corr, metric, messages(model), direction="noising"))
