"""Benchmark: time and peak memory of one large graph, from 1e4 to 1e7 edges.

Workload: one random graph with E edges and N = E/10 nodes, an MPNN reasoner (max
aggregation) with d = 64 and 8 rounds (``--d``, ``--rounds``), metric: the sum of a
scalar node output. Each (size, workload) runs in a fresh subprocess. Peak memory is
the increase of the process's resident set over its size once the model and the
graphs are built: ``/proc/self/clear_refs`` resets the high-water mark, ``VmHWM`` is
read after the workload. Pages of files mapped back from disk count while mapped.
The children run with ``MALLOC_MMAP_THRESHOLD_=65536`` (``--default-malloc`` to turn
it off): glibc otherwise keeps freed blocks of 1-32 MB in its heap, which inflates
peaks at 1e4-1e5 edges by up to 2x (at 1e6 edges blocks are larger and mapped anyway).

Workloads (peers first):

* ``forward``: the model under ``torch.no_grad()`` (the floor);
* ``two_passes``: what attribution patching cannot avoid, in plain torch: a ``torch.no_grad()``
  forward of the source graph, then a forward of the base graph and the backward of the metric
  to the inputs, parameters frozen (the peer of ``attr_rows``: the ratio is its overhead);
* ``cache``: ``run_with_cache`` of every hook point in RAM; ``cache_disk``: the same with
  ``device="disk"`` (each activation written to a file when made, mapped back); ``--cache-rounds K``
  caches only the hook points outside rounds and those of rounds ``0 .. K-1`` (every hook of 8 rounds
  at E = 1e7 writes about 88 GiB; resident memory does not grow with the rounds cached, as each
  activation is written and dropped when made);
  ``--names REGEX`` attributes only the hook points whose name matches (e.g. the messages and node states,
  ``"hook_message|hook_update$"``: the message MLP then runs in edge chunks, as nothing hooks its hidden layer);
* ``attr_all``: ``attribute`` of every hook with ``keep="all"`` (differences and
  gradients of every hook; what hookgnn did before ``keep=``);
* ``attr_entries`` / ``attr_rows``: ``keep="entries"`` / ``"rows"`` (products made as the
  backward reaches each hook, parameters frozen); ``attr_rows_disk``: ``keep="rows"``
  with ``offload=`` a temporary folder (source activations and differences in files); for it and ``cache_disk``
  the most disk the folder's file system lost while the workload ran (``disk peak``, sampled every 0.2 s);
* ``sweep_budget``: ``patch`` of every feature of the node states of round
  R-2 (``neurons(model, "update", [R-2])``: d patched copies of the graph) with ``max_memory=--sweep-budget``;
  the table shows its peak against the budget. A budget ``"8x"`` (the default) is 8 times
  :func:`~hookgnn.patching.budget.bytes_per_copy` of the graph (so 8 copies per forward):
  the peak against it checks the estimate; an absolute budget (``"2GiB"``) below one
  copy's need runs one copy at a time and cannot be met. It takes about d forwards, so it runs
  only up to ``--sweep-max-edges`` (default 1e6) edges.

The message MLP runs in edge chunks above ``--edge-chunk-size`` edges (``HOOKGNN_EDGE_CHUNK_SIZE`` in
the children; default: the library's, 2**20; 0 turns chunking off, the path of earlier releases), see
:mod:`hookgnn.nn.chunking`.

A size whose estimated peak (extrapolated linearly in E from the previous size's
measurement) exceeds ``--limit`` (default 16 GiB) or the memory available now is
skipped and marked so.

    python benchmarks/bench_scaling.py --quick
    python benchmarks/bench_scaling.py --sizes 1e4,1e5,1e6 --json out.json
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

WORKLOADS = ("forward", "two_passes", "cache", "cache_disk", "attr_all", "attr_entries", "attr_rows", "attr_rows_disk",
             "sweep_budget")
PEERS = {"cache": "forward", "cache_disk": "forward", "attr_all": "forward", "attr_entries": "attr_all",
         "attr_rows": "two_passes", "attr_rows_disk": "attr_all", "forward": "forward", "two_passes": "forward"}


def _status() -> dict[str, int]:
    out = {}
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(("VmRSS", "VmHWM")):
                key, value = line.split(":")
                out[key] = int(value.split()[0]) * 1024
    return out


def _two_passes_scope() -> Any:
    """``block_cache()`` when ``HOOKGNN_BENCH_BLOCK_CACHE`` is set (``bench_block_cache.py``), else nothing."""
    import contextlib

    if not os.environ.get("HOOKGNN_BENCH_BLOCK_CACHE"):
        return contextlib.nullcontext()
    from hookgnn.ops.block_cache import block_cache

    return block_cache()


def build(edges: int, d: int, rounds: int) -> tuple[Any, Any, Any, Any]:
    """The benchmark's seeded model, graph (N = E / 10), corrupted graph and metric; kernels warmed."""
    import torch

    from hookgnn import Graph, HookedGNN
    from hookgnn.attribution import attribute
    from hookgnn.metrics import OutputSum
    from hookgnn.spec import FeatureSpec

    torch.manual_seed(0)
    n = max(edges // 10, 2)
    g = Graph(x=torch.rand(n, 1), edge_index=torch.randint(0, n, (2, edges)), edge_attr=torch.rand(edges, 1))
    corrupted = g.replace(x=torch.rand(n, 1))
    model = HookedGNN("mpnn", d, node_in=1, edge_in=1, spec={"d": FeatureSpec("output", "node", "scalar")},
                      max_steps=rounds)
    metric = OutputSum("d")
    small = Graph(x=torch.rand(4, 1), edge_index=torch.tensor([[0, 1], [1, 2]]), edge_attr=torch.rand(2, 1))
    attribute(model, small, small.replace(x=torch.rand(4, 1)), metric, keep="rows")  # warm kernels
    return model, g, corrupted, metric


def two_passes(model: Any, g: Any, corrupted: Any, metric: Any) -> None:
    """The peer of ``attr_rows``: a no-grad forward of the corrupted graph, then a forward and backward of the
    clean one with frozen parameters, in plain torch (no hooks)."""
    import torch

    with torch.no_grad():
        model(corrupted)
    for p in model.parameters():
        p.requires_grad_(False)
    try:
        leaf = g.replace(x=g.x.clone().requires_grad_())
        metric(model(leaf), leaf).sum().backward()
    finally:
        for p in model.parameters():
            p.requires_grad_(True)


def child(edges: int, d: int, rounds: int, work: str, budget: str, threads: int,
          cache_rounds: int | None = None, names: str | None = None) -> dict[str, float]:
    """Build the model and graphs, run one workload, return seconds and peak bytes above the start."""
    import torch

    from hookgnn.attribution import attribute
    from hookgnn.patching import neurons, patch
    from hookgnn.patching.budget import parse_bytes

    torch.set_num_threads(threads)
    model, g, corrupted, metric = build(edges, d, rounds)
    if work == "sweep_budget" and budget.lower().endswith("x"):
        from hookgnn.patching.budget import bytes_per_copy

        budget = str(int(float(budget[:-1]) * bytes_per_copy(model, g)))
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")
    start = _status()["VmRSS"]
    import resource

    r0 = resource.getrusage(resource.RUSAGE_SELF)
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory(dir=os.environ.get("HOOKGNN_BENCH_TMP")) as spill, _DiskPeak(spill) as disk:
        if work == "forward":
            with torch.no_grad():
                model(g)
        elif work == "cache":
            with torch.no_grad():
                model.run_with_cache(g)
        elif work == "cache_disk":
            places = model.round_places
            keep = None if cache_rounds is None else (lambda n: n not in places or places[n][0] < cache_rounds)
            with torch.no_grad():
                _, cache = model.run_with_cache(g, names_filter=keep, device="disk")
            written = float(sum(t.numel() * t.element_size() for t in cache.values()))
            del cache
        elif work == "two_passes":
            with _two_passes_scope():
                two_passes(model, g, corrupted, metric)
        elif work == "sweep_budget":
            patch(model, g, corrupted, metric, neurons(model, "update", [rounds - 2]), max_memory=budget)
        else:
            keep = {"attr_all": "all", "attr_entries": "entries"}.get(work, "rows")
            pick = None if names is None else (lambda n: re.search(names, n) is not None)
            attribute(model, g, corrupted, metric, names_filter=pick, keep=keep,
                      offload=spill if work == "attr_rows_disk" else None)
        seconds = time.perf_counter() - t0
    r1 = resource.getrusage(resource.RUSAGE_SELF)
    return {"seconds": seconds, "peak": float(_status()["VmHWM"] - start), "user": r1.ru_utime - r0.ru_utime,
            "sys": r1.ru_stime - r0.ru_stime, "minflt": float(r1.ru_minflt - r0.ru_minflt),
            "maxrss": float(_status()["VmHWM"]),
            "budget": float(parse_bytes(budget)) if work == "sweep_budget" else 0.0,
            "written": written if work == "cache_disk" else 0.0,
            "spilled": float(disk.peak) if work in ("cache_disk", "attr_rows_disk") else 0.0}


class _DiskPeak:
    """The most disk the block used on the spill folder's file system: its free space sampled every 0.2 s
    from a thread (anything else writing there counts too; run on a quiet machine)."""

    def __init__(self, folder: str) -> None:
        import threading

        self.folder, self.peak, self._stop = folder, 0, threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def _free(self) -> int:
        st = os.statvfs(self.folder)
        return st.f_bavail * st.f_frsize

    def _sample(self) -> None:
        start = self._free()
        while True:
            self.peak = max(self.peak, start - self._free())
            if self._stop.wait(0.2):
                return

    def __enter__(self) -> _DiskPeak:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def _available() -> int:
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemAvailable"):
                return int(line.split()[1]) * 1024
    return 0


def run_child(edges: int, work: str, args: argparse.Namespace) -> dict[str, float]:
    env = dict(os.environ, OMP_NUM_THREADS=str(args.threads))
    if args.edge_chunk_size is not None:
        env["HOOKGNN_EDGE_CHUNK_SIZE"] = str(args.edge_chunk_size)
    if not args.default_malloc:
        env["MALLOC_MMAP_THRESHOLD_"] = "65536"
    root = Path(__file__).resolve().parents[1]
    env["PYTHONPATH"] = os.pathsep.join([str(root), env.get("PYTHONPATH", "")])
    cmd = [sys.executable, __file__, "--child", str(edges), work, "--d", str(args.d), "--rounds", str(args.rounds),
           "--sweep-budget", args.sweep_budget, "--threads", str(args.threads)]
    if args.cache_rounds is not None:
        cmd += ["--cache-rounds", str(args.cache_rounds)]
    if args.names is not None:
        cmd += ["--names", args.names]
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=args.timeout)
    if done.returncode != 0:
        raise RuntimeError(f"{work} at E={edges} failed:\n{done.stderr[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="1e4,1e5,1e6,1e7", help="comma-separated edge counts")
    parser.add_argument("--workloads", default=",".join(WORKLOADS))
    parser.add_argument("--d", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=8)
    parser.add_argument("--runs", type=int, default=3, help="timed runs per cell below 1e6 edges (median; 1 above)")
    parser.add_argument("--limit", default="16GiB", help="skip a cell whose estimated peak exceeds this")
    parser.add_argument("--sweep-budget", default="8x",
                        help="max_memory of the sweep_budget workload: bytes ('2GiB') or a multiple of one copy ('8x')")
    parser.add_argument("--sweep-max-edges", type=float, default=1e6, help="largest E of the sweep_budget workload")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--timeout", type=float, default=3600)
    parser.add_argument("--default-malloc", action="store_true", help="keep glibc's dynamic mmap threshold")
    parser.add_argument("--edge-chunk-size", type=int, default=None,
                        help="HOOKGNN_EDGE_CHUNK_SIZE of the children (0: no chunking; default: the library's)")
    parser.add_argument("--cache-rounds", type=int, default=None,
                        help="cache_disk: cache the hooks outside rounds and of rounds 0..K-1 only (default: all)")
    parser.add_argument("--names", default=None,
                        help="attr_* workloads: attribute only the hook points whose name matches this regular expression")
    parser.add_argument("--json", default=None)
    parser.add_argument("--quick", action="store_true", help="1e4 and 1e5 edges, one run")
    parser.add_argument("--child", nargs=2, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(int(float(args.child[0])), args.d, args.rounds, args.child[1], args.sweep_budget,
                               args.threads, args.cache_rounds, args.names)))
        return
    from hookgnn.patching.budget import parse_bytes

    sizes = [int(float(s)) for s in ("1e4,1e5" if args.quick else args.sizes).split(",")]
    runs = 1 if args.quick else args.runs
    limit = parse_bytes(args.limit)
    if args.sweep_budget.lower().endswith("x"):
        try:
            assert float(args.sweep_budget[:-1]) > 0
        except (ValueError, AssertionError):
            parser.error(f"--sweep-budget {args.sweep_budget!r}: a multiple of one copy is a positive number and 'x'")
    else:
        parse_bytes(args.sweep_budget)  # a bad size fails here, not in the first child
    if args.json:  # the output path is checked before the long job
        from hookgnn.outpaths import writable_file

        writable_file(args.json)
    results: list[dict[str, Any]] = []
    per_edge: dict[str, float] = {}
    print(f"one graph, N = E/10, d={args.d}, {args.rounds} rounds, {args.threads} thread(s); peak = resident memory "
          f"above the built inputs{'' if args.default_malloc else ' (MALLOC_MMAP_THRESHOLD_=65536)'}; edge chunk size "
          f"{'library default' if args.edge_chunk_size is None else args.edge_chunk_size}")
    for edges in sizes:
        for work in args.workloads.split(","):
            if work == "sweep_budget" and edges > args.sweep_max_edges:
                print(f"E={edges:.0e} {work:15s} skipped: above --sweep-max-edges", flush=True)
                results.append({"edges": edges, "workload": work, "skipped": True, "estimate": 0.0})
                continue
            guess = per_edge.get(work, 0.0) * edges
            if guess > min(limit, 0.9 * _available()):
                print(f"E={edges:.0e} {work:15s} skipped: estimated {guess / 2**30:.1f} GiB > limit "
                      f"{limit / 2**30:.1f} GiB or available {_available() / 2**30:.1f} GiB", flush=True)
                results.append({"edges": edges, "workload": work, "skipped": True, "estimate": guess})
                continue
            cells = [run_child(edges, work, args) for _ in range(runs if edges < 10**6 else 1)]
            seconds = statistics.median(c["seconds"] for c in cells)
            peak = cells[0]["peak"]
            per_edge[work] = max(peak / edges, per_edge.get(work, 0.0))
            results.append({"edges": edges, "workload": work, "seconds": seconds, "peak": peak,
                            "budget": cells[0]["budget"], "written": cells[0]["written"], "spilled": cells[0]["spilled"]})
            wrote = f", {cells[0]['written'] / 2**30:.1f} GiB written" if cells[0]["written"] else ""
            wrote += f", disk peak {cells[0]['spilled'] / 2**30:.1f} GiB" if cells[0]["spilled"] else ""
            print(f"E={edges:.0e} {work:15s} {seconds:8.2f} s  {peak / 2**20:9.1f} MB  "
                  f"({peak / edges * 1000 / 2**20:.2f} MB per 1000 edges{wrote})", flush=True)
    print()
    print(_table(results, args))
    if args.json:
        Path(args.json).write_text(json.dumps({"d": args.d, "rounds": args.rounds, "edge_chunk_size": args.edge_chunk_size,
                                               "results": results}, indent=2))


def _table(results: list[dict[str, Any]], args: argparse.Namespace) -> str:
    cell = {(r["edges"], r["workload"]): r for r in results}
    lines = ["| E | workload | peer | time s (peer) | time ratio hookgnn / peer | peak MB (peer) | peak ratio peer / hookgnn |",
             "|---|---|---|---|---|---|---|"]
    for r in results:
        e, w = r["edges"], r["workload"]
        if r.get("skipped"):
            lines.append(f"| {e:.0e} | {w} | | skipped | | est. {r['estimate'] / 2**20:.0f} MB | |")
            continue
        if w == "sweep_budget":
            budget = r["budget"]
            lines.append(f"| {e:.0e} | {w} | budget {args.sweep_budget} | {r['seconds']:.2f} | | {r['peak'] / 2**20:.1f} "
                         f"({budget / 2**20:.0f}) | {budget / max(r['peak'], 1):.2f} |")
            continue
        peer = cell.get((e, PEERS.get(w, "forward")))
        if peer is None or peer.get("skipped") or peer is r:
            lines.append(f"| {e:.0e} | {w} | | {r['seconds']:.2f} | | {r['peak'] / 2**20:.1f} | |")
            continue
        lines.append(f"| {e:.0e} | {w} | {peer['workload']} | {r['seconds']:.2f} ({peer['seconds']:.2f}) | "
                     f"{r['seconds'] / max(peer['seconds'], 1e-9):.2f} | "
                     f"{r['peak'] / 2**20:.1f} ({peer['peak'] / 2**20:.1f}) | {peer['peak'] / max(r['peak'], 1):.2f} |")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
