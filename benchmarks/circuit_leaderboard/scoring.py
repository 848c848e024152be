"""The leaderboard's scoring (ROC AUC, the selection rule, faithfulness of a circuit) and its tables."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from typing import Any

from hookgnn.circuits import Circuit, evaluate
from hookgnn.metrics import faithfulness
from hookgnn.patching import MessageEdge
from circuit_leaderboard.methods import Case, Found, Method

TARGET = 0.9
COLS = ("auc", "precision", "recall", "recall_min", "sufficient", "faithfulness", "own_F", "size", "cost")


def roc_auc(scores: dict[MessageEdge, float], circuit: frozenset[MessageEdge]) -> float:
    """ROC AUC of |score| against membership (Mann-Whitney; ties count 1/2); NaN without both classes."""
    pos = [abs(v) for m, v in scores.items() if m in circuit]
    neg = [abs(v) for m, v in scores.items() if m not in circuit]
    if not pos or not neg:
        return float("nan")
    wins = sum(1.0 if a > b else 0.5 if a == b else 0.0 for a in pos for b in neg)
    return wins / (len(pos) * len(neg))


class Evaluator:
    """Faithfulness of message circuits of one case, by :func:`~hookgnn.circuits.evaluate`."""

    def __init__(self, case: Case) -> None:
        self.case = case
        self.universe = case.universe
        self.m_full = self.metric(frozenset(self.universe))
        self.m_empty = self.metric(frozenset())

    def metric(self, kept: frozenset[MessageEdge]) -> float:
        """Noising: the clean run with every message outside ``kept`` ablated; denoising: the corrupted run
        with the messages of ``kept`` patched from the clean run (the query is read from the graph: both
        graphs of a pair share it)."""
        c = self.case
        if c.direction == "denoising":
            rest = Circuit.of(m for m in self.universe if m not in kept)
            return evaluate(c.gt.model, c.pair.corrupted, c.pair.clean, c.gt.metric, rest, self.universe, "resample")
        return evaluate(c.gt.model, c.pair.clean, c.pair.corrupted, c.gt.metric, Circuit.of(kept), self.universe,
                        c.ablation, c.dataset)  # type: ignore[arg-type]

    def faithfulness(self, kept: frozenset[MessageEdge]) -> float:
        return float(faithfulness(self.metric(kept), self.m_full, self.m_empty))


def select(scores: dict[MessageEdge, float], ev: Evaluator) -> tuple[frozenset[MessageEdge], float]:
    """The smallest top-n of the nonzero scores (by |score|) with faithfulness >= TARGET, and its faithfulness;
    all nonzero-scored messages when no n reaches it."""
    ranked = [m for m, v in sorted(scores.items(), key=lambda kv: -abs(kv[1])) if v != 0.0]
    f = ev.faithfulness(frozenset())
    for n in range(1, len(ranked) + 1):
        f = ev.faithfulness(frozenset(ranked[:n]))
        if f >= TARGET:
            return frozenset(ranked[:n]), f
    return frozenset(ranked), f


def score_case(method: Method, case: Case, found: Found) -> dict[str, float]:
    known = case.pair.circuit_for(case.direction)  # type: ignore[arg-type]
    sufficient = case.pair.sufficient_for(case.direction)  # type: ignore[arg-type]
    if found.circuit is None and found.scores is None:  # the method refuses this direction x ablation
        return dict.fromkeys(COLS[:-1], float("nan"))
    ev = Evaluator(case)
    if found.circuit is not None:
        chosen, faith = found.circuit, ev.faithfulness(found.circuit)
    else:
        assert found.scores is not None
        chosen, faith = select(found.scores, ev)
    auc = roc_auc(found.scores, known) if found.scores is not None else float("nan")
    hit = len(chosen & known)
    whole = float(any(s <= chosen for s in sufficient))
    best = max(len(chosen & s) / len(s) for s in sufficient)
    return {"auc": auc, "precision": hit / len(chosen) if chosen else float("nan"), "recall": hit / len(known),
            "recall_min": best, "sufficient": whole, "faithfulness": faith, "own_F": found.own,
            "size": float(len(chosen))}


def timed(fn: Callable[[], Found], runs: int) -> tuple[Found, float]:
    """``fn()``'s result and its median wall time over ``runs`` calls."""
    times, out = [], None
    for _ in range(runs):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    assert out is not None
    return out, statistics.median(times)


def _median(xs: list[float]) -> float:
    xs = [x for x in xs if x == x]
    return statistics.median(xs) if xs else float("nan")


def _mean(xs: list[float]) -> float:
    xs = [x for x in xs if x == x]
    return sum(xs) / len(xs) if xs else float("nan")


def _fmt(x: float) -> str:
    return "-" if x != x else f"{x:.2f}"


def _line(r: dict[str, Any]) -> str:
    return (f"{r['ground_truth']:22s} {r['ablation']:9s} {r['direction']:10s} {r['method']:11s} "
            + " ".join(f"{c}={_fmt(r[c])}" for c in COLS))


def markdown(result: dict[str, Any]) -> str:
    out = [f"Circuit leaderboard on hookgnn.groundtruth: {result['pairs']} pairs per ground truth (seed "
           f"{result['seed']}); selection: smallest top-n of nonzero |scores| with faithfulness >= "
           f"{result['target']} (else every nonzero-scored message); cost: method time / exact single sweep time "
           f"(median of {result['runs']} runs, then over pairs). Machine: {result['machine']}.", "",
           "Known circuit's own faithfulness:", "", "| ground truth | ablation | faithfulness |", "|---|---|---|"]
    out += [f"| {k['ground_truth']} | {k['ablation']} | {_fmt(k['faithfulness'])} |" for k in result["known"]]
    out += ["", "| ground truth | ablation | direction | method | ROC AUC | precision | recall | recall (best minimal) "
            "| sufficient | faithfulness | own F | size | cost |", "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    out += [f"| {r['ground_truth']} | {r['ablation']} | {r['direction']} | {r['method']} | "
            + " | ".join(_fmt(r[c]) for c in COLS) + " |" for r in result["rows"]]
    if result["or"]:
        out += ["", "redundancy on learn_mask's circuit (resample): fraction of pairs whose OR groups name every "
                "message of both paths (default candidates; every unit a candidate), and the mean number of groups:",
                "", "| ground truth | direction | both paths named | with candidates=universe | groups |",
                "|---|---|---|---|---|"]
        out += [f"| {r['ground_truth']} | {r['direction']} | {_fmt(r['both_paths_named'])} | "
                f"{_fmt(r['both_paths_named_all'])} | {_fmt(r['groups'])} |" for r in result["or"]]
    return "\n".join(out) + "\n"
