"""Benchmark: circuit size at faithfulness >= 0.9 on trained reasoners, every method, and time vs the exact sweep.

On trained MPNN reasoners for ``--tasks`` (Bellman-Ford and BFS; trained here, ``--train-steps``), for
``--pairs`` Erdos-Renyi graphs of each of ``--nodes`` sizes (p = 4 / n) with a resampled source, metric:
log-probability of the true pointers (``pi``), universe: every message (round x edge) of the 16 rounds:

* ranking methods, each cut at the smallest top-n whose faithfulness reaches 0.9 (every prefix scored
  exactly with 0/1 gates; that scan is not timed): ``exact`` (the exact single-message sweep,
  ``patch(..., messages(model))``, batched), ``AtP``, ``EAP-IG16`` (``eap`` at message level, 16 IG
  steps), ``AtP*1`` (``atp_star``, one exact round);
* ``acdc``: :func:`hookgnn.circuits.acdc` with ``target=0.9`` (its default, hierarchical ``schedule="groups"``);
* ``acdc_units``: the same with ``schedule="units"`` (the one-at-a-time ACDC walk);
* ``acdc_atp``: :func:`hookgnn.circuits.acdc` with ``target=0.9``, walking the units in the order of their AtP
  |score| (least important first; the AtP pass is timed with it) and 256 copies per forward;
* ``learn_mask``: :func:`hookgnn.circuits.learn_mask` with ``target=0.9`` (its final exact pruning pass included).

Per task x size x method: the median circuit size over the pairs whose circuit reaches 0.9 (a ranking
that reaches it only with every message counts as the whole universe), how many pairs reached it, the
median of ``top-n exact / size`` (x smaller) and the median of ``time / exact sweep time`` (wall clock, and
CPU time of this process: the machine is shared, and CPU time is what other jobs disturb least). Every
faithfulness is exact (``evaluate`` or 0/1 gates). Times are the median of ``--repeats`` runs on a
shared machine (other jobs ran at the same time): read the ratios, not the seconds.

    python benchmarks/bench_discover.py --json /tmp/discover.json       # 16 and 64 nodes, 5 pairs, 3 runs
    python benchmarks/bench_discover.py --quick                         # 16 nodes, 5 pairs, one run
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from collections.abc import Callable
from typing import Any

import torch

from hookgnn.attribution import atp_star, attribute, eap
from hookgnn.circuits import acdc, learn_mask
from hookgnn.circuits.discover import as_pairs, gated
from hookgnn.metrics import PointerLogProb
from hookgnn.metrics.per_graph import faithfulness
from hookgnn.patching import MessageEdge, message_edges, messages, patch
from hookgnn.tasks import get_task
from hookgnn.tasks.corruptions import sample_pairs
from hookgnn.training import TrainConfig, train

RANKINGS = ("exact", "AtP", "EAP-IG16", "AtP*1")
FINDERS = ("acdc", "acdc_units", "acdc_atp", "learn_mask")


def trained(task: str, steps: int, seed: int) -> Any:
    cfg = TrainConfig(task=task, processor="mpnn", d_hidden=16, max_steps=16, sizes=(8, 12), batch_size=8,
                      sampler_kwargs={"p": 0.3}, steps=steps, rounds=16, hint_weight=0.0, lr=3e-3, seed=seed,
                      progress=False)
    model, _ = train(cfg)
    return model.eval()


def timed(fn: Callable[[], Any], repeats: int) -> tuple[tuple[float, float], Any]:
    """Median wall-clock and CPU seconds of ``repeats`` runs, and the last result."""
    times, cpu, out = [], [], None
    for _ in range(repeats):
        t0, c0 = time.perf_counter(), time.process_time()
        out = fn()
        times.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
    return (statistics.median(times), statistics.median(cpu)), out


def smallest_top_n(model: Any, clean: Any, corr: Any, metric: Any, ranked: list, universe: list, direction: str,
                   target: float) -> tuple[int | None, float]:
    """The smallest n whose top-n circuit reaches ``target`` (every prefix, batched 0/1 gates), and its faithfulness."""
    run = gated(model, as_pairs(clean, corr), metric, universe, "resample", direction, None, 64)
    pos = {u: i for i, u in enumerate(universe)}
    n = len(universe)
    with torch.no_grad():
        ends = run.metrics(torch.stack([torch.ones(n), torch.zeros(n)]))
        gates = torch.zeros(n + 1, n)
        for k, u in enumerate(ranked):
            gates[k + 1:, pos[u]] = 1.0
        f = faithfulness(run.metrics(gates), float(ends[0]), float(ends[1]))
    hits = (f >= target).nonzero().flatten()
    return (int(hits[0]), float(f[hits[0]])) if len(hits) else (None, float(f.max()))


def rankings(model: Any, clean: Any, corr: Any, metric: Any, universe: list[MessageEdge], d: str,
             repeats: int) -> dict[str, tuple[tuple[float, float], dict[MessageEdge, float]]]:
    """Each ranking method's time and its score per message."""
    carriers = list(messages(model).hooks)

    def by_round_edge(values: torch.Tensor) -> dict[MessageEdge, float]:
        v = values.double()
        return {u: float(v[u.round, u.edge]) for u in universe}

    runs: dict[str, Callable[[], dict[MessageEdge, float]]] = {
        "exact": lambda: by_round_edge(patch(model, clean, corr, metric, messages(model), direction=d).values),
        "AtP": lambda: by_round_edge(attribute(model, clean, corr, metric, ig_steps=0, names_filter=carriers,
                                               direction=d).rows(carriers).values),
        "EAP-IG16": lambda: {e: v for e, v in eap(model, clean, corr, metric, ig_steps=16, level="message",
                                                  direction=d).as_dict().items() if isinstance(e, MessageEdge)},
        "AtP*1": lambda: by_round_edge(atp_star(model, clean, corr, metric, exact_rounds=1, direction=d).values),
    }
    return {name: timed(fn, repeats) for name, fn in runs.items()}


def bench_pair(args: argparse.Namespace, model: Any, task: str, nodes: int, seed: int) -> dict[str, Any]:
    clean, corr = sample_pairs(get_task(task), 1, "resample_source", "erdos_renyi", seed=seed, n=nodes, p=4.0 / nodes)
    metric = PointerLogProb("pi")
    d = args.direction
    uni = message_edges(clean.edge_index, range(model.num_rounds), model)
    row: dict[str, Any] = {"task": task, "nodes": nodes, "seed": seed, "edges": clean.num_edges, "units": len(uni),
                           "direction": d}
    for name, ((secs, cpu), scores) in rankings(model, clean, corr, metric, uni, d, args.repeats).items():
        ranked = sorted(uni, key=lambda u: -abs(scores.get(u, 0.0)))
        n, f = smallest_top_n(model, clean, corr, metric, ranked, uni, d, args.target)
        row[name] = {"s": secs, "cpu": cpu, "size": n, "faithfulness": f}

    def found_row(timing: tuple[float, float], found: Any) -> dict[str, Any]:
        return {"s": timing[0], "cpu": timing[1], "size": found.size, "faithfulness": found.faithfulness,
                "forwards": found.forwards, "copies": found.copies}
    for name, schedule in (("acdc", "groups"), ("acdc_units", "units")):
        if name not in args.finders:
            continue
        def run(s: str = schedule) -> Any:
            return acdc(model, clean, corr, metric, uni, target=args.target, threshold=args.threshold, direction=d,
                        schedule=s)  # type: ignore[arg-type]
        row[name] = found_row(*timed(run, args.repeats))
    carriers = list(messages(model).hooks)

    def seeded() -> Any:
        vals = attribute(model, clean, corr, metric, ig_steps=0, names_filter=carriers,
                         direction=d).rows(carriers).values.double().abs()
        order = sorted(uni, key=lambda u: float(vals[u.round, u.edge]))  # least important first
        return acdc(model, clean, corr, metric, uni, target=args.target, threshold=args.threshold, direction=d,
                    order=order, copies=256, schedule="units")
    if "acdc_atp" in args.finders:
        row["acdc_atp"] = found_row(*timed(seeded, args.repeats))
    if "learn_mask" in args.finders:
        row["learn_mask"] = found_row(*timed(lambda: learn_mask(model, clean, corr, metric, uni, target=args.target,
                                                            steps=args.mask_steps, lr=args.lr, sparsity=args.sparsity,
                                                            direction=d, progress=False), args.repeats))
    for name in (*RANKINGS, *args.finders):
        r = row[name]
        r["reached"] = r["size"] is not None and r["faithfulness"] >= args.target - 1e-9
    print(f"{task} n={nodes} seed={seed}: " + ", ".join(
        f"{m} {row[m]['size']} (F {row[m]['faithfulness']:.2f}, {row[m]['s'] / row['exact']['s']:.1f}x)"
        for m in (*RANKINGS, *args.finders)), flush=True)
    return row


def summary(rows: list[dict[str, Any]], args: argparse.Namespace) -> list[dict[str, Any]]:
    """Per task x size x method: median size (pairs that reached the target), pairs reached, x smaller, time ratio."""
    out = []
    for task in args.tasks:
        for nodes in args.nodes:
            group = [r for r in rows if r["task"] == task and r["nodes"] == nodes]
            if not group:
                continue
            for m in (*RANKINGS, *args.finders):
                sizes = [r[m]["size"] if r[m]["reached"] else r["units"] for r in group]
                smaller = [(r["exact"]["size"] if r["exact"]["reached"] else r["units"]) / max(s, 1)
                           for r, s in zip(group, sizes)]
                out.append({"task": task, "nodes": nodes, "method": m, "pairs": len(group),
                            "units": statistics.median(r["units"] for r in group),
                            "reached": sum(r[m]["reached"] for r in group),
                            "size": statistics.median(sizes), "x_smaller": statistics.median(smaller),
                            "faithfulness": statistics.median(r[m]["faithfulness"] for r in group),
                            "time_ratio": statistics.median(r[m]["s"] / r["exact"]["s"] for r in group),
                            "cpu_ratio": statistics.median(r[m]["cpu"] / r["exact"]["cpu"] for r in group),
                            "sweep_s": statistics.median(r["exact"]["s"] for r in group)})
    return out


def print_table(summ: list[dict[str, Any]], args: argparse.Namespace) -> None:
    print(f"\ncircuit at faithfulness >= {args.target} (trained MPNN reasoners, {args.direction}, resample; "
          f"median over {args.pairs} pairs; shared 2-core machine, load average {os.getloadavg()[0]:.1f} at the "
          f"end, {args.repeats} timed run(s) each)")
    print(f"{'workload':34} {'peer: exact':>12} {'hookgnn':>10} {'x smaller':>10} {'F':>6} {'reached':>8} "
          f"{'time / sweep':>13} {'cpu / sweep':>12}")
    for r in summ:
        peer = next(x for x in summ if x["task"] == r["task"] and x["nodes"] == r["nodes"] and x["method"] == "exact")
        w = f"{r['task']} n={r['nodes']} {r['method']} (of {r['units']:.0f})"
        print(f"{w:34} {peer['size']:>12.0f} {r['size']:>10.0f} {r['x_smaller']:>9.2f}x {r['faithfulness']:>6.3f} "
              f"{r['reached']:>4}/{r['pairs']:<3} {r['time_ratio']:>12.2f}x {r['cpu_ratio']:>11.2f}x")
    print("size: median over pairs (a pair whose circuit never reaches the target counts as every message); "
          "time / sweep: method time over the exact single sweep's, wall clock and CPU of this process (ranking "
          "methods without their top-n scan)")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--tasks", nargs="+", default=["bellman_ford", "bfs"], choices=("bellman_ford", "bfs"))
    p.add_argument("--nodes", type=int, nargs="+", default=[16, 64])
    p.add_argument("--pairs", type=int, default=5)
    p.add_argument("--quick", action="store_true", help="16 nodes, short training, 50 mask steps, one run")
    p.add_argument("--train-steps", type=int, default=300)
    p.add_argument("--direction", default="denoising", choices=("denoising", "noising"))
    p.add_argument("--target", type=float, default=0.9)
    p.add_argument("--threshold", type=float, default=0.02, help="acdc: largest faithfulness move of one removal")
    p.add_argument("--mask-steps", type=int, default=100)
    p.add_argument("--lr", type=float, default=0.2)
    p.add_argument("--sparsity", type=float, default=4.0)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--finders", nargs="+", default=list(FINDERS), choices=FINDERS)
    p.add_argument("--json", default=None)
    args = p.parse_args()
    if args.quick:
        args.nodes, args.train_steps, args.mask_steps, args.repeats = [16], 100, 50, 1
    torch.set_num_threads(1)
    rows = []
    for task in args.tasks:
        torch.manual_seed(args.seed)
        model = trained(task, args.train_steps, args.seed)
        rows += [bench_pair(args, model, task, n, args.seed + i) for n in args.nodes for i in range(args.pairs)]
    summ = summary(rows, args)
    print_table(summ, args)
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"rows": rows, "summary": summ, "table": table(summ, args)}, f, indent=1)


def table(summ: list[dict[str, Any]], args: argparse.Namespace) -> list[dict[str, Any]]:
    """run_all's rows: circuit size against top-n of exact single effects, time against the exact sweep."""
    out = []
    for r in summ:
        if r["method"] == "exact":
            continue
        where = f"MPNN {r['task']} n={r['nodes']}, {r['units']:.0f} messages, {args.direction}, {r['pairs']} pairs"
        out.append(dict(workload=f"{r['method']}: circuit size at F >= {args.target}, {where}",
                        peer="top-n of exact single effects", peer_value=r["size"] * r["x_smaller"],
                        hookgnn_value=r["size"], unit="units (median)", ratio=r["x_smaller"],
                        ratio_means="peer / hookgnn (x smaller), median over pairs", runs=args.repeats))
        out.append(dict(workload=f"{r['method']}: time, {where}", peer="exact single sweep (batched)",
                        peer_value=r["sweep_s"], hookgnn_value=r["sweep_s"] * r["time_ratio"], unit="s",
                        ratio=1.0 / r["time_ratio"], ratio_means="peer / hookgnn (speed-up), median over pairs",
                        runs=args.repeats))
    return out


if __name__ == "__main__":
    main()
