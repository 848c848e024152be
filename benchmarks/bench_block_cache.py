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

    python benchmarks/bench_block_cache.py --sizes 3e5 --caps 0,2048 --runs 3 --threads 1
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
    args = parser.parse_args()
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
    if args.json:
        Path(args.json).write_text(json.dumps({"threads": args.threads, "rows": [
            {"workload": f"attr_rows E={r['edges']:.0e} {r['variant']}", "peer": "two_passes",
             "peer_ms": 1000 * r["two"]["seconds"], "hookgnn_ms": 1000 * r["attr"]["seconds"],
             "ratio": r["ratio_wall"], "detail": r} for r in rows]}, indent=2))


if __name__ == "__main__":
    main()
