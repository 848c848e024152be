"""Hint-supervised MPNN and Triplet-GMPNN on the five CLRS-30 tasks added last (not a test).

For each of ``topological_sort``, ``strongly_connected_components``, ``mst_kruskal``,
``dag_shortest_paths`` and ``floyd_warshall``, each processor and each seed: train on
CLRS's sampler (``clrs_<task>``, sizes up to 16 nodes, hint weight 1, as many rounds as
the batch's algorithm steps), then score the task's outputs on fresh graphs of 16 nodes
(in distribution) and 64 nodes (CLRS-30's out-of-distribution test size).

The score is CLRS's own (``clrs/_src/evaluation.py``): per output, pointer accuracy
(``topo``, ``scc_id``, ``pi``: one pointer per node; ``Pi``: one per edge), the
accuracy of the argmax for ``mask_one`` (``topo_head``) and the F1 score for masks
(``in_mst``), pooled over all test graphs ("micro"); the task's score is the mean over
its outputs, as CLRS's ``score``. Each test graph runs its own number of rounds (its
algorithm steps), by default one graph per forward (``--eval-batch``).

Published references (Ibarz et al. 2022, "A Generalist Neural Algorithmic Learner",
Table 1: single-task OOD micro-F1 after 10,000 training steps at hidden size 128; its
MPNN column is copied from Velickovic et al. 2022, "The CLRS Algorithmic Reasoning
Benchmark") are not reproduced by a CPU run of a few dozen steps, and ``--quick`` only
shows that the pipeline runs. docs/benchmarks.md records a run of all five tasks with
three seeds, its settings, and where the published numbers come from.

    python benchmarks/train_clrs_graphs.py --quick
    python benchmarks/train_clrs_graphs.py --tasks mst_kruskal --steps 75 --seeds 0,1,2 \
        --test-graphs 16,8 --json kruskal.json
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from typing import Any

import torch

from hookgnn.metrics.features import feature_metrics, item_correct
from hookgnn.models import HookedGNN
from hookgnn.tasks import Task, get_task
from hookgnn.training import TrainConfig, train
from hookgnn.training.config import num_rounds

TASKS = ("topological_sort", "strongly_connected_components", "mst_kruskal", "dag_shortest_paths", "floyd_warshall")
PROCESSORS = ("mpnn", "triplet_gmpnn")


@torch.no_grad()
def clrs_scores(model: HookedGNN, task: Task, sampler: str, n: int, num_graphs: int, per_forward: int,
                seed: int) -> dict[str, float]:
    """CLRS's output scores on ``num_graphs`` fresh graphs of ``n`` nodes, pooled over all of them.

    Keys: ``"<output>.score"`` (pointer / mask_one accuracy, mask F1), ``"<output>.accuracy"``,
    ``"<output>.graph_accuracy"``, and ``"score"``, the mean of the output scores.
    """
    model.eval()
    outputs = [k for k, s in task.spec.items() if s.stage == "output"]
    counts: dict[str, dict[str, float]] = {k: dict.fromkeys(("right", "items", "tp", "fp", "fn", "graphs_right"), 0.0)
                                           for k in outputs}
    graphs_seen = 0
    for chunk, start in enumerate(range(0, num_graphs, per_forward)):
        size = min(per_forward, num_graphs - start)
        graphs = task.sample(size, sampler, seed=seed + chunk, n=n)
        out = model(graphs, steps=num_rounds(graphs, "hints", model.max_steps))
        graphs_seen += size
        for name in outputs:
            spec, pred, target = task.spec[name], out.outputs[name], graphs[name]
            right = item_correct(spec, pred, target, graphs)
            c = counts[name]
            c["right"] += float(right.sum())
            c["items"] += right.numel()
            c["graphs_right"] += feature_metrics(spec, pred, target, graphs)["graph_accuracy" if spec.type in (
                "pointer", "mask") else "accuracy"] * size
            if spec.type == "mask":
                p, y = pred > 0, target > 0.5
                c["tp"] += float((p & y).sum())
                c["fp"] += float((p & ~y).sum())
                c["fn"] += float((~p & y).sum())
    result: dict[str, float] = {}
    for name in outputs:
        c, spec = counts[name], task.spec[name]
        accuracy = c["right"] / c["items"] if c["items"] else 1.0
        result[f"{name}.accuracy"] = accuracy
        result[f"{name}.graph_accuracy"] = c["graphs_right"] / graphs_seen
        if spec.type == "mask":
            denominator = 2 * c["tp"] + c["fp"] + c["fn"]
            result[f"{name}.f1"] = 1.0 if denominator == 0 else 2 * c["tp"] / denominator
        result[f"{name}.score"] = result[f"{name}.f1"] if spec.type == "mask" else accuracy
    result["score"] = statistics.fmean(result[f"{name}.score"] for name in outputs)
    return result


def run(task_name: str, processor: str, args: argparse.Namespace, seed: int) -> dict[str, Any]:
    """Train one model and score it at every test size."""
    task = get_task(task_name)
    config = TrainConfig(task=task_name, processor=processor, d_hidden=args.d_hidden, max_steps=args.max_steps,
                         sampler=f"clrs_{task_name}", sizes=args.train_sizes, steps=args.steps,
                         batch_size=args.batch_size, lr=args.lr, lr_schedule=args.lr_schedule, hint_weight=1.0,
                         rounds="hints", seed=seed, progress=False)
    start = time.perf_counter()
    model, history = train(config, threads=1)
    train_s = time.perf_counter() - start
    tail = history[-max(1, len(history) // 10):]
    out: dict[str, Any] = {"task": task_name, "processor": processor, "seed": seed, "steps": args.steps,
                           "train_s": train_s, "s_per_step": train_s / max(args.steps, 1),
                           "final_loss": statistics.fmean(h["loss"] for h in tail), "test": {}}
    counts = args.test_graphs * len(args.test_sizes) if len(args.test_graphs) == 1 else args.test_graphs
    if len(counts) != len(args.test_sizes):
        raise SystemExit(f"--test-graphs gives {len(counts)} counts for {len(args.test_sizes)} test sizes")
    for n, num_graphs in zip(args.test_sizes, counts):
        start = time.perf_counter()
        scores = clrs_scores(model, task, f"clrs_{task_name}", n, num_graphs, args.eval_batch,
                             seed=10_000 * (seed + 1) + 100 * n)
        out["test"][str(n)] = {**scores, "graphs": num_graphs, "eval_s": time.perf_counter() - start}
    return out


def summary(runs: list[dict[str, Any]], n: int) -> str:
    """``mean +- half the spread`` (min to max) of the task score over seeds, or the one value."""
    values = [r["test"][str(n)]["score"] for r in runs]
    if len(values) == 1:
        return f"{values[0]:.3f}"
    return f"{statistics.fmean(values):.3f} +- {(max(values) - min(values)) / 2:.3f}"


def parse_sizes(text: str) -> tuple[int, ...]:
    return tuple(int(s) for s in text.split(",") if s)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="20 steps on small graphs, 4 test graphs (smoke run)")
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--seeds", default="0", help="comma-separated seeds, one model each")
    parser.add_argument("--tasks", default=",".join(TASKS))
    parser.add_argument("--processors", default=",".join(PROCESSORS))
    parser.add_argument("--train-sizes", type=parse_sizes, default=(4, 7, 11, 13, 16))
    parser.add_argument("--test-sizes", type=parse_sizes, default=(16, 64))
    parser.add_argument("--test-graphs", type=parse_sizes, default=(32,),
                        help="test graphs per test size (one value for all, or one per size)")
    parser.add_argument("--eval-batch", type=int, default=1, help="test graphs per forward (each forward runs the "
                        "largest number of algorithm steps among its graphs)")
    parser.add_argument("--d-hidden", type=int, default=64)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--lr-schedule", default="constant", choices=("constant", "cosine"))
    parser.add_argument("--max-steps", type=int, default=1000, help="rounds the model can run (test graphs included)")
    parser.add_argument("--json", default=None, metavar="PATH", help="write settings and every number here")
    args = parser.parse_args()
    if args.quick:
        args.steps, args.train_sizes, args.test_sizes, args.test_graphs = 20, (5, 6, 8), (8, 16), (4,)
        args.d_hidden, args.max_steps = 16, 200
    torch.set_num_threads(1)
    seeds = [int(s) for s in args.seeds.split(",")]
    settings = {k: v for k, v in vars(args).items() if k != "json"}
    results: dict[str, Any] = {"settings": settings, "runs": []}
    print(f"{'task':30s} {'processor':14s} {'seed':>4s} {'steps':>5s} {'s/step':>7s} {'loss':>7s} "
          + " ".join(f"{'n=' + str(n):>7s}" for n in args.test_sizes), flush=True)
    for task_name in args.tasks.split(","):
        for processor in args.processors.split(","):
            runs = []
            for seed in seeds:
                r = run(task_name, processor, args, seed)
                runs.append(r)
                results["runs"].append(r)
                print(f"{task_name:30s} {processor:14s} {seed:4d} {args.steps:5d} {r['s_per_step']:7.2f} "
                      f"{r['final_loss']:7.3f} " + " ".join(f"{r['test'][str(n)]['score']:7.3f}"
                                                         for n in args.test_sizes), flush=True)
                if args.json:  # after every run, so a long run that is stopped keeps what it finished
                    with open(args.json, "w") as f:
                        json.dump(results, f, indent=2)
            if len(seeds) > 1:
                print(f"{task_name:30s} {processor:14s} mean over {len(seeds)} seeds: "
                      + ", ".join(f"n={n} {summary(runs, n)}" for n in args.test_sizes), flush=True)


if __name__ == "__main__":
    main()
