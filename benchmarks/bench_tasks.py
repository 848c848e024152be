"""Benchmark labelling one large sparse graph with every task: seconds and peak memory.

Workload: one Erdős–Rényi graph ``G(n, p)`` with mean degree 3 (``p = 3 / (n - 1)``),
undirected, weights uniform on ``[0, 1)``, seed 0; ``E`` counts the stored edges (the
``n`` self-loops plus both directions of every edge) and ``T`` the hint steps. Each
task labels it with all inputs, outputs and hints (``Task.run``).

Peer: networkx computing the same algorithm's *outputs only* (no hints, no tensors) on
the same graph, already converted (``bfs_predecessors``, ``dfs_predecessors``,
``single_source_bellman_ford``, ``single_source_dijkstra``, Prim's
``minimum_spanning_tree``, ``articulation_points``, ``bridges``). The ratio is
networkx seconds / hookgnn seconds (above 1: hookgnn is faster), so it prices the hints.

Every (task, n) runs in a fresh subprocess: a warm-up on a small graph, then

* ``rss MB``: the peak-RSS increase (``ru_maxrss`` after minus before) of the first run,
  which catches every allocation (numpy, torch, Python);
* ``traced MB``: the ``tracemalloc`` peak of a second run (numpy and Python
  allocations, which is where the tasks allocate);
* ``out MB``: the bytes of the returned tensors (the hints dominate);
* seconds: the median of ``--runs`` further runs, without tracing.

The target is under 5 s and under 1 GB per task at ``n = 2000``.

    python benchmarks/bench_tasks.py                  # n = 500, 1000, 2000
    python benchmarks/bench_tasks.py --quick          # n = 300, 2 runs
    python benchmarks/bench_tasks.py --sizes 4000 --tasks dfs bridges --json out.json
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time
import tracemalloc
from pathlib import Path

TASK_NAMES = ["bellman_ford", "bfs", "dfs", "dijkstra", "mst_prim", "articulation_points", "bridges"]
TARGET_S, TARGET_MB = 5.0, 1024.0


def _graph(n: int, seed: int):
    from hookgnn.tasks.samplers import erdos_renyi

    return erdos_renyi(n, min(1.0, 3.0 / max(n - 1, 1)), seed=seed)


def _networkx(task: str, g):
    """A function running networkx's version of ``task`` on the already-built graph."""
    import networkx as nx

    G = nx.Graph()
    G.add_nodes_from(range(g.num_nodes))
    for u, v, w in zip(g.src.tolist(), g.dst.tolist(), g.weight.tolist()):
        if u != v and (not G.has_edge(u, v) or G[u][v]["weight"] > w):
            G.add_edge(u, v, weight=w)
    s = 0
    calls = {
        "bellman_ford": lambda: nx.single_source_bellman_ford(G, s),
        "bfs": lambda: dict(nx.bfs_predecessors(G, s)),
        "dfs": lambda: nx.dfs_predecessors(G),
        "dijkstra": lambda: nx.single_source_dijkstra(G, s),
        "mst_prim": lambda: nx.minimum_spanning_tree(G, algorithm="prim"),
        "articulation_points": lambda: list(nx.articulation_points(G)),
        "bridges": lambda: list(nx.bridges(G)),
    }
    return calls[task]


def _seconds(fn, runs: int) -> float:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def worker(task_name: str, n: int, runs: int, seed: int) -> dict:
    """Measure one (task, n) in this process."""
    from hookgnn.tasks import get_task

    task = get_task(task_name)
    g = _graph(n, seed)
    task.run(_graph(20, seed), source=0)  # warm-up: imports, first calls
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    out = task.run(g, source=0)
    rss_mb = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
    out_mb = sum(f.value.numel() * f.value.element_size() for f in out.fields.values()) / 2**20
    steps, edges = int(out["num_steps"][0]), out.num_edges
    del out
    tracemalloc.start()
    task.run(g, source=0)
    traced_mb = tracemalloc.get_traced_memory()[1] / 2**20
    tracemalloc.stop()
    seconds = _seconds(lambda: task.run(g, source=0), runs)
    peer = _networkx(task_name, g)
    peer()
    return {"task": task_name, "n": n, "E": edges, "T": steps, "seconds": seconds,
            "networkx_seconds": _seconds(peer, runs), "rss_mb": rss_mb, "traced_mb": traced_mb, "out_mb": out_mb}


def _spawn(task: str, n: int, runs: int, seed: int) -> dict | None:
    cmd = [sys.executable, __file__, "--worker", task, str(n), str(runs), str(seed)]
    done = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        print(f"  {task} n={n} failed: {done.stderr.strip().splitlines()[-1:]}", file=sys.stderr)
        return None
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="smoke run: n = 300, 2 runs")
    parser.add_argument("--sizes", type=int, nargs="+", default=None, help="graph sizes n (default 500 1000 2000)")
    parser.add_argument("--tasks", nargs="+", default=TASK_NAMES, choices=TASK_NAMES, help="tasks to run")
    parser.add_argument("--runs", type=int, default=None, help="timed runs per measurement (median; default 5)")
    parser.add_argument("--seed", type=int, default=0, help="graph seed")
    parser.add_argument("--json", type=str, default=None, help="write results to this path")
    parser.add_argument("--worker", nargs=4, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        task, n, runs, seed = args.worker
        print(json.dumps(worker(task, int(n), int(runs), int(seed))))
        return
    sizes = args.sizes or ([300] if args.quick else [500, 1000, 2000])
    runs = args.runs or (2 if args.quick else 5)
    if min(sizes) < 1 or runs < 1:
        parser.error("sizes and runs must be positive")
    if args.json:  # fail now, not after minutes of measuring
        path = Path(args.json)
        if not path.parent.is_dir():
            parser.error(f"--json: directory {path.parent} does not exist")
        path.touch()

    print(f"python {sys.version.split()[0]}, load average {os.getloadavg()}, {runs} timed runs (median)")
    header = (f"{'task':<20}{'n':>6}{'E':>7}{'T':>6}  {'networkx ms':>12}{'hookgnn ms':>11}{'ratio':>8}"
              f"{'rss MB':>9}{'traced MB':>10}{'out MB':>8}  target")
    print(header)
    results = []
    for n in sizes:
        for task in args.tasks:
            row = _spawn(task, n, runs, args.seed)
            if row is None:
                continue
            ratio = row["networkx_seconds"] / row["seconds"] if row["seconds"] > 0 else float("nan")
            peak = max(row["rss_mb"], row["traced_mb"])
            ok = "ok" if row["seconds"] < TARGET_S and peak < TARGET_MB else "MISSED"
            print(f"{task:<20}{n:>6}{row['E']:>7}{row['T']:>6}  {row['networkx_seconds'] * 1e3:>12.1f}"
                  f"{row['seconds'] * 1e3:>11.1f}{ratio:>7.3f}x{row['rss_mb']:>9.1f}{row['traced_mb']:>10.1f}"
                  f"{row['out_mb']:>8.1f}  {ok}")
            results.append(row)
        print()
    print("ratio = networkx seconds (outputs only) / hookgnn seconds (outputs and hints); "
          f"target: < {TARGET_S:g} s and < {TARGET_MB:g} MB (max of rss and traced)")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump({"runs": runs, "seed": args.seed, "results": results}, fh, indent=1)


if __name__ == "__main__":
    main()
