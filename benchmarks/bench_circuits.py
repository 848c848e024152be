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

Methods live in :data:`METHODS` (a registry, in ``benchmarks/circuit_leaderboard/methods.py``; the
scoring and the tables in ``circuit_leaderboard/scoring.py``): an entry is a :class:`Method` whose
``run`` gets a :class:`Case` and returns :class:`Found` (scores per message and/or its own circuit),
added with :func:`register`. ``acdc`` (iterative exact pruning) and ``learn_mask`` (learned gates) return
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
import sys
from pathlib import Path
from typing import Any

import torch

from hookgnn.circuits import learn_mask, redundancy
from hookgnn.graph import Graph
from hookgnn.groundtruth import GROUND_TRUTHS, GroundTruth, Pair, ground_truth

sys.path.insert(0, str(Path(__file__).resolve().parent))  # the helpers in benchmarks/circuit_leaderboard/
from circuit_leaderboard.methods import MASK_STEPS, MASK_TARGET, METHODS, Case, Found  # noqa: E402
from circuit_leaderboard.methods import Method, register, run_exact  # noqa: E402, F401  (for the tests)
from circuit_leaderboard.scoring import (  # noqa: E402, F401
    COLS, TARGET, Evaluator, _line, _mean, _median, markdown, roc_auc, score_case, select, timed,
)

ABLATIONS = ("zero", "resample", "mean")
DIRECTIONS = ("noising", "denoising")


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
