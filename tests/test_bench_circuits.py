"""benchmarks/bench_circuits.py: its ROC AUC against a hand count, its selection rule, and its
registry taking a method that returns its own circuit (as learned masks and pruning will)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

from hookgnn.graph import Graph
from hookgnn.groundtruth import ground_truth
from hookgnn.patching import MessageEdge

ROOT = Path(__file__).resolve().parents[1]
spec = importlib.util.spec_from_file_location("bench_circuits", ROOT / "benchmarks" / "bench_circuits.py")
bench = importlib.util.module_from_spec(spec)
sys.modules["bench_circuits"] = bench
spec.loader.exec_module(bench)


def test_roc_auc_counts_pairs_and_half_ties() -> None:
    a, b, c, d = (MessageEdge(0, i, 0, 1) for i in range(4))
    # positives {a, b} with |scores| 3, 1; negatives {c, d} with 1, 0: pairs won 1 + 1 + 0.5 + 1 of 4
    assert bench.roc_auc({a: -3.0, b: 1.0, c: 1.0, d: 0.0}, frozenset({a, b})) == 3.5 / 4


def _case(direction: str = "noising", ablation: str = "resample"):
    gt = ground_truth("or_reachability")
    pair = gt.sample_pairs(1, seed=0)[0]
    return bench.Case(gt, pair, direction, ablation, Graph.collate([pair.clean, pair.corrupted]))


def test_a_method_returning_its_own_circuit_is_scored_as_it_is() -> None:
    case = _case()
    oracle = bench.register(bench.Method("oracle", lambda c: bench.Found(circuit=c.pair.circuit), uses_ablation=True))
    try:
        got = bench.score_case(oracle, case, oracle.run(case))
    finally:
        del bench.METHODS["oracle"]
    assert (got["precision"], got["recall"], got["sufficient"], got["size"]) == (1.0, 1.0, 1.0, 4.0)
    assert got["faithfulness"] == pytest.approx(1.0, rel=1e-6, abs=1e-6)
    assert got["auc"] != got["auc"]  # no scores, no AUC


def test_exact_noising_scores_select_nothing_on_the_or_case() -> None:
    case = _case()
    found = bench.run_exact(case)
    assert set(found.scores) == set(case.universe) and not any(found.scores.values())
    chosen, faith = bench.select(found.scores, bench.Evaluator(case))
    assert chosen == frozenset() and faith == pytest.approx(0.0, abs=1e-6)


def test_selection_keeps_the_smallest_faithful_top_n() -> None:
    case = _case(ablation="zero")
    path = sorted(case.pair.sufficient[0])
    others = [m for m in case.universe if m not in case.pair.circuit]
    scores = {path[0]: 5.0, path[1]: 4.0, others[0]: 3.0, **{m: 0.0 for m in others[1:]}}
    chosen, faith = bench.select(scores, bench.Evaluator(case))
    assert chosen == frozenset(path) and faith == pytest.approx(1.0, abs=1e-6)


def test_acdc_entry_returns_one_known_path_and_refuses_denoising_with_zero() -> None:
    case = _case()
    method = bench.METHODS["acdc"]
    found = method.run(case)
    got = bench.score_case(method, case, found)
    # one of the two paths (either suffices): precision 1 against both, recall 1 against the best-matching one
    assert found.circuit in case.pair.sufficient
    assert (got["precision"], got["recall"], got["recall_min"], got["sufficient"]) == (1.0, 0.5, 1.0, 1.0)
    assert got["own_F"] == pytest.approx(1.0, abs=1e-6) and got["faithfulness"] == pytest.approx(1.0, abs=1e-6)
    refused = bench.score_case(method, _case("denoising", "zero"), method.run(_case("denoising", "zero")))
    assert all(v != v for v in refused.values())  # every column NaN: shown as "-"


def test_denoising_rows_are_scored_against_the_denoising_ground_truth() -> None:
    """Regression: denoising rows were scored against the noising circuit (recall 0.25 for a sufficient single
    message) with the noising faithfulness (0 for it)."""
    case = _case("denoising")
    method = bench.METHODS["acdc"]
    found = method.run(case)
    got = bench.score_case(method, case, found)
    assert found.circuit in case.pair.sufficient_for("denoising") and len(found.circuit) == 1
    assert (got["precision"], got["recall_min"], got["sufficient"]) == (1.0, 1.0, 1.0)
    assert got["recall"] == 1 / len(case.pair.circuit_for("denoising"))  # one of the four sufficient messages
    assert got["faithfulness"] == pytest.approx(1.0, abs=1e-6) and got["own_F"] == pytest.approx(1.0, abs=1e-6)
    empty = bench.Evaluator(case).faithfulness(frozenset())
    assert empty == pytest.approx(0.0, abs=1e-6)  # nothing patched: the corrupted run
