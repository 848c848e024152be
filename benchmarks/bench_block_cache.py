"""Benchmark: ``attribute(keep="rows")`` against its own two passes, with and without the CPU block cache.

Runs ``bench_scaling.py``'s children (one fresh process per cell: the model with d = 64 and 8 rounds, one
graph of E edges, N = E / 10) for the workloads ``two_passes`` (a no-grad source forward plus a base
forward and backward in plain torch) and ``attr_rows`` (``attribute(keep="rows")``), interleaved: every
repetition runs each variant's two workloads back to back, so a busy machine slows both alike. Variants:

* ``cap=M``: this checkout with ``HOOKGNN_BLOCK_CACHE_MB=M`` (``0``: no cache, the allocator of main);
* ``cap=M+two``: the same, with the two passes also run inside ``block_cache()`` (does the cache speed
  up plain torch too?);
* ``main``: the hookgnn of another checkout (``--main PATH``), run by this checkout's children.

Each cell reports wall seconds, user and system CPU seconds, minor page faults (``getrusage``) and the
peak resident set (``VmHWM``, whole process). The table shows medians over ``--runs``; ratio =
attr_rows / two_passes, by wall and by CPU time (user + system). The children set
``MALLOC_MMAP_THRESHOLD_=65536`` unless ``--default-malloc``, as ``bench_scaling.py`` does, and
``THP_MEM_ALLOC_ENABLE=0`` unless ``--thp`` (huge pages: ``bench_scaling.py``'s parent imports hookgnn
before torch, so its children inherit hookgnn's default ``THP_MEM_ALLOC_ENABLE=1``; ``--thp`` is that setting).

With ``--warm K`` it also measures the steady state of a job that calls ``attribute`` again and again (the
issue's "reuse buffers across rounds and calls"): per variant one process builds the model and graph once,
then alternates the two passes and ``attr_rows`` K times, the whole loop inside one outer
``block_cache(cap)`` for ``cap > 0`` (as the docs advise for such a loop; ``cap=0``: no cache anywhere);
the table shows medians over calls 2 .. K (the first call of each pays the first touch of its memory).

    python benchmarks/bench_block_cache.py --sizes 3e5 --caps 0,2048 --runs 3 --threads 1
    python benchmarks/bench_block_cache.py --sizes 1e6 --caps 0,2048 --runs 0 --warm 4 --threads 2 --thp
    python benchmarks/bench_block_cache.py --quick
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
SCALING = HERE / "bench_scaling.py"


def run_cell(edges: int, work: str, root: Path, env_extra: dict[str, str], args: argparse.Namespace) -> dict[str, float]:
    env = dict(os.environ, OMP_NUM_THREADS=str(args.threads), PYTHONPATH=str(root), **env_extra)
    if not args.default_malloc:
        env["MALLOC_MMAP_THRESHOLD_"] = "65536"
    env["THP_MEM_ALLOC_ENABLE"] = "1" if args.thp else "0"
    env.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # as hookgnn sets it for bench_scaling.py's children
    cmd = [sys.executable, str(SCALING), "--child", str(edges), work, "--threads", str(args.threads)]
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=args.timeout)
    if done.returncode != 0:
        raise RuntimeError(f"{work} at E={edges} ({env_extra}) failed:\n{done.stderr[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def warm_child(edges: int, cap_mb: int, calls: int, threads: int) -> dict[str, list[float]]:
    """In one process: the two passes and ``attr_rows`` alternated ``calls`` times (inside one
    ``block_cache`` of ``cap_mb`` MiB when positive); wall and CPU seconds of every call."""
    import contextlib
    import time

    import torch

    sys.path.insert(0, str(HERE))
    from bench_scaling import build, two_passes

    from hookgnn.attribution import attribute
    from hookgnn.ops.block_cache import block_cache

    torch.set_num_threads(threads)
    model, g, corrupted, metric = build(edges, 64, 8)
    out: dict[str, list[float]] = {"two_wall": [], "two_cpu": [], "attr_wall": [], "attr_cpu": []}
    scope = block_cache(cap=cap_mb << 20) if cap_mb > 0 else contextlib.nullcontext()
    with scope:
        for _ in range(calls):
            for key, fn in (("two", lambda: two_passes(model, g, corrupted, metric)),
                            ("attr", lambda: attribute(model, g, corrupted, metric, keep="rows"))):
                wall, cpu = time.perf_counter(), time.process_time()
                fn()
                out[key + "_wall"].append(time.perf_counter() - wall)
                out[key + "_cpu"].append(time.process_time() - cpu)
    return out


def warm_table(edges: int, args: argparse.Namespace) -> str:
    lines = ["| E | variant | two passes s (wall / CPU) | attr_rows s (wall / CPU) | ratio wall | ratio CPU |",
             "|---|---|---|---|---|---|"]
    for cap in [c for c in args.caps.split(",") if c]:
        env = dict(os.environ, OMP_NUM_THREADS=str(args.threads), PYTHONPATH=str(HERE.parent),
                   HOOKGNN_BLOCK_CACHE_MB=cap, THP_MEM_ALLOC_ENABLE="1" if args.thp else "0")
        env.setdefault("OMP_WAIT_POLICY", "PASSIVE")
        if not args.default_malloc:
            env["MALLOC_MMAP_THRESHOLD_"] = "65536"
        cmd = [sys.executable, __file__, "--warm-child", str(edges), cap, "--warm", str(args.warm),
               "--threads", str(args.threads)]
        done = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=args.timeout)
        if done.returncode != 0:
            raise RuntimeError(f"warm run at E={edges}, cap={cap} failed:\n{done.stderr[-2000:]}")
        calls = json.loads(done.stdout.strip().splitlines()[-1])
        m = {k: statistics.median(v[1:]) for k, v in calls.items()}
        print(f"E={edges:.0e} warm cap={cap}: " + ", ".join(f"{k} {[round(x, 2) for x in v]}" for k, v in calls.items())
              + f"; load {os.getloadavg()[0]:.1f}", flush=True)
        lines.append(f"| {edges:.0e} | {'no cache' if cap == '0' else f'one block_cache({cap} MiB)'} | "
                     f"{m['two_wall']:.2f} / {m['two_cpu']:.2f} | {m['attr_wall']:.2f} / {m['attr_cpu']:.2f} | "
                     f"{m['attr_wall'] / m['two_wall']:.2f} | {m['attr_cpu'] / m['two_cpu']:.2f} |")
    return "\n".join(lines)


def variants(args: argparse.Namespace) -> list[tuple[str, Path, dict[str, str]]]:
    out = [(f"cap={c}", HERE.parent, {"HOOKGNN_BLOCK_CACHE_MB": c}) for c in args.caps.split(",") if c]
    out += [(f"cap={c}+two", HERE.parent, {"HOOKGNN_BLOCK_CACHE_MB": c, "HOOKGNN_BENCH_BLOCK_CACHE": "1"})
            for c in args.two_caps.split(",") if c]
    if args.main:
        out.append(("main", Path(args.main).resolve(), {}))
    return out


def _med(cells: list[dict[str, float]], key: str) -> float:
    return statistics.median(c[key] for c in cells)


def table(results: dict[tuple[int, str, str], list[dict[str, float]]]) -> tuple[str, list[dict[str, Any]]]:
    lines = ["| E | variant | two passes s (user / sys) | attr_rows s (user / sys) | ratio wall | ratio CPU | "
             "minor faults M (two; attr) | peak GB (two; attr) |", "|---|---|---|---|---|---|---|---|"]
    rows = []
    for (edges, name, work), cells in results.items():
        if work != "attr_rows" or (edges, name, "two_passes") not in results:
            continue
        two = results[(edges, name, "two_passes")]
        t, a = {k: _med(two, k) for k in two[0]}, {k: _med(cells, k) for k in cells[0]}
        cpu_t, cpu_a = t["user"] + t["sys"], a["user"] + a["sys"]
        row = {"edges": edges, "variant": name, "two": t, "attr": a, "ratio_wall": a["seconds"] / t["seconds"],
               "ratio_cpu": cpu_a / cpu_t, "runs": len(cells)}
        rows.append(row)
        lines.append(f"| {edges:.0e} | {name} | {t['seconds']:.2f} ({t['user']:.1f} / {t['sys']:.1f}) | "
                     f"{a['seconds']:.2f} ({a['user']:.1f} / {a['sys']:.1f}) | {row['ratio_wall']:.2f} | "
                     f"{row['ratio_cpu']:.2f} | {t['minflt'] / 1e6:.2f}; {a['minflt'] / 1e6:.2f} | "
                     f"{t['maxrss'] / 1e9:.1f}; {a['maxrss'] / 1e9:.1f} |")
    return "\n".join(lines), rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="3e5", help="comma-separated edge counts")
    parser.add_argument("--caps", default="0,2048", help="HOOKGNN_BLOCK_CACHE_MB values (0: no cache)")
    parser.add_argument("--two-caps", default="", help="caps at which the two passes also run inside the cache")
    parser.add_argument("--main", default=None, help="another checkout whose hookgnn runs as the variant 'main'")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--timeout", type=float, default=1800)
    parser.add_argument("--default-malloc", action="store_true", help="keep glibc's dynamic mmap threshold")
    parser.add_argument("--thp", action="store_true",
                        help="THP_MEM_ALLOC_ENABLE=1 in the children (huge pages, as when hookgnn is imported first)")
    parser.add_argument("--json", default=None)
    parser.add_argument("--quick", action="store_true", help="E = 1e5, one run")
    parser.add_argument("--warm", type=int, default=0,
                        help="also the steady state: calls per process (medians over calls 2 .. K; 0: off)")
    parser.add_argument("--warm-child", nargs=2, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.warm_child:
        edges, cap = int(float(args.warm_child[0])), int(args.warm_child[1])
        print(json.dumps(warm_child(edges, cap, args.warm, args.threads)))
        return
    if args.warm == 1 or args.warm < 0:
        parser.error("--warm takes 0 (off) or at least 2 calls (the first is not counted)")
    if args.json:  # the output path is checked before the long job
        from hookgnn.outpaths import writable_file

        writable_file(args.json)
    sizes = [int(float(s)) for s in ("1e5" if args.quick else args.sizes).split(",")]
    runs = 1 if args.quick else args.runs
    print(f"d=64, 8 rounds, {args.threads} thread(s), {runs} interleaved run(s), huge pages "
          f"{'on' if args.thp else 'off'}, {'default malloc' if args.default_malloc else 'MALLOC_MMAP_THRESHOLD_=65536'}; "
          f"load {os.getloadavg()[0]:.1f}")
    results: dict[tuple[int, str, str], list[dict[str, float]]] = {}
    for edges in sizes:
        for rep in range(runs):
            for name, root, extra in variants(args):
                for work in ("two_passes", "attr_rows"):
                    cell = run_cell(edges, work, root, extra, args)
                    results.setdefault((edges, name, work), []).append(cell)
                    print(f"E={edges:.0e} run {rep} {name:12s} {work:10s} {cell['seconds']:7.2f} s user "
                          f"{cell['user']:6.1f} sys {cell['sys']:6.1f} faults {cell['minflt'] / 1e6:5.2f}M peak "
                          f"{cell['maxrss'] / 1e9:5.1f} GB load {os.getloadavg()[0]:.1f}", flush=True)
    text, rows = table(results)
    print()
    print(text)
    if args.warm:
        print("\nsteady state (one process per variant, medians of calls 2 .. K):")
        print("\n".join(warm_table(edges, args) for edges in sizes))
    if args.json:
        Path(args.json).write_text(json.dumps({"threads": args.threads, "rows": [
            {"workload": f"attr_rows E={r['edges']:.0e} {r['variant']}", "peer": "two_passes",
             "peer_ms": 1000 * r["two"]["seconds"], "hookgnn_ms": 1000 * r["attr"]["seconds"],
             "ratio": r["ratio_wall"], "detail": r} for r in rows]}, indent=2))


if __name__ == "__main__":
    main()
