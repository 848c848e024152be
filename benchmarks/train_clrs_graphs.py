"""Hint-supervised MPNN and Triplet-GMPNN on the five CLRS-30 tasks added last (not a test).

For each of ``topological_sort``, ``strongly_connected_components``, ``mst_kruskal``,
``dag_shortest_paths`` and ``floyd_warshall`` and each processor, train on CLRS's
sampler (``clrs_<task>``, sizes up to 16 nodes, hint weight 1, as many rounds as the
algorithm's steps) and score the task's output on fresh graphs of 16 nodes (in
distribution) and 64 nodes (CLRS-30's out-of-distribution test size): pointer accuracy
(``topo``, ``scc_id``, ``pi``, ``Pi``: one node per node, resp. per edge) or mask
accuracy (``in_mst``), the metrics of :mod:`hookgnn.metrics.features`.

The CLRS-30 paper's numbers (Velickovic et al. 2022, Table 2, and Ibarz et al. 2022,
Triplet-GMPNN, Table 1) come from 10,000 training steps on a GPU; ``--quick`` trains a
few dozen steps on a CPU, so its scores only show that the pipeline runs.

    python benchmarks/train_clrs_graphs.py --quick
    python benchmarks/train_clrs_graphs.py --steps 10000 --json results.json
"""

from __future__ import annotations

import argparse
import json
import time

import torch

from hookgnn.tasks import get_task
from hookgnn.training import TrainConfig, evaluate_model, train

TASKS = ("topological_sort", "strongly_connected_components", "mst_kruskal", "dag_shortest_paths", "floyd_warshall")
PROCESSORS = ("mpnn", "triplet_gmpnn")


def run(task_name: str, processor: str, steps: int, train_sizes: tuple[int, ...], test_sizes: tuple[int, ...],
        d_hidden: int, max_steps: int, seed: int) -> dict[str, float]:
    task = get_task(task_name)
    config = TrainConfig(task=task_name, processor=processor, d_hidden=d_hidden, max_steps=max_steps,
                         sampler=f"clrs_{task_name}", sizes=train_sizes, steps=steps, batch_size=8,
                         hint_weight=1.0, rounds="hints", seed=seed, progress=False)
    start = time.perf_counter()
    model, _ = train(config)
    out = {"train_s": time.perf_counter() - start}
    output = next(k for k, s in task.spec.items() if s.stage == "output")
    for n in test_sizes:
        graphs = task.sample(8, f"clrs_{task_name}", seed=seed + 1000 + n, n=n)
        if int(graphs["num_steps"].max()) > max_steps:
            raise SystemExit(f"{task_name} at n={n} needs {int(graphs['num_steps'].max())} rounds; raise --max-steps")
        out[f"n{n}"] = evaluate_model(model, task, graphs, "hints")[f"{output}.accuracy"]
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="a few steps on small graphs (smoke run)")
    parser.add_argument("--steps", type=int, default=2000)
    parser.add_argument("--tasks", default=",".join(TASKS))
    parser.add_argument("--processors", default=",".join(PROCESSORS))
    parser.add_argument("--json", default=None, metavar="PATH")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    torch.set_num_threads(1)
    steps, train_sizes, test_sizes, d, max_steps = (
        (20, (5, 6, 8), (8, 16), 16, 200) if args.quick else (args.steps, (4, 7, 11, 13, 16), (16, 64), 64, 1000))
    results = {}
    print(f"{'task':32s} {'processor':14s} {'steps':>6s} {'train s':>8s} " + " ".join(f"{'n=' + str(n):>7s}"
                                                                                  for n in test_sizes))
    for task_name in args.tasks.split(","):
        for processor in args.processors.split(","):
            r = run(task_name, processor, steps, train_sizes, test_sizes, d, max_steps, args.seed)
            results[f"{task_name}/{processor}"] = r
            print(f"{task_name:32s} {processor:14s} {steps:6d} {r['train_s']:8.1f} "
                  + " ".join(f"{r[f'n{n}']:7.3f}" for n in test_sizes), flush=True)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=2)


if __name__ == "__main__":
    main()
