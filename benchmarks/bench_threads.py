"""More threads must never be slower: hookgnn's small jobs at 1 and 2 torch threads, quiet and busy.

Workloads (the main job's sizes):

* ``train``: :func:`hookgnn.training.train` with the demo's configuration (MPNN, Bellman-Ford,
  16 Erdos-Renyi graphs of 8-12 nodes per step, width 32, 10 rounds);
* ``cache + attribution``: ``run_with_cache`` and ``attribute`` over every
  ``hook_update`` on one 10-node graph and its corrupted twin, called bare (each entry
  point, the model's own ``run_with_cache`` included, chooses its threads) and inside
  ``auto_threads`` (as the demo calls them);
* ``hookgnn demo``: the whole main job, in its own process (``--with-demo``; always
  under a competing process).

Settings: ``1 thread`` (``torch.set_num_threads(1)``) against ``2 threads``
(``torch.set_num_threads(2)``, what a fresh process gets on 2 cores; hookgnn's thread
policy, :mod:`hookgnn.ops.threads`, then picks the threads by workload), and for
reference ``2 forced`` (inside ``use_threads(2)``: the policy overruled, torch's threading
on tiny tensors as it was before the policy; one run, it is slow). Conditions: ``quiet`` and ``busy``: one
CPU-burning process pinned (``os.sched_setaffinity``) to one core beside the run,
bounded in time and always killed. The table gives medians of ``--runs`` runs and the
ratio 2 threads / 1 thread (target: <= 1.10 in both conditions; the main job under 60 s
on 2 cores with a competing process). On a machine shared with other work "quiet" is
only as quiet as the machine: the load average is printed with the table.

Below the table: what choosing the threads costs a bare model call (the choice with
nothing to run, against a no-grad forward of the 10-node graph at 1 thread).

    python benchmarks/bench_threads.py --quick              # 3 runs, 10 training steps, no demo
    python benchmarks/bench_threads.py --with-demo --json out/threads.json
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import torch

TARGET = 1.10
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # this checkout's hookgnn, also when another one is installed
BURN = "import os, sys, time\nos.sched_setaffinity(0, {int(sys.argv[1])})\nend = time.time() + float(sys.argv[2])\n" \
       "while time.time() < end:\n    pass\n"


@contextlib.contextmanager
def competitor(busy: bool, seconds: float) -> Iterator[None]:
    """One CPU-burning process pinned to the last core for at most ``seconds`` (killed on exit)."""
    if not busy:
        yield
        return
    core = max(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else 0
    proc = subprocess.Popen([sys.executable, "-c", BURN, str(core), str(seconds)])
    try:
        time.sleep(0.2)  # let it start burning
        yield
    finally:
        proc.kill()
        proc.wait()


def workloads(steps: int) -> dict[str, Callable[[], None]]:
    from hookgnn.cli.demo import ROUNDS
    from hookgnn.ops.threads import auto_threads, graph_work
    from hookgnn.attribution import attribute
    from hookgnn.metrics import PointerLogProb
    from hookgnn.patching import round_hooks
    from hookgnn.tasks import get_task
    from hookgnn.tasks.corruptions import sample_pairs
    from hookgnn.training import TrainConfig, build_model, train

    config = TrainConfig(task="bellman_ford", processor="mpnn", d_hidden=32, max_steps=ROUNDS, sizes=(8, 10, 12),
                         sampler_kwargs={"p": 0.3}, batch_size=16, steps=steps, rounds=ROUNDS, lr=3e-3, seed=0,
                         progress=False)
    task = get_task("bellman_ford")
    torch.manual_seed(0)
    model = build_model(task, "mpnn", d_hidden=32, max_steps=ROUNDS).eval()
    clean, corrupted = sample_pairs(task, 1, "resample_source", "erdos_renyi", seed=7, n=10, p=0.3)
    metric = PointerLogProb(target=clean["pi"], select=torch.ones(clean.num_nodes))
    hooks = round_hooks(model, "update", range(ROUNDS))

    def patch() -> None:
        model.run_with_cache(clean, steps=ROUNDS)
        attribute(model, clean, corrupted, metric, names_filter=hooks, steps=ROUNDS)

    def patch_in_policy() -> None:
        with auto_threads(graph_work(clean, 32) * 2):
            patch()

    return {f"train, demo config, {steps} steps": lambda: train(config),
            "cache + attribution, 10 nodes, bare": patch,
            "cache + attribution, 10 nodes, auto_threads": patch_in_policy}


def call_overhead(repeats: int = 20_000) -> tuple[float, float]:
    """Microseconds per call: choosing threads for a bare call (with nothing to run, torch
    at 2 threads, so the count switches to 1 and back) and a no-grad 10-node forward."""
    from hookgnn.cli.demo import ROUNDS
    from hookgnn.ops.threads import threads_by_inputs
    from hookgnn.tasks import get_task
    from hookgnn.training import build_model

    class Noop(torch.nn.Linear):
        @threads_by_inputs
        def run(self, *args: object, **kwargs: object) -> None:
            return None

    task = get_task("bellman_ford")
    torch.manual_seed(0)
    model, noop = build_model(task, "mpnn", d_hidden=32, max_steps=ROUNDS).eval(), Noop(32, 32)
    graph = task.sample(1, "erdos_renyi", seed=7, n=10, p=0.3)

    def per_call(fn: Callable[[], object], n: int) -> float:
        fn()
        start = time.perf_counter()
        for _ in range(n):
            fn()
        return (time.perf_counter() - start) / n * 1e6

    before = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        choose = statistics.median(per_call(lambda: noop.run(graph, steps=ROUNDS), repeats) for _ in range(5))
        torch.set_num_threads(1)
        with torch.no_grad():
            forward = statistics.median(per_call(lambda: model(graph, steps=ROUNDS), 50) for _ in range(5))
    finally:
        torch.set_num_threads(before)
    return choose, forward


def timed(fn: Callable[[], None], threads: int, forced: bool) -> float:
    from hookgnn.ops.threads import use_threads

    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        with use_threads(threads) if forced else contextlib.nullcontext():
            start = time.perf_counter()
            fn()
            return time.perf_counter() - start
    finally:
        torch.set_num_threads(before)


def demo_seconds(steps: int, threads: int | None) -> tuple[float, float]:
    """Wall-clock and CPU seconds (user + system) of one ``hookgnn demo`` in its own process."""
    cpu_before = resource.getrusage(resource.RUSAGE_CHILDREN)
    with tempfile.TemporaryDirectory() as out:
        cmd = [sys.executable, "-m", "hookgnn.cli", "demo", "--out", out, "--train", "--train-steps", str(steps)]
        start = time.perf_counter()
        subprocess.run(cmd + (["--threads", str(threads)] if threads else []), check=True, cwd=ROOT,
                       capture_output=True, timeout=1800, env={k: v for k, v in os.environ.items()
                                                                if k != "OMP_NUM_THREADS"})
        wall = time.perf_counter() - start
    cpu_after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (cpu_after.ru_utime + cpu_after.ru_stime) - (cpu_before.ru_utime + cpu_before.ru_stime)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="3 runs, 10 training steps")
    p.add_argument("--runs", type=int, default=None, help="runs per setting (default 5; --quick 3)")
    p.add_argument("--steps", type=int, default=None, help="training steps (default 40; --quick 10)")
    p.add_argument("--with-demo", action="store_true", help="also time the whole `hookgnn demo` under a competitor")
    p.add_argument("--demo-steps", type=int, default=400, help="--train-steps of the timed demo (default 400)")
    p.add_argument("--no-forced", action="store_true", help="skip the slow '2 forced' reference runs")
    p.add_argument("--json", type=Path, default=None, help="write the rows here (run_all reads its 'table')")
    args = p.parse_args(argv)
    if "OMP_NUM_THREADS" in os.environ:
        print("note: OMP_NUM_THREADS is set; hookgnn's policy then keeps torch's setting", file=sys.stderr)
    runs, steps = args.runs or (3 if args.quick else 5), args.steps or (10 if args.quick else 40)
    from hookgnn.ops import compiled

    compiled.load()  # the one-time build is not part of any timing
    jobs = workloads(steps)
    load = " ".join(f"{x:.1f}" for x in os.getloadavg())
    rows, table = [], []
    for condition in ("quiet", "busy"):
        with competitor(condition == "busy", seconds=1200):
            for name, fn in jobs.items():
                timed(fn, 2, False)  # warm-up
                times: dict[str, list[float]] = {"1": [], "2": [], "2 forced": []}
                for run in range(runs):  # interleaved, in turns, so that load changes hit both alike
                    for n in (1, 2) if run % 2 == 0 else (2, 1):
                        times[str(n)].append(timed(fn, n, False))
                    if run == 0 and not args.no_forced:  # a reference only, and slow: once
                        times["2 forced"].append(timed(fn, 2, True))
                med = {k: statistics.median(v) if v else None for k, v in times.items()}
                rows.append({"workload": name, "condition": condition, "t1_s": med["1"], "t2_s": med["2"],
                             "t2_forced_s": med["2 forced"], "ratio": med["2"] / med["1"], "runs": runs})
    if args.with_demo:
        with competitor(True, seconds=3600):
            (t_default, cpu_default), (t_one, cpu_one) = demo_seconds(args.demo_steps, None), demo_seconds(
                args.demo_steps, 1)
        rows.append({"workload": f"hookgnn demo, {args.demo_steps} steps", "condition": "busy", "t1_s": t_one,
                     "t2_s": t_default, "t2_forced_s": None, "ratio": t_default / t_one, "runs": 1,
                     "cpu_t1_s": cpu_one, "cpu_t2_s": cpu_default})
    choose_us, forward_us = call_overhead()
    print(f"load average {load} at the start, {' '.join(f'{x:.1f}' for x in os.getloadavg())} at the end; "
          f"{os.cpu_count()} CPUs; torch {torch.__version__}")
    print(f"{'workload':<44} {'condition':<9} {'1 thread s':>10} {'2 threads s':>11} {'ratio':>6} {'2 forced s':>10}")
    for r in rows:
        forced = "-" if r["t2_forced_s"] is None else f"{r['t2_forced_s']:.3f}"
        flag = "" if r["ratio"] <= TARGET else "  > target"
        print(f"{r['workload']:<44} {r['condition']:<9} {r['t1_s']:>10.3f} {r['t2_s']:>11.3f} {r['ratio']:>6.2f} "
              f"{forced:>10}{flag}")
        table.append({"workload": f"{r['workload']}, {r['condition']}", "peer": "1 thread", "peer_value": r["t1_s"],
                      "hookgnn_value": r["t2_s"], "unit": "s", "ratio": r["ratio"],
                      "ratio_means": f"2 threads / 1 thread (target <= {TARGET})", "runs": r["runs"]})
    for r in rows:
        if "cpu_t1_s" in r:  # wall time on a shared machine depends on its load; CPU time much less
            print(f"{r['workload']}: CPU seconds (user + system) {r['cpu_t1_s']:.1f} at 1 thread, "
                  f"{r['cpu_t2_s']:.1f} at 2")
    print(f"choosing threads per bare model call: {choose_us:.1f} us, against a 10-node no-grad forward of "
          f"{forward_us:.0f} us ({100 * choose_us / forward_us:.2f}%)")
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"load_average": load, "rows": rows, "table": table,
                                         "choose_threads_us": choose_us, "forward_10_nodes_us": forward_us},
                                        indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
