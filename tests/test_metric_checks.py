"""Metric and circuit helpers never return a silent wrong number: shapes, faithfulness, select, recall."""

from __future__ import annotations

import math
import warnings

import pytest
import torch

from hookgnn import Graph, HookedGNN
from hookgnn.attribution import attribute
from hookgnn.circuits import audit, faithfulness_curve, select
from hookgnn.circuits.verify import top_k_recall
from hookgnn.metrics import DistanceMSE, MaskAccuracy, OutputSum, PointerLogProb, faithfulness
from hookgnn.models.base import ModelOutput
from hookgnn.patching import Component, HookScores, hooks, patch
from hookgnn.spec import FeatureSpec

pytestmark = pytest.mark.usefixtures("one_thread")


def _two_graphs() -> Graph:
    a = Graph(x=torch.zeros(3, 1), edge_index=torch.tensor([[0, 1], [1, 2]]))
    b = Graph(x=torch.zeros(2, 1), edge_index=torch.tensor([[1], [0]]))
    return Graph.collate([a, b])


# ------------------------------------------------------------------ shapes
def test_output_sum_of_an_n_by_1_output_sums_the_selected_nodes_per_graph():
    g = _two_graphs()
    torch.manual_seed(0)
    d = torch.randn(5, 1)
    select = torch.tensor([0.0, 1.0, 1.0, 1.0, 0.0])
    got = OutputSum("d", select=select)(ModelOutput({"d": d}), g)
    want = torch.tensor([float(d[1, 0] + d[2, 0]), float(d[3, 0])])
    assert got.shape == (2,)
    torch.testing.assert_close(got, want)


@pytest.mark.parametrize("shape", [(5, 2), (5, 1, 1), (4,), (1,)])
def test_output_sum_raises_on_an_output_that_is_not_one_value_per_node(shape):
    g = _two_graphs()
    with pytest.raises(ValueError, match=rf"OutputSum: output 'd' has shape \({shape[0]},"):
        OutputSum("d", select=torch.ones(5))(ModelOutput({"d": torch.zeros(shape)}), g)


@pytest.mark.parametrize("shape", [(5, 5), (3,), (5, 2)])
def test_output_sum_raises_on_a_mask_that_is_not_one_value_per_node(shape):
    g = _two_graphs()
    with pytest.raises(ValueError, match=r"OutputSum: select has shape .*output \(5, 1\), select"):
        OutputSum("d", select=torch.ones(shape))(ModelOutput({"d": torch.zeros(5, 1)}), g)


def test_distance_mse_of_an_n_by_1_output_against_n_targets_is_the_per_graph_mse():
    g = _two_graphs()
    torch.manual_seed(1)
    pred, tgt = torch.randn(5, 1), torch.randn(5)
    got = DistanceMSE("d", target=tgt)(ModelOutput({"d": pred}), g)
    err = (pred[:, 0].double() - tgt.double()) ** 2
    torch.testing.assert_close(got.double(), torch.stack([err[:3].mean(), err[3:].mean()]), rtol=1e-6, atol=1e-7)


def test_pointer_log_prob_of_e_by_1_logits_equals_the_flat_ones():
    g = _two_graphs()
    torch.manual_seed(2)
    logits, target = torch.randn(3), torch.tensor([1.0, 1.0, 1.0])
    flat = PointerLogProb(target=target)(ModelOutput({"pi": logits}), g)
    column = PointerLogProb(target=target)(ModelOutput({"pi": logits[:, None]}), g)
    assert column.shape == (2,)
    torch.testing.assert_close(column, flat)


def test_mask_accuracy_raises_on_a_target_of_the_wrong_location():
    g = _two_graphs()
    with pytest.raises(ValueError, match=r"MaskAccuracy: target has shape \(3,\)"):
        MaskAccuracy("m", target=torch.ones(3))(ModelOutput({"m": torch.ones(5, 1)}), g)


# ------------------------------------------------------------ faithfulness
@pytest.mark.parametrize("values", [(0.3, 1.0, 1.0), (1.0, 1.0, 1.0), (0.0, 0.0, 0.0), (5.0, 1e6, 1e6 + 1e-3)])
def test_faithfulness_raises_naming_both_values_when_full_equals_corrupted(values):
    m_c, m_f, m_0 = values
    with pytest.raises(ValueError, match=rf"m_full = {m_f!r}, m_corrupted = {m_0!r}"):
        faithfulness(m_c, m_f, m_0)


def test_faithfulness_of_small_but_distinct_values_is_the_ratio():
    assert float(faithfulness(1.5e-9, 2e-9, 1e-9)) == pytest.approx(0.5, rel=1e-9)


def test_faithfulness_per_graph_raises_naming_the_graph_and_its_values():
    with pytest.raises(ValueError, match=r"at index \(1,\).*m_full = 2\.0, m_corrupted = 2\.0"):
        faithfulness(torch.tensor([0.5, 0.5]), torch.tensor([1.0, 2.0]), torch.tensor([0.0, 2.0]))
    torch.testing.assert_close(faithfulness(torch.tensor([0.5, 1.0]), torch.tensor([1.0, 3.0]), torch.tensor([0.0, 2.0])),
                               torch.tensor([0.5, -1.0], dtype=torch.float64))


def test_faithfulness_raises_on_nan():
    with pytest.raises(ValueError, match="not finite"):
        faithfulness(float("nan"), 1.0, 0.0)


@pytest.fixture(scope="module")
def unchanged():
    """A model and a pair whose corruption changes nothing: every effect is exactly 0."""
    torch.manual_seed(3)
    model = HookedGNN("mpnn", 4, node_in=1, spec={"d": FeatureSpec("output", "node", "scalar")}, max_steps=2)
    g = Graph(x=torch.randn(4, 1), edge_index=torch.tensor([[0, 1, 2], [1, 2, 3]]))
    return model, g, OutputSum("d")


def test_audit_and_curve_raise_instead_of_comparing_nan_when_the_circuit_has_no_effect(unchanged):
    model, g, metric = unchanged
    names = ["layers.1.hook_update"]
    exact = patch(model, g, g, metric, hooks(model, names))
    est = attribute(model, g, g, metric).rows(names)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(ValueError, match=r"audit cannot size circuits.*m_full = .*m_corrupted = "):
            audit(model, g, g, metric, est, exact, k=2)
    universe = [Component("layers.1.hook_update", i) for i in range(4)]
    with pytest.raises(ValueError, match="faithfulness is undefined"):
        faithfulness_curve(model, g, g, metric, universe, [1, 2], universe)


# ----------------------------------------------------------------- select
def test_select_n_never_pads_with_zero_scores():
    assert select({"a": 0.0, "b": 2.0, "c": 0.0, "d": 0.0}, n=3) == ["b"]
    assert select({"a": 0.0, "b": -2.0, "c": 1.0, "d": 0.0}, n=3) == ["b", "c"]
    assert select({"a": -1.0, "b": 2.0, "c": 0.0}, n=3, absolute=False) == ["b"]
    assert select({"a": 0.0}, n=1) == []


def test_select_n_keeps_the_order_of_ties_and_the_best_first():
    assert select({"a": 1.0, "b": -3.0, "c": 3.0, "d": 2.0}, n=3) == ["b", "c", "d"]


def test_select_by_n_and_by_threshold_raise_on_nan_scores():
    for fn in (lambda s: select(s, n=1), lambda s: select(s, threshold=0.0)):
        with pytest.raises(ValueError, match="'b' is NaN"):
            fn({"a": 1.0, "b": float("nan")})


def test_select_threshold_still_ranks_zero_scores_above_a_negative_threshold():
    assert select({"a": 0.0, "b": -2.0, "c": 1.0}, threshold=-1.0, absolute=False) == ["c", "a"]


# ----------------------------------------------------------------- recall
def _recall_by_hand(est: list[float], exact: list[float], k: int) -> float:
    nonzero = sorted((abs(v) for v in exact if v != 0), reverse=True)
    k = min(k, len(nonzero))
    top_exact = {i for i, v in enumerate(exact) if v != 0 and abs(v) >= nonzero[k - 1]}
    ranked = sorted((i for i, v in enumerate(est) if v != 0), key=lambda i: (-abs(est[i]), i))[:k]
    return len(top_exact & set(ranked)) / k


@pytest.mark.parametrize(("est", "exact", "k", "want"), [
    ([0.0, 2.0, 0.0, 0.0], [0.0, 5.0, 0.0, 0.0], 4, 1.0),  # one non-zero exact effect: k is 1
    ([3.0, 2.0, 1.0, 0.0], [1.0, 1.0, 1.0, 0.0], 2, 1.0),  # exact ties at the k-th all count
    ([0.0, 0.0, 0.0, 9.0], [1.0, 1.0, 1.0, 0.0], 2, 0.0),  # the estimate's top is a zero exact effect
    ([3.0, 0.1, 2.5, 0.0], [-1.0, 0.0, 4.0, 2.0], 2, 0.5),
])
def test_top_k_recall_on_hand_made_scores(est, exact, k, want):
    got = top_k_recall(torch.tensor(est), torch.tensor(exact), k)
    assert got == pytest.approx(want) and got == pytest.approx(_recall_by_hand(est, exact, k))


def test_top_k_recall_is_nan_with_a_warning_when_every_exact_effect_is_zero():
    with pytest.warns(UserWarning, match="every exact effect is zero"):
        assert math.isnan(top_k_recall(torch.tensor([1.0, 0.5, 0.0, 0.0]), torch.zeros(4), 3))


def test_audit_recall_against_an_all_zero_exact_sweep_is_nan_not_a_number(unchanged):
    model, g, metric = unchanged
    torch.manual_seed(4)
    corr = g.replace(x=torch.randn(4, 1))
    names = ["layers.1.hook_update"]
    est = attribute(model, g, corr, metric).rows(names)
    zero = HookScores(torch.zeros(1, 4), tuple(names), ("round", "node"), est.baseline, direction=est.direction)
    with pytest.warns(UserWarning, match="every exact effect is zero"):
        result = audit(model, g, corr, metric, est, zero, k=3, warn_below=-2.0)
    assert math.isnan(result.recall_at_k) and result.k == 0
