"""Benchmark metamer search: time to a metamer at tol 1e-3, and batching k metamers.

A Bellman-Ford MPNN reasoner is trained in the script (d = 32, ER graphs n = 8..12,
``--train-steps`` steps), then run for 8 rounds on one 64-node Erdos-Renyi reference
(p = 0.08); metamers match ``layers.7.hook_update`` (the final node states) to a relative
distance of 1e-3. Workloads:

* ``weights``: edge weights in [0, 1] (source and edges fixed);
* ``source+weights``: the source node (one-hot over nodes) and the weights;
* ``structure``: the undirected edge set (self-loops kept, same number of edges, over all
  64 x 64 candidate pairs) and the weights.

The structure workload is costly (4096 candidate edges per metamer), so it runs with
``--k-structure`` (2), ``--structure-runs`` (1) and ``--structure-max-steps`` (600).

For each, ``k`` noise starts are drawn, then searched one by one (the peer: ``k``
sequential runs, ``start=starts.graph(j)``) and in one disjoint-union batch (hookgnn,
``start=starts``, ``num=k``). A metamer in a batch follows the trajectory it follows
alone (per-metamer Adam), so both do the same optimisation (no restarts here); the
batch runs until its slowest metamer stops. "to metamer" is the median time of the
single searches that reached the tolerance. Times are medians over ``--runs``
repetitions with different starts.

    python benchmarks/bench_metamers.py                 # full table (~10 min on 2 busy cores)
    python benchmarks/bench_metamers.py --quick         # smoke run
    python benchmarks/bench_metamers.py --json out.json
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time

import torch

from hookgnn.graph import Graph
from hookgnn.metamers import Box, EdgeSpace, OneHot, metamer
from hookgnn.tasks import get_task
from hookgnn.training import TrainConfig, train

HOOK = "layers.7.hook_update"


def searches(reference: Graph) -> dict[str, dict]:
    return {
        "weights": {"features": None, "edge_features": Box(0.0, 1.0)},
        "source+weights": {"features": OneHot(over="nodes"), "edge_features": Box(0.0, 1.0)},
        "structure": {"features": None, "edge_features": Box(0.0, 1.0),
                      "structure": EdgeSpace(num_edges=reference.num_edges, keep="self_loops", symmetric=True)},
    }


def timed(model, reference: Graph, kwargs: dict, start: Graph, max_steps: int) -> tuple[float, list[bool]]:
    start_time = time.perf_counter()
    res = metamer(model, reference, HOOK, start=start, num=start.num_graphs, tol=1e-3, max_steps=max_steps,
                  forward=lambda g: model(g, steps=8), **kwargs)
    return time.perf_counter() - start_time, res.converged.tolist()


def starts_for(model, reference: Graph, kwargs: dict, k: int, seed: int) -> Graph:
    """k noise starts of a search (drawn as metamer() draws them, no optimisation step kept)."""
    return metamer(model, reference, HOOK, num=k, seed=seed, max_steps=1, forward=lambda g: model(g, steps=8),
                   **kwargs).starts


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="k = 2, one run, 30 training steps")
    parser.add_argument("--json", default=None, metavar="PATH", help="write the rows as JSON here")
    parser.add_argument("--k", type=int, default=8, help="metamers per batch (default 8)")
    parser.add_argument("--k-structure", type=int, default=2,
                        help="metamers per batch of the structure workload (default 2: 4096 candidate edges each)")
    parser.add_argument("--structure-runs", type=int, default=1,
                        help="repetitions of the structure workload (default 1)")
    parser.add_argument("--structure-max-steps", type=int, default=600,
                        help="optimiser steps of the structure workload (default 600)")
    parser.add_argument("--runs", type=int, default=3, help="repetitions (default 3)")
    parser.add_argument("--train-steps", type=int, default=300)
    parser.add_argument("--max-steps", type=int, default=2000)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)
    if args.json:
        open(args.json, "a").close()  # output path first
    torch.set_num_threads(args.threads)
    k, runs = (2, 1) if args.quick else (args.k, args.runs)
    k_structure = 2 if args.quick else args.k_structure
    steps = 30 if args.quick else args.train_steps
    model, _ = train(TrainConfig(task="bellman_ford", processor="mpnn", d_hidden=32, max_steps=16, sizes=(8, 12),
                                 steps=steps, rounds="nodes", batch_size=16, sampler_kwargs={"p": 0.3},
                                 progress=False))
    sampled = get_task("bellman_ford").sample(1, "erdos_renyi", seed=3, n=64, p=0.08)
    reference = Graph(x=sampled.x, edge_index=sampled.edge_index, edge_attr=sampled.edge_attr)
    print(f"reference: {reference.num_nodes} nodes, {reference.num_edges} edges; hook {HOOK}; tol 1e-3; "
          f"k = {k} ({k_structure} for structure); {runs} runs; {torch.get_num_threads()} thread(s)", file=sys.stderr)
    k_features = k
    rows = []
    for name, kwargs in searches(reference).items():
        structural = name == "structure"
        k = k_structure if structural else k_features
        reps = args.structure_runs if structural and not args.quick else runs
        max_steps = args.structure_max_steps if structural else args.max_steps
        to_metamer, single, seq, batch, conv = [], [], [], [], []
        for r in range(reps):
            starts = starts_for(model, reference, kwargs, k, seed=r)
            alone = [timed(model, reference, kwargs, starts.graph(j), max_steps) for j in range(k)]
            single += [t for t, _ in alone]
            to_metamer += [t for t, c in alone if c[0]]
            seq.append(sum(t for t, _ in alone))
            t, c = timed(model, reference, kwargs, starts, max_steps)
            batch.append(t)
            conv.append((sum(c0[0] for _, c0 in alone), sum(c)))
        row = {"workload": name, "k": k,
               "time_to_metamer_s": statistics.median(to_metamer) if to_metamer else float("nan"),
               "one_search_s": statistics.median(single), "sequential_s": statistics.median(seq),
               "batched_s": statistics.median(batch), "speedup": statistics.median(seq) / statistics.median(batch),
               "converged_sequential": sum(a for a, _ in conv), "converged_batched": sum(b for _, b in conv),
               "searches": k * reps, "runs": reps, "max_steps": max_steps}
        rows.append(row)
        print(f"  {name}: done", file=sys.stderr)
    head = (f"{'workload':<15} {'k':>2} {'to metamer s':>12} {'peer: k sequential s':>21} {'hookgnn: 1 batch s':>19} "
            f"{'ratio':>6} {'converged seq / batch':>22}")
    print(head)
    for r in rows:
        print(f"{r['workload']:<15} {r['k']:>2} {r['time_to_metamer_s']:>12.2f} {r['sequential_s']:>21.2f} "
              f"{r['batched_s']:>19.2f} "
              f"{r['speedup']:>5.1f}x {r['converged_sequential']:>10}/{r['searches']} / {r['converged_batched']}/"
              f"{r['searches']}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"k": k_features, "k_structure": k_structure, "runs": runs,
                       "threads": torch.get_num_threads(), "rows": rows}, f, indent=2)


if __name__ == "__main__":
    main()
