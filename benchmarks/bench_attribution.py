"""Attribution patching against its own two passes: what it costs on top of them.

``attribute(model, clean, corrupted, metric)`` (``ig_steps=0``) needs one forward of the source
run (activations of every hook) and one forward + backward of the base run (activations
and gradients of every hook), then multiplies differences by gradients:

.. math:: \\hat s = (a_{src} - a_{base}) \\odot \\partial m / \\partial a_{base}

The peer is the bare minimum those two passes cost: ``model(clean)`` under
``torch.no_grad()`` plus ``metric(model(corrupted)).sum().backward()``, on the same model
with no hook attached. ratio = attribution ms / two-pass ms (target: <= 1.3 at E = 1e6). Each
row also gives the median user and system CPU seconds and page faults of both (system time is
mostly the kernel mapping fresh memory).
``--keep rows`` keeps per-row products only (``keep="all"`` at E = 1e6 needs ~37 GB).

Model: ``HookedGNN("mpnn", d=64)``, 8 rounds with their own weights, N = E / 10 random
nodes, a scalar node output read by ``OutputSum``. Runs of the two alternate in one
process; medians of ``--runs``.

    python benchmarks/bench_attribution.py                   # E = 1e5 and 1e6, 5 runs
    python benchmarks/bench_attribution.py --quick           # E = 2e4, 3 runs
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import time
from pathlib import Path

import torch

D, ROUNDS = 64, 8


def build(num_edges: int, rounds: int):  # noqa: ANN201
    from hookgnn import Graph, HookedGNN
    from hookgnn.spec import FeatureSpec

    torch.manual_seed(0)
    n = max(2, num_edges // 10)
    spec = {"d": FeatureSpec("output", "node", "scalar")}
    model = HookedGNN("mpnn", D, node_in=2, edge_in=1, spec=spec, max_steps=rounds, tie_weights=False)
    edge_index = torch.randint(0, n, (2, num_edges))
    clean = Graph(x=torch.randn(n, 2), edge_index=edge_index, edge_attr=torch.rand(num_edges, 1))
    return model, clean, clean.replace(x=torch.randn(n, 2))


def two_passes(model, clean, corrupted, metric) -> None:  # noqa: ANN001
    with torch.no_grad():
        model(clean)
    metric(model(corrupted), corrupted).sum().backward()
    model.zero_grad(set_to_none=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="E = 2e4, 3 runs")
    parser.add_argument("--sizes", default=None, help="edge counts, e.g. 1e5,1e6")
    parser.add_argument("--runs", type=int, default=None)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--clock", choices=("wall", "cpu"), default="wall")
    parser.add_argument("--keep", choices=("all", "entries", "rows", "features"), default="all",
                        help="what attribute keeps (all: ~37 MB per 1,000 edges; rows: ~15)")
    parser.add_argument("--json", type=Path, default=None, help="write the results here")
    args = parser.parse_args()
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text("{}")  # fail now, not after the runs, if the path cannot be written
    sizes = [int(float(s)) for s in (args.sizes or ("2e4" if args.quick else "1e5,1e6")).split(",")]
    runs = args.runs or (3 if args.quick else 5)
    if args.threads:
        torch.set_num_threads(args.threads)
    clock = time.process_time if args.clock == "cpu" else time.perf_counter

    from hookgnn.attribution import attribute
    from hookgnn.metrics import OutputSum

    metric = OutputSum("d")
    rows = []
    print(f"machine load (uptime): {os.getloadavg()[0]:.1f}; threads: {torch.get_num_threads()}")
    print(f"| E | two passes ms | attribute(keep={args.keep!r}) ms | ratio | two passes user / sys s | "
          "attribute user / sys s | page faults (two / attribute) |\n|---|---|---|---|---|---|---|")
    for edges in sizes:
        model, clean, corrupted = build(edges, ROUNDS)
        calls = {"two passes": lambda: two_passes(model, clean, corrupted, metric),
                 "attribution": lambda: attribute(model, clean, corrupted, metric, keep=args.keep)}
        for call in calls.values():
            call()  # warm-up (kernel build, allocator)
        times: dict[str, list[float]] = {k: [] for k in calls}
        usage: dict[str, list[tuple[float, float, int]]] = {k: [] for k in calls}  # user s, system s, page faults
        for _ in range(runs):
            for name, call in calls.items():
                before = resource.getrusage(resource.RUSAGE_SELF)
                start = clock()
                out = call()
                times[name].append((clock() - start) * 1e3)
                after = resource.getrusage(resource.RUSAGE_SELF)
                usage[name].append((after.ru_utime - before.ru_utime, after.ru_stime - before.ru_stime,
                                    after.ru_minflt - before.ru_minflt))
                del out
        med = {k: statistics.median(v) for k, v in times.items()}
        use = {k: [statistics.median(u[i] for u in v) for i in range(3)] for k, v in usage.items()}
        row = {"edges": edges, "keep": args.keep, "d": D, "rounds": ROUNDS, "runs": runs, "clock": args.clock,
               "two_passes_ms": med["two passes"], "attribution_ms": med["attribution"],
               "ratio": med["attribution"] / med["two passes"],
               "user_s": {k: v[0] for k, v in use.items()}, "sys_s": {k: v[1] for k, v in use.items()},
               "page_faults": {k: int(v[2]) for k, v in use.items()}}
        rows.append(row)
        u, a = use["two passes"], use["attribution"]
        print(f"| {edges:.0e} | {row['two_passes_ms']:.0f} | {row['attribution_ms']:.0f} | {row['ratio']:.2f} | "
              f"{u[0]:.1f} / {u[1]:.1f} | {a[0]:.1f} / {a[1]:.1f} | {u[2] / 1e6:.2f}M / {a[2] / 1e6:.2f}M |", flush=True)
    if args.json is not None:
        args.json.write_text(json.dumps({"threads": torch.get_num_threads(), "rows": rows}, indent=1))


if __name__ == "__main__":
    main()
