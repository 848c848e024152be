"""Leaderboard: circuit-finding methods against the ground truths of :mod:`hookgnn.groundtruth`.

For every method x ground truth x ablation (zero, resample, mean) x direction (noising,
denoising), over ``--pairs`` clean/corrupted pairs of each ground truth:

* ``auc``: ROC AUC of the method's |score| of every message (round x edge) against the
  known message-level circuit of the row's direction (``pair.circuit_for``; Mann-Whitney, ties count one half);
* ``precision`` / ``recall``: precision and recall of the circuit the method selects. Selection rule for
  a method that scores (every method today): rank the messages with a nonzero score by
  |score| and keep the *smallest top n whose faithfulness reaches 0.9* (re-evaluated exactly
  with :func:`hookgnn.circuits.evaluate` under the row's ablation); if no n reaches it, every
  nonzero-scored message. A method that returns its own circuit (learned masks, iterative
  pruning) is taken as it is;
* ``recall_min``: recall against the best-matching minimal sufficient subset
  (:math:`\\max_S |C \\cap S| / |S|` over ``pair.sufficient_for(direction)``): with precision (against the union) the
  discover tests' definition of "the known circuit" for OR cases: either path, or both, is the circuit;
* ``sufficient``: the fraction of pairs whose selected circuit holds a whole minimal sufficient subset
  of the known circuit (``pair.sufficient_for(direction)``: one path of the OR case is enough, so a smallest
  faithful circuit there has recall 0.5 and ``sufficient`` 1);
* ``faithfulness``: that circuit's normalized faithfulness
  :math:`(m(C) - m(\\emptyset)) / (m(\\text{full}) - m(\\emptyset))` under the row's ablation;
* ``own_F``: for ``acdc`` and ``learn_mask``, the found circuit's exact faithfulness in the method's
  own direction (``Discovered.faithfulness``);
* ``size``: the circuit's number of messages (the known circuit has 3 or 4);
* ``cost``: the method's wall time over the exact single sweep's on the same pair (each the median
  of ``--runs`` calls; then the median over pairs; the selection's evaluations are not counted).
  The machine may be shared: costs are noisy.

The scoring methods do not depend on the ablation (only their selected circuit does). A first
table gives the known circuit's own faithfulness per ablation: the ground truths guarantee 1.0
under zero and resample ablation; under mean ablation a mean state may win a min or add to a sum.

Methods live in :data:`METHODS` (a registry): an entry is a :class:`Method` whose ``run`` gets a
:class:`Case` and returns :class:`Found` (scores per message and/or its own circuit), added with
:func:`register`. ``acdc`` (iterative exact pruning) and ``learn_mask`` (learned gates) return
their own circuit, found under the row's ablation and direction; both refuse denoising with zero or
mean ablation (denoising patches clean values in), shown as ``-``. For ground truths with OR
structure a last table gives :func:`hookgnn.circuits.redundancy` on ``learn_mask``'s circuit
(resample): whether its OR groups name every message of both paths (noising: pairs; denoising: groups
of up to 4, as breaking a patched 2-message path takes both of its messages).

Known circuit per direction: ``pair.circuit_for(direction)`` / ``pair.sufficient_for(direction)``.
Denoising rows are run under resample ablation only (denoising patches the clean run's values in) and
their faithfulness is the denoising one (the corrupted run with the circuit's messages patched from the
clean run). ``acdc`` runs with ``threshold=1e-3`` and ``learn_mask`` with ``target=0.999``: the known
circuits are exactly faithful, and Bellman-Ford denoising has single messages within 1.5 % of that.

    python benchmarks/bench_circuits.py --quick
    python benchmarks/bench_circuits.py --pairs 5 --json out/bench_circuits.json
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from hookgnn.attribution import atp_star, attribute, eap
from hookgnn.circuits import Circuit, acdc, evaluate, learn_mask, redundancy, verify
from hookgnn.graph import Graph
from hookgnn.groundtruth import GROUND_TRUTHS, GroundTruth, Pair, ground_truth
from hookgnn.metrics import faithfulness
from hookgnn.patching import HookScores, MessageEdge, messages, patch

ABLATIONS = ("zero", "resample", "mean")
DIRECTIONS = ("noising", "denoising")
TARGET = 0.9


@dataclass(frozen=True)
class Case:
    """One run of a method: a ground truth, a pair, a direction and an ablation (``dataset``: for mean ablation)."""

    gt: GroundTruth
    pair: Pair
    direction: str
    ablation: str
    dataset: Graph

    @property
    def universe(self) -> list[MessageEdge]:
        return self.gt.messages(self.pair.clean)


@dataclass(frozen=True)
class Found:
    """What a method found: ``scores`` per message (``None``: it scores nothing) and/or its own ``circuit``
    (``own``: that circuit's exact faithfulness in the method's own direction and ablation, if it reports one)."""

    scores: dict[MessageEdge, float] | None = None
    circuit: frozenset[MessageEdge] | None = None
    own: float = float("nan")


@dataclass(frozen=True)
class Method:
    """A leaderboard entry: ``run(case) -> Found``; ``uses_ablation``: whether it depends on ``case.ablation``."""

    name: str
    run: Callable[[Case], Found]
    uses_ablation: bool = False


METHODS: dict[str, Method] = {}


def register(method: Method) -> Method:
    """Add ``method`` to the leaderboard (by name, replacing one of the same name)."""
    METHODS[method.name] = method
    return method


def _by_message(case: Case, scores: HookScores) -> dict[MessageEdge, float]:
    """Round x edge scores (rows in round order, as ``messages(model)`` selects them) keyed by message."""
    vals = scores.values.double()
    return {m: float(vals[m.round, m.edge]) for m in case.universe}


def _carriers(case: Case) -> list[str]:
    return list(messages(case.gt.model).hooks)


def run_exact(case: Case) -> Found:
    gt, p = case.gt, case.pair
    s = patch(gt.model, p.clean, p.corrupted, gt.metric, messages(gt.model), direction=case.direction)
    return Found(_by_message(case, s))


def run_atp(case: Case) -> Found:
    gt, p = case.gt, case.pair
    attr = attribute(gt.model, p.clean, p.corrupted, gt.metric, ig_steps=0, names_filter=_carriers(case),
                     direction=case.direction)
    return Found(_by_message(case, attr.rows(_carriers(case))))


def run_eap_ig(case: Case) -> Found:
    gt, p = case.gt, case.pair
    s = eap(gt.model, p.clean, p.corrupted, gt.metric, ig_steps=16, level="message", direction=case.direction)
    return Found({e: v for e, v in s.as_dict().items() if isinstance(e, MessageEdge)})


def run_atp_star(exact_rounds: int) -> Callable[[Case], Found]:
    def run(case: Case) -> Found:
        gt, p = case.gt, case.pair
        s = atp_star(gt.model, p.clean, p.corrupted, gt.metric, exact_rounds=exact_rounds, direction=case.direction)
        return Found(_by_message(case, s))
    return run


def run_verify(case: Case) -> Found:
    """Filter then verify: AtP, then the top k = max(4, 10%) messages re-scored by exact patches."""
    gt, p = case.gt, case.pair
    hooks = _carriers(case)
    est = attribute(gt.model, p.clean, p.corrupted, gt.metric, ig_steps=0, names_filter=hooks,
                    direction=case.direction).rows(hooks)
    k = max(4, len(case.universe) // 10)
    v = verify(gt.model, p.clean, p.corrupted, gt.metric, est, k=k)
    merged = est.values.clone()
    for c, x in v.exact.items():
        merged[hooks.index(c.hook), c.index] = x
    return Found(_by_message(case, HookScores(merged, est.hooks, est.axes, est.baseline, est.direction)))


#: learn_mask's settings on the ground truths (exact circuits: a high target, few steps suffice)
#: The known circuits are exactly faithful (F = 1); Bellman-Ford denoising has single messages within 1.5 % of
#: that, so the discovery methods run with a tight tolerance.
MASK_TARGET, MASK_STEPS, ACDC_THRESHOLD = 0.999, 100, 1e-3


def _supported(case: Case) -> bool:
    """acdc and learn_mask keep a circuit denoising only by patching clean values in (resample)."""
    return case.direction == "noising" or case.ablation == "resample"


def run_discovery(find: Callable[..., Any], **kwargs: Any) -> Callable[[Case], Found]:
    """``acdc`` or ``learn_mask`` in the row's direction and ablation: its own circuit."""
    def run(case: Case) -> Found:
        if not _supported(case):
            return Found()
        gt, p = case.gt, case.pair
        found = find(gt.model, p.clean, p.corrupted, gt.metric, case.universe, direction=case.direction,
                     ablation=case.ablation, dataset=case.dataset, **kwargs)
        return Found(circuit=frozenset(found.circuit.items()), own=found.faithfulness)
    return run


for _m in (Method("exact", run_exact), Method("AtP", run_atp), Method("EAP-IG16", run_eap_ig),
           Method("AtP*1", run_atp_star(1)), Method("AtP*2", run_atp_star(2)), Method("AtP+verify", run_verify),
           Method("acdc", run_discovery(acdc, threshold=ACDC_THRESHOLD), uses_ablation=True),
           Method("learn_mask", run_discovery(learn_mask, target=MASK_TARGET, steps=MASK_STEPS, progress=False),
                  uses_ablation=True)):
    register(_m)


# --------------------------------------------------------------------------------- scoring
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


def or_report(gt: GroundTruth, sampled: list[Pair]) -> list[dict[str, Any]]:
    """For each direction: the fraction of pairs where :func:`redundancy` on ``learn_mask``'s circuit
    (resample) names every message of every path of the OR case (its groups' members are ``pair.circuit``),
    with its default candidates and with ``candidates=universe``, and the mean number of groups (default)."""
    out = []
    for d in DIRECTIONS:
        named, named_all, groups = [], [], []
        for p in sampled:
            uni = gt.messages(p.clean)
            mask = learn_mask(gt.model, p.clean, p.corrupted, gt.metric, uni, direction=d,  # type: ignore[arg-type]
                              target=MASK_TARGET, steps=MASK_STEPS, progress=False)
            size = 2 if d == "noising" else 4  # denoising, breaking a patched 2-message path takes both messages
            rep = redundancy(gt.model, p.clean, p.corrupted, gt.metric, uni, mask, max_group=size)
            named.append(float(rep.members() == p.circuit))
            groups.append(float(len(rep.groups)))
            if d == "denoising":  # groups of 4 of every unit: beyond MAX_GROUPS
                named_all.append(float("nan"))
                continue
            every = redundancy(gt.model, p.clean, p.corrupted, gt.metric, uni, mask, candidates=uni)
            named_all.append(float(every.members() == p.circuit))
        out.append({"ground_truth": gt.name, "direction": d, "both_paths_named": _mean(named),
                    "both_paths_named_all": _mean(named_all), "groups": _mean(groups), "pairs": len(sampled)})
        print(f"{gt.name:22s} redundancy ({d}): both paths named in {out[-1]['both_paths_named']:.2f} of pairs "
              f"({out[-1]['both_paths_named_all']:.2f} with every unit a candidate), {out[-1]['groups']:.1f} groups",
              flush=True)
    return out


def run(names: list[str], methods: list[str], pairs: int, seed: int, runs: int) -> dict[str, Any]:
    rows: list[dict[str, Any]] = []
    known_rows: list[dict[str, Any]] = []
    or_rows: list[dict[str, Any]] = []
    for name in names:
        gt = ground_truth(name)
        sampled = gt.sample_pairs(pairs, seed)
        dataset = Graph.collate([g for p in sampled for g in (p.clean, p.corrupted)])
        if gt.structure == "or":
            or_rows += or_report(gt, sampled)
        found: dict[tuple[str, int, str], tuple[Found, float]] = {}
        exact_time: dict[tuple[int, str], float] = {}
        for i, p in enumerate(sampled):
            for d in DIRECTIONS:
                case = Case(gt, p, d, "resample", dataset)
                for mname in dict.fromkeys(["exact", *methods]):
                    if not METHODS[mname].uses_ablation:
                        found[(mname, i, d)] = timed(lambda: METHODS[mname].run(case), runs)
                exact_time[(i, d)] = found[("exact", i, d)][1]
        for abl in ABLATIONS:
            known_rows.append({"ground_truth": name, "ablation": abl, "faithfulness": _mean(
                [Evaluator(Case(gt, p, "noising", abl, dataset)).faithfulness(p.circuit) for p in sampled])})
            for d in DIRECTIONS:
                if d == "denoising" and abl != "resample":
                    continue  # denoising patches the clean run's values in: its ground truth is resample's
                for mname in methods:
                    method, per, costs = METHODS[mname], [], []
                    for i, p in enumerate(sampled):
                        case = Case(gt, p, d, abl, dataset)
                        f, secs = found[(mname, i, d)] if not method.uses_ablation else timed(lambda: method.run(case), runs)
                        per.append(score_case(method, case, f))
                        costs.append(secs / exact_time[(i, d)] if per[-1]["size"] == per[-1]["size"] else float("nan"))
                    rows.append({"ground_truth": name, "ablation": abl, "direction": d, "method": mname,
                                 **{k: _mean([r[k] for r in per]) for k in per[0]},
                                 "cost": _median(costs), "pairs": len(sampled)})
                    print(_line(rows[-1]), flush=True)
    return {"rows": rows, "known": known_rows, "or": or_rows, "pairs": pairs, "seed": seed, "target": TARGET, "runs": runs,
            "machine": f"{platform.machine()} {platform.processor() or ''}, torch {torch.__version__}, "
                       f"{torch.get_num_threads()} threads (shared machine: costs are noisy)",
            "table": _cost_rows(rows, methods)}


def _cost_rows(rows: list[dict[str, Any]], methods: list[str]) -> list[dict[str, Any]]:
    """run_all's rows: each method's cost relative to the exact sweep (median over ground truths and directions)."""
    out = []
    for m in methods:
        if m == "exact":
            continue
        costs = [r["cost"] for r in rows if r["method"] == m and r["ablation"] == "resample" and r["cost"] == r["cost"]]
        if costs:
            out.append({"workload": f"circuit leaderboard: {m} (median over ground truths x directions)",
                        "peer": "exact single sweep", "peer_value": 1.0, "hookgnn_value": statistics.median(costs),
                        "unit": "x exact time", "ratio": statistics.median(costs),
                        "ratio_means": f"{m} time / exact sweep time", "runs": len(costs)})
    return out


COLS = ("auc", "precision", "recall", "recall_min", "sufficient", "faithfulness", "own_F", "size", "cost")


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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="2 pairs per ground truth")
    parser.add_argument("--pairs", type=int, default=None, help="pairs per ground truth (default 5; 2 with --quick)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--runs", type=int, default=None, help="timed runs per method and pair (default 3; 1 with --quick)")
    parser.add_argument("--only", nargs="*", default=None, help=f"ground truths (of {sorted(GROUND_TRUTHS)})")
    parser.add_argument("--methods", nargs="*", default=None, help="methods of the registry (default: all)")
    parser.add_argument("--json", type=Path, default=None, help="write the results here")
    parser.add_argument("--markdown", type=Path, default=Path("out/bench_circuits.md"), help="write the table here")
    args = parser.parse_args()
    torch.set_num_threads(1)
    pairs = args.pairs or (2 if args.quick else 5)
    names = args.only or sorted(GROUND_TRUTHS)
    methods = args.methods or list(METHODS)
    unknown = sorted(set(methods) - set(METHODS)) + sorted(set(names) - set(GROUND_TRUTHS))
    if unknown:
        parser.error(f"unknown {unknown}; methods: {list(METHODS)}, ground truths: {sorted(GROUND_TRUTHS)}")
    result = run(names, methods, pairs, args.seed, args.runs or (1 if args.quick else 3))
    text = markdown(result)
    print(text)
    args.markdown.parent.mkdir(parents=True, exist_ok=True)
    args.markdown.write_text(text)
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
