"""Benchmark: circuit size at faithfulness >= 0.9, top-n of exact single effects vs acdc vs learn_mask.

On a trained MPNN Bellman-Ford reasoner (trained here; ``--train-steps``), one Erdos-Renyi graph
of ``--nodes`` nodes (p = 4 / n) with a resampled source, metric: log-probability of the true pointers,
universe: every message (round x edge) of the 16 rounds:

* ``top-n exact``: the exact single-message sweep (``patch(..., messages(model))``, batched), ranked
  by absolute effect; the size is the smallest ``n`` whose top ``n`` reach faithfulness 0.9
  (every prefix scored exactly; that scan is not timed);
* ``acdc``: :func:`hookgnn.circuits.acdc` with ``target=0.9``;
* ``learn_mask``: :func:`hookgnn.circuits.learn_mask` with ``target=0.9``.

Every faithfulness printed is exact (the circuits are re-evaluated with ``evaluate``). Times are
the median of ``--repeats`` runs on a shared machine (other jobs ran at the same time): read the
ratios, not the seconds. Table: workload, peer (the exact sweep), hookgnn (the method), ratio.

    python benchmarks/bench_discover.py --json /tmp/discover.json       # 16 and 64 nodes, 3 runs each
    python benchmarks/bench_discover.py --quick                         # 16 nodes, one run
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from typing import Any

import torch

from hookgnn.circuits import Circuit, acdc, exact_faithfulness, learn_mask, redundancy
from hookgnn.circuits.discover import as_pairs, gated
from hookgnn.metrics import PointerLogProb
from hookgnn.metrics.per_graph import faithfulness
from hookgnn.patching import message_edges, messages, patch
from hookgnn.tasks import get_task
from hookgnn.tasks.corruptions import sample_pairs
from hookgnn.training import TrainConfig, train


def trained(steps: int, seed: int) -> Any:
    cfg = TrainConfig(task="bellman_ford", processor="mpnn", d_hidden=16, max_steps=16, sizes=(8, 12), batch_size=8,
                      sampler_kwargs={"p": 0.3}, steps=steps, rounds=16, hint_weight=0.0, lr=3e-3, seed=seed,
                      progress=False)
    model, _ = train(cfg)
    return model.eval()


def timed(fn: Any, repeats: int) -> tuple[float, Any]:
    times, out = [], None
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), out


def smallest_top_n(model: Any, clean: Any, corr: Any, metric: Any, ranked: list, universe: list, direction: str,
                   target: float) -> int | None:
    """The smallest n whose top-n circuit reaches ``target`` (every prefix, batched 0/1 gates)."""
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
    return int(hits[0]) if len(hits) else None


def bench(args: argparse.Namespace, model: Any, nodes: int) -> dict[str, Any]:
    task = get_task("bellman_ford")
    clean, corr = sample_pairs(task, 1, "resample_source", "erdos_renyi", seed=args.seed, n=nodes, p=4.0 / nodes)
    metric = PointerLogProb("pi")
    d = args.direction
    uni = message_edges(clean.edge_index, range(model.num_rounds), model)
    sweep_s, sweep = timed(lambda: patch(model, clean, corr, metric, messages(model), direction=d), args.repeats)
    values = sweep.values  # [round, edge]
    ranked = sorted(uni, key=lambda u: -abs(float(values[u.round, u.edge])))
    n_top = smallest_top_n(model, clean, corr, metric, ranked, uni, d, args.target)
    f_top = (exact_faithfulness(model, clean, corr, metric, Circuit.of(ranked[:n_top]), uni, "resample", d)
             if n_top is not None else float("nan"))
    acdc_s, found_acdc = timed(lambda: acdc(model, clean, corr, metric, uni, target=args.target,
                                            threshold=args.threshold, direction=d), args.repeats)
    mask_s, found_mask = timed(lambda: learn_mask(model, clean, corr, metric, uni, target=args.target,
                                                  steps=args.mask_steps, lr=args.lr, sparsity=args.sparsity,
                                                  direction=d, progress=False), args.repeats)
    red_s, red = timed(lambda: redundancy(model, clean, corr, metric, uni, found_mask), args.repeats)
    return dict(redundancy_s=red_s, or_groups=len(red.groups), or_units=len(red.members()), nodes=nodes, edges=clean.num_edges, units=len(uni), direction=d, sweep_s=sweep_s, top_n=n_top,
                top_n_faithfulness=f_top, acdc_s=acdc_s, acdc_size=found_acdc.size,
                acdc_faithfulness=found_acdc.faithfulness, acdc_forwards=found_acdc.forwards,
                mask_s=mask_s, mask_size=found_mask.size, mask_faithfulness=found_mask.faithfulness,
                mask_forwards=found_mask.forwards)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--nodes", type=int, nargs="+", default=[16, 64])
    p.add_argument("--quick", action="store_true", help="16 nodes, short training, 50 mask steps")
    p.add_argument("--train-steps", type=int, default=300)
    p.add_argument("--direction", default="denoising", choices=("denoising", "noising"))
    p.add_argument("--target", type=float, default=0.9)
    p.add_argument("--threshold", type=float, default=0.02, help="acdc: largest faithfulness move of one removal")
    p.add_argument("--mask-steps", type=int, default=100)
    p.add_argument("--lr", type=float, default=0.2)
    p.add_argument("--sparsity", type=float, default=4.0)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", default=None)
    args = p.parse_args()
    if args.quick:
        args.nodes, args.train_steps, args.mask_steps, args.repeats = [16], 100, 50, 1
    torch.manual_seed(args.seed)
    model = trained(args.train_steps, args.seed)
    rows = [bench(args, model, n) for n in args.nodes]
    print(f"circuit at faithfulness >= {args.target} (MPNN Bellman-Ford, {args.direction}, resample; "
          "shared 2-core machine, median of runs)")
    print(f"{'workload':34} {'peer: top-n exact':>20} {'hookgnn':>22} {'ratio':>8}")
    for r in rows:
        for name in ("acdc", "mask"):
            w = f"n={r['nodes']} {name} size (of {r['units']})"
            top = "-" if r["top_n"] is None else str(r["top_n"])
            size = f"{r[f'{name}_size']} (F {r[f'{name}_faithfulness']:.3f})"
            ratio = "-" if r["top_n"] is None else f"{r['top_n'] / max(r[f'{name}_size'], 1):.2f}x"
            print(f"{w:34} {top:>20} {size:>22} {ratio:>8}")
            w = f"n={r['nodes']} {name} time (s)"
            print(f"{w:34} {r['sweep_s']:>20.2f} {r[f'{name}_s']:>22.2f} {r[f'{name}_s'] / r['sweep_s']:>7.2f}x")
        print(f"  (top-n faithfulness {r['top_n_faithfulness']:.3f}; acdc {r['acdc_forwards']} forwards, "
              f"learn_mask {r['mask_forwards']} forwards; redundancy of the mask's circuit: {r['or_groups']} OR "
              f"groups over {r['or_units']} units, {r['redundancy_s']:.2f} s)")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"rows": rows, "table": table(rows, args)}, f, indent=1)


def table(rows: list[dict[str, Any]], args: argparse.Namespace) -> list[dict[str, Any]]:
    """run_all's rows: circuit size against top-n of exact single effects, time against the exact sweep."""
    out = []
    for r in rows:
        for name, label in (("acdc", "acdc"), ("mask", "learn_mask")):
            where = f"MPNN Bellman-Ford n={r['nodes']}, {r['units']} messages, {r['direction']}"
            if r["top_n"] is not None:
                out.append(dict(workload=f"{label}: circuit size at F >= {args.target}, {where}",
                                peer="top-n of exact single effects", peer_value=r["top_n"],
                                hookgnn_value=r[f"{name}_size"], unit="units", ratio=r["top_n"] / max(r[f"{name}_size"], 1),
                                ratio_means="peer / hookgnn (x smaller)", runs=args.repeats))
            out.append(dict(workload=f"{label}: time, {where}", peer="exact single sweep (batched)",
                            peer_value=r["sweep_s"], hookgnn_value=r[f"{name}_s"], unit="s",
                            ratio=r["sweep_s"] / r[f"{name}_s"], ratio_means="peer / hookgnn (speed-up)",
                            runs=args.repeats))
    return out


if __name__ == "__main__":
    main()
