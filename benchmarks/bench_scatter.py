"""Benchmark scatter max (forward, backward, both, inference, peak memory) against its peers.

Workloads: E edges, F features, N = E / 10 nodes, a uniformly random destination index.
CPU: E in {1e5, 3e5, 1e6} x F in {64, 128}, at 1 thread and at all threads
(``--threads``). GPU (only where CUDA exists): E in {1e6, 1e7}, F = 128. Methods:

* ``hookgnn``: :func:`hookgnn.ops.scatter_max` on the default backend (compiled kernel on
  CPU, triton on CUDA), sorting the edges on every call;
* ``hookgnn+plan``: the same with a precomputed :class:`~hookgnn.ops.ScatterPlan` (what
  every round after the first costs inside ``HookedGNN.forward``);
* ``hookgnn[torch]``: the plain-PyTorch backend (CPU only);
* ``torch amax``: ``scatter_reduce(amax, include_self=False)`` with torch autograd;
* ``torch_scatter``: ``torch_scatter.scatter_max`` (when installed);
* ``index_add floor``: one ``[E, F] -> [N, F]`` ``index_add_`` pass (forward only).

Peak memory: each (workload, threads, method) in a fresh subprocess, after a small
warm-up (loads kernels, starts threads): the increase over one forward+backward (CPU:
``ru_maxrss`` after minus before, inputs and ``grad_out`` already exist; GPU:
``max_memory_allocated``). Times: all methods of a (workload, threads) in one subprocess
that first allocates, touches and frees several GB in blocks of mixed sizes
(``--fragment-gb``), as a long-running job would have, then runs ``--runs`` identical
forward+backward calls of every method round-robin (so that a change in the machine's
load hits every method alike; min / median / max, and max / median to show the
variance), then ``--runs`` forwards without gradients (``no-grad``: hookgnn's
value-only path). Times are in milliseconds.

    python benchmarks/bench_scatter.py                 # full table (several minutes)
    python benchmarks/bench_scatter.py --quick         # smoke run
    python benchmarks/bench_scatter.py --json out.json
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import statistics
import subprocess
import sys
import time

import torch

CPU_METHODS = ["hookgnn", "hookgnn+plan", "hookgnn[torch]", "torch amax", "torch_scatter", "index_add floor"]
GPU_METHODS = ["hookgnn", "hookgnn+plan", "torch amax", "torch_scatter", "index_add floor"]
OURS = "hookgnn"


def _forward(method: str, src: torch.Tensor, index: torch.Tensor, dim_size: int, plan) -> torch.Tensor:
    if method.startswith("hookgnn"):
        from hookgnn.ops import scatter

        name = "torch" if method == "hookgnn[torch]" else None
        return scatter(src, index, dim_size, "max", backend=name, plan=plan if method == "hookgnn+plan" else None)
    if method == "torch amax":
        idx = index.view(-1, 1).expand_as(src)
        return src.new_zeros(dim_size, src.shape[1]).scatter_reduce(0, idx, src, "amax", include_self=False)
    if method == "torch_scatter":
        import torch_scatter

        return torch_scatter.scatter_max(src, index, dim=0, dim_size=dim_size)[0]
    if method == "index_add floor":
        with torch.no_grad():
            return src.new_zeros(dim_size, src.shape[1]).index_add_(0, index, src)
    raise ValueError(method)


def _sync(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


def _once(method: str, src, index, grad, plan, device: str) -> tuple[float, float]:
    leaf = src.detach().requires_grad_(method != "index_add floor")
    _sync(device)
    start = time.perf_counter()
    out = _forward(method, leaf, index, grad.shape[0], plan)
    _sync(device)
    middle = time.perf_counter()
    if out.requires_grad:
        out.backward(grad)
    _sync(device)
    end = time.perf_counter()
    del out, leaf
    return (middle - start) * 1e3, (end - middle) * 1e3


def _inference(method: str, src, index, dim_size: int, plan, device: str) -> float:
    _sync(device)
    start = time.perf_counter()
    with torch.no_grad():
        out = _forward(method, src, index, dim_size, plan)
    _sync(device)
    del out
    return (time.perf_counter() - start) * 1e3


def fragment(gigabytes: float, seed: int = 0) -> None:
    """Allocate, touch and free ``gigabytes`` in blocks of 1-96 MB, interleaved, as a
    long-running job does, so that later allocations meet a used, fragmented heap."""
    rng = random.Random(seed)
    budget, live = int(gigabytes * 2**30), []
    while budget > 0:
        size = rng.randint(1, 96) * 2**20
        live.append(torch.empty(size // 4).fill_(1.0))
        budget -= size
        if len(live) > 8 and rng.random() < 0.5:
            live.pop(rng.randrange(len(live)))
    live.clear()


def _peak_mb(device: str, before: float) -> float:
    if device == "cuda":
        return (torch.cuda.max_memory_allocated() - before) / 2**20
    return (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024


def _inputs(num_edges: int, features: int, device: str, warm_methods: list[str]):
    """Seeded inputs and plan; first runs each method once on a small graph (loads
    kernels, starts threads)."""
    from hookgnn.ops import ScatterPlan

    torch.manual_seed(0)
    dim_size = max(1, num_edges // 10)
    small_index = torch.randint(0, 100, (1000,), device=device)
    small = (torch.randn(1000, features, device=device), small_index, torch.randn(100, features, device=device),
             ScatterPlan.build(small_index, 100))
    for method in warm_methods:
        _once(method, *small, device)
    index = torch.randint(0, dim_size, (num_edges,), device=device)
    src = torch.randn(num_edges, features, device=device)
    grad = torch.randn(dim_size, features, device=device)
    return src, index, grad, ScatterPlan.build(index, dim_size)


def peak_worker(method: str, num_edges: int, features: int, threads: int, device: str) -> dict:
    """Peak memory of one forward+backward of ``method``, alone in this fresh process."""
    torch.set_num_threads(threads)
    src, index, grad, plan = _inputs(num_edges, features, device, [method])
    _sync(device)
    if device == "cuda":
        torch.cuda.reset_peak_memory_stats()
        before = float(torch.cuda.memory_allocated())
    else:
        before = float(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
    _once(method, src, index, grad, plan, device)
    return {"peak_mb": _peak_mb(device, before)}


def time_worker(methods: list[str], num_edges: int, features: int, runs: int, threads: int, device: str,
                fragment_gb: float) -> dict:
    """Times of every method in this one process, round-robin (run r of every method, then
    run r + 1), so that a change in the machine's load hits all methods alike."""
    torch.set_num_threads(threads)
    src, index, grad, plan = _inputs(num_edges, features, device, methods)
    fragment(fragment_gb)
    dim_size = grad.shape[0]
    times: dict[str, list] = {m: [] for m in methods}
    nograd: dict[str, list] = {m: [] for m in methods}
    for method in methods:
        _once(method, src, index, grad, plan, device)
    for _ in range(runs):
        for method in methods:
            times[method].append(_once(method, src, index, grad, plan, device))
    for _ in range(runs):
        for method in methods:
            nograd[method].append(_inference(method, src, index, dim_size, plan, device))
    out = {}
    for method in methods:
        total = [f + b for f, b in times[method]]
        out[method] = {
            "fwd_ms": statistics.median(t[0] for t in times[method]),
            "bwd_ms": statistics.median(t[1] for t in times[method]),
            "total_ms": statistics.median(total),
            "total_min_ms": min(total),
            "total_max_ms": max(total),
            "nograd_ms": statistics.median(nograd[method]),
            "all_total_ms": total,
        }
    return out


def _spawn(*args: object) -> dict | None:
    cmd = [sys.executable, __file__, "--worker", json.dumps([str(a) if not isinstance(a, list) else a for a in args])]
    done = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        print(f"  worker {args[:2]} failed: {done.stderr.strip().splitlines()[-1:]}", file=sys.stderr)
        return None
    return json.loads(done.stdout.strip().splitlines()[-1])


HEADER = (f"{'device':<6} {'E':>8} {'F':>4} {'thr':>3}  {'method':<16}{'fwd':>8}{'bwd':>8}{'f+b':>8}{'min':>8}{'max':>8}"
          f"{'max/med':>8}{'no-grad':>9}{'peak MB':>9}  {'f+b ratio':>9}{'mem ratio':>10}")


def _table(device: str, sizes, threads_list, methods, runs: int, frag: float, results: list) -> None:
    print(HEADER)
    for num_edges, features in sizes:
        for threads in threads_list:
            timed = _spawn("time", methods, num_edges, features, runs, threads, device, frag) or {}
            rows = {}
            for m in methods:
                peak = _spawn("peak", m, num_edges, features, threads, device)
                if m in timed and peak is not None:
                    rows[m] = {**timed[m], **peak}
            ours = rows.get(OURS)
            for method, row in rows.items():
                if row is None:
                    continue
                ratio = row["total_ms"] / ours["total_ms"] if ours else float("nan")
                mem = row["peak_mb"] / ours["peak_mb"] if ours and ours["peak_mb"] > 0 else float("nan")
                print(
                    f"{device:<6} {num_edges:>8} {features:>4} {threads:>3}  {method:<16}{row['fwd_ms']:>8.1f}{row['bwd_ms']:>8.1f}"
                    f"{row['total_ms']:>8.1f}{row['total_min_ms']:>8.1f}{row['total_max_ms']:>8.1f}"
                    f"{row['total_max_ms'] / row['total_ms']:>8.2f}{row['nograd_ms']:>9.1f}{row['peak_mb']:>9.1f}  {ratio:>8.2f}x{mem:>9.2f}x"
                )
                results.append({"device": device, "edges": num_edges, "features": features, "threads": threads,
                                 "nodes": num_edges // 10, "method": method, **row})
            print()


def _targets(results: list, device: str, edges: int, features: int, threads: int) -> None:
    rows = {r["method"]: r for r in results
            if (r["device"], r["edges"], r["features"], r["threads"]) == (device, edges, features, threads)}
    ours = rows.get(OURS)
    if ours is None:
        return
    print(f"targets at {device} E={edges:g}, F={features}, {threads} threads (same run):")
    if "torch amax" in rows:
        print(f"  speed-up over torch amax (f+b): {rows['torch amax']['total_ms'] / ours['total_ms']:.2f}x")
    if "torch_scatter" in rows:
        print(f"  speed-up over torch_scatter (f+b): {rows['torch_scatter']['total_ms'] / ours['total_ms']:.2f}x; "
              f"peak {ours['peak_mb']:.1f} MB vs {rows['torch_scatter']['peak_mb']:.1f} MB")
    if "index_add floor" in rows:
        print(f"  f+b / one index_add pass: {ours['total_ms'] / rows['index_add floor']['total_ms']:.2f}x")
    print(f"  max / median of {len(ours['all_total_ms'])} f+b calls after fragmenting: "
          f"{ours['total_max_ms'] / ours['total_ms']:.2f}")


def _parse_sizes(text: str | None) -> list[tuple[int, int]]:
    return [(int(float(e)), int(f)) for e, f in (item.split("x") for item in text.split(","))] if text else []


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="small smoke run")
    parser.add_argument("--runs", type=int, default=None, help="timed runs per measurement (default 10; 3 with --quick)")
    parser.add_argument("--threads", type=str, default=None, help="comma-separated CPU thread counts (default: 1 and all)")
    parser.add_argument("--fragment-gb", type=float, default=None, help="GB to allocate and free before timing (default 3)")
    parser.add_argument("--device", choices=["all", "cpu", "cuda"], default="all", help="which tables to run")
    parser.add_argument("--sizes", type=str, default=None, help="workloads as ExF, comma-separated (e.g. 1e6x128)")
    parser.add_argument("--methods", type=str, default=None, help="comma-separated subset of the methods")
    parser.add_argument("--json", type=str, default=None, help="write results to this path")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        kind, *rest = json.loads(args.worker)
        if kind == "peak":
            method, num_edges, features, threads, device = rest
            print(json.dumps(peak_worker(method, int(num_edges), int(features), int(threads), device)))
        else:
            methods, num_edges, features, runs, threads, device, frag = rest
            print(json.dumps(time_worker(methods, int(num_edges), int(features), int(runs), int(threads), device, float(frag))))
        return
    if args.json:
        with open(args.json, "w") as fh:  # fail now, not after minutes of measuring
            fh.write("{}")

    from hookgnn.ops import backend, compiled

    start = time.perf_counter()
    compiled.load()  # build once before timing anything
    print(f"compiled kernel ready in {time.perf_counter() - start:.1f} s (OpenMP: {compiled.has_openmp()})")
    all_threads = torch.get_num_threads()
    threads_list = [int(t) for t in args.threads.split(",")] if args.threads else sorted({1, all_threads})
    runs = args.runs or (3 if args.quick else 10)
    frag = args.fragment_gb if args.fragment_gb is not None else (0.5 if args.quick else 3.0)
    print(f"torch {torch.__version__}, threads {threads_list}, load average {os.getloadavg()}, "
          f"{runs} runs, {frag} GB allocated and freed before timing")
    have_ts = backend.torch_scatter_installed()
    results: list = []
    if args.device in ("all", "cpu"):
        sizes = [(10_000, 16), (30_000, 32)] if args.quick else [(e, f) for e in (100_000, 300_000, 1_000_000) for f in (64, 128)]
        sizes = _parse_sizes(args.sizes) or sizes
        methods = [m for m in CPU_METHODS if (m != "torch_scatter" or have_ts) and m in (args.methods or m).split(",")]
        _table("cpu", sizes, threads_list, methods, runs, frag, results)
        big = sizes[-1]
        _targets(results, "cpu", *big, max(threads_list))
    if args.device in ("all", "cuda") and torch.cuda.is_available():
        sizes = [(100_000, 32)] if args.quick else [(1_000_000, 128), (10_000_000, 128)]
        sizes = _parse_sizes(args.sizes) or sizes
        methods = [m for m in GPU_METHODS if (m != "torch_scatter" or have_ts) and m in (args.methods or m).split(",")]
        print(f"GPU: {torch.cuda.get_device_name()}, hookgnn backend {backend.resolve_backend(torch.zeros(1, device='cuda'))}")
        _table("cuda", sizes, [all_threads], methods, runs, frag, results)
        for size in sizes:
            _targets(results, "cuda", *size, all_threads)
    elif args.device == "cuda":
        print("no CUDA device here: GPU rows skipped")
    print("ratio = peer / hookgnn (above 1: hookgnn is faster / smaller); max/med = slowest / median f+b call")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump({"torch": torch.__version__, "runs": runs, "fragment_gb": frag, "results": results}, fh, indent=1)


if __name__ == "__main__":
    main()
