"""Train three reasoners and score them in and out of distribution (not a test).

Workloads:

a. ``minagg_bf_paths``: MinAgg on Bellman-Ford distances, MINAR / Nerem et al. style:
   trained with an L1 penalty on weighted paths of 2-16 nodes (source at an end, one
   size per step, ``n - 1`` rounds plus up to 16 extra), tested on longer paths and on
   the ``H_K`` multi-path graphs (the cheapest path has the most hops). Metric:
   distance MSE.
b. ``mpnn_bfs``: MPNN (max aggregation) on BFS with hints, trained on Erdos-Renyi
   graphs with n <= 16, tested at n = 64: node accuracy of the ``reach`` mask and
   pointer (parent) accuracy.
c. ``mpnn_bellman_ford``: MPNN on Bellman-Ford with hints, trained on Erdos-Renyi
   graphs with n <= 16, tested at n = 64: predecessor pointer accuracy.

Test-time rounds: ``"hints"`` (the number of algorithm steps of the test graphs, CLRS
convention) for b and c, ``"nodes"`` (n - 1) for a. Prints a table; ``--json PATH``
writes every number; ``--save-dir DIR`` keeps the checkpoints (``DIR/<workload>.pt``).

    python benchmarks/train_reasoners.py --json results.json --save-dir checkpoints
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from hookgnn.tasks import get_task
from hookgnn.training import TrainConfig, evaluate_model, save_checkpoint, train


@dataclass(frozen=True)
class TestSet:
    name: str
    sampler: str
    kwargs: dict[str, Any]
    num_graphs: int = 32


@dataclass(frozen=True)
class Workload:
    name: str
    config: TrainConfig
    tests: tuple[TestSet, ...]
    rounds: str
    headline: tuple[str, ...]  # metrics shown in the table
    targets: dict[tuple[str, str], float] = field(default_factory=dict)  # (test, metric) -> minimum


def workloads(seed: int) -> list[Workload]:
    er16 = {"p": 0.2}
    return [
        Workload(
            "minagg_bf_paths",
            TrainConfig(task="bellman_ford", processor="minagg", d_hidden=8, max_steps=64, sampler="weighted_path",
                        sizes=tuple(range(2, 17)), same_size=True, batch_size=16, steps=1500, lr=3e-3,
                        lr_schedule="cosine", l1=1e-3, features=("d",), hint_weight=0.0, rounds="nodes",
                        extra_rounds=16, seed=seed),
            (TestSet("path n=16 (train)", "weighted_path", {"n": 16}),
             TestSet("path n=32", "weighted_path", {"n": 32}),
             TestSet("path n=64", "weighted_path", {"n": 64}),
             TestSet("H_K K=4", "multi_path", {"k": 4}, 1),
             TestSet("H_K K=8", "multi_path", {"k": 8}, 1),
             TestSet("ER n=16 p=0.3", "erdos_renyi", {"n": 16, "p": 0.3})),
            "nodes",
            ("d.mse", "d.mae"),
        ),
        Workload(
            "mpnn_bfs",
            TrainConfig(task="bfs", processor="mpnn", d_hidden=32, max_steps=64, sizes=(8, 10, 12, 14, 16),
                        sampler_kwargs=er16, batch_size=16, steps=400, lr=1e-3, seed=seed),
            (TestSet("ER n=16 p=0.2 (train)", "erdos_renyi", {"n": 16, "p": 0.2}),
             TestSet("ER n=64 p=0.05", "erdos_renyi", {"n": 64, "p": 0.05}),
             TestSet("grid 8x8", "grid", {"rows": 8, "cols": 8}, 8)),
            "hints",
            ("reach.accuracy", "pi.accuracy"),
            {("ER n=64 p=0.05", "reach.accuracy"): 0.95},
        ),
        Workload(
            "mpnn_bellman_ford",
            TrainConfig(task="bellman_ford", processor="mpnn", d_hidden=64, max_steps=64, sizes=(8, 10, 12, 14, 16),
                        sampler_kwargs={"p": 0.3}, batch_size=16, steps=700, lr=1e-3, lr_schedule="cosine",
                        seed=seed),
            (TestSet("ER n=16 p=0.3 (train)", "erdos_renyi", {"n": 16, "p": 0.3}),
             TestSet("ER n=64 p=0.1", "erdos_renyi", {"n": 64, "p": 0.1}),
             TestSet("ER n=64 p=0.05", "erdos_renyi", {"n": 64, "p": 0.05})),
            "hints",
            ("pi.accuracy", "d.mse", "reach.accuracy"),
            {("ER n=64 p=0.1", "pi.accuracy"): 0.85},
        ),
    ]


def run(work: Workload, steps_scale: float, save_dir: Path | None) -> dict[str, Any]:
    config = TrainConfig.from_dict({**work.config.to_dict(), "steps": max(1, int(work.config.steps * steps_scale)),
                                    "progress": False})
    start = time.perf_counter()
    model, history = train(config)
    train_s = time.perf_counter() - start
    task = get_task(config.task)
    results = {}
    for i, test in enumerate(work.tests):
        graphs = task.sample(test.num_graphs, test.sampler, seed=10_000 + i, **test.kwargs)
        results[test.name] = evaluate_model(model, task, graphs, work.rounds)
    if save_dir is not None:
        save_dir.mkdir(parents=True, exist_ok=True)
        first = results[work.tests[0].name]
        save_checkpoint(save_dir / f"{work.name}.pt", model, task, config, first)
    last = history[-20:]
    return {"config": config.to_dict(), "train_seconds": train_s, "final_loss": sum(r["loss"] for r in last) / len(last),
            "results": results}


def table(work: Workload, out: dict[str, Any]) -> list[str]:
    rows = []
    for test in work.tests:
        for metric in work.headline:
            value = out["results"][test.name][metric]
            target = work.targets.get((test.name, metric))
            verdict = "" if target is None else (f">= {target}: " + ("met" if value >= target else "MISSED"))
            rows.append(f"{work.name:<20} {test.name:<24} {metric:<16} {value:>10.4f}  {verdict}")
    return rows


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--json", default=None, metavar="PATH", help="write all numbers as JSON to PATH")
    parser.add_argument("--save-dir", default=None, help="save each trained model as DIR/<workload>.pt")
    parser.add_argument("--only", default=None, help="comma-separated workload names to run (default: all)")
    parser.add_argument("--steps-scale", type=float, default=1.0, help="multiply every step count (smoke runs)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default 1: fastest for small graphs)")
    parser.add_argument("--seed", type=int, default=0, help="training seed (default 0)")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    chosen = [w for w in workloads(args.seed) if args.only is None or w.name in args.only.split(",")]
    report: dict[str, Any] = {}
    lines = [f"{'workload':<20} {'test set':<24} {'metric':<16} {'value':>10}  target"]
    for work in chosen:
        out = run(work, args.steps_scale, Path(args.save_dir) if args.save_dir else None)
        report[work.name] = out
        lines += table(work, out)
        print(f"[{work.name}] trained {out['config']['steps']} steps in {out['train_seconds']:.1f} s, "
              f"final loss {out['final_loss']:.4f}", flush=True)
    print("\n".join(lines))
    total = sum(r["train_seconds"] for r in report.values())
    print(f"total training time {total:.1f} s ({args.threads} thread(s))")
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
