"""Interchange intervention accuracy for one hint over all rounds of 256 graph pairs (target < 60 s).

Workload: Bellman-Ford pairs (base, source with its weights permuted) of ``n = 16`` nodes,
``p = 0.25``; a ``HookedGNN("mpnn", d=64)`` (node inputs: source flag and position) with 8
rounds (seeded, untrained: the cost does not depend on the weights); one intervention per (pair, step) at a random node, steps
1 .. 8: 2,048 interventions on hint ``d_h`` swapping the whole node state.

Rows: the counterfactuals (``task.resume``, once per intervention, shared by every subspace);
IIA batched (``copies=64`` per forward), against the peer: one forward per intervention
(``copies=1``), timed on the first ``--peer`` interventions and scaled to all of them;
``output_iia`` (node by node per output, plus one forward without intervention for the
ceiling) against ``interchange_accuracy`` on the same interventions; and
DAS training (``k=1``, one epoch over the first 256 interventions). Medians of ``--runs``.

    python benchmarks/bench_causal.py             # 256 pairs, 3 runs
    python benchmarks/bench_causal.py --quick     # 32 pairs, 1 run
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

ROUNDS, D = 8, 64


CPU: list[tuple[str, float, float]] = []  # (what, wall s, process CPU s): the machine is shared


def timed(fn, runs: int, what: str = "") -> tuple[float, object]:  # noqa: ANN001
    times, cpus, out = [], [], None
    for _ in range(runs):
        t, c = time.perf_counter(), time.process_time()
        out = fn()
        times.append(time.perf_counter() - t)
        cpus.append(time.process_time() - c)
    if what:
        CPU.append((what, statistics.median(times), statistics.median(cpus)))
        print(f"{what}: wall {CPU[-1][1]:.2f} s, CPU {CPU[-1][2]:.2f} s", flush=True)
    return statistics.median(times), out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=256)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--peer", type=int, default=128, help="interventions the unbatched peer runs")
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    if args.quick:
        args.pairs, args.runs, args.peer = 32, 1, 32

    from hookgnn import HookedGNN
    from hookgnn.causal import interchange_accuracy, interchange_data, output_iia, random_interventions, task_pairs
    from hookgnn.causal import train_das, whole_state
    from hookgnn.tasks import get_task

    bf = get_task("bellman_ford")
    torch.manual_seed(0)
    model = HookedGNN("mpnn", D, node_in=2, edge_in=1, spec=bf.spec, max_steps=ROUNDS).eval()
    pairs = task_pairs(bf, args.pairs, seed=0, n=16, p=0.25)
    iv = random_interventions(pairs, range(1, ROUNDS + 1), seed=0)
    t_cf, data = timed(lambda: interchange_data(bf, "d_h", pairs, iv), args.runs, "counterfactuals")
    t_iia, res = timed(lambda: interchange_accuracy(model, data, whole_state(D), copies=64), args.runs, "IIA batched")
    t_out, _ = timed(lambda: output_iia(model, data, whole_state(D), copies=64), args.runs, "output_iia batched")
    part = data.subset(range(min(args.peer, len(iv))))
    t_peer, _ = timed(lambda: interchange_accuracy(model, part, whole_state(D), copies=1), args.runs, "IIA copies=1")
    t_peer *= len(iv) / len(part.interventions)
    das_part = data.subset(range(min(256, len(iv))))
    t_das, _ = timed(lambda: train_das(model, das_part, k=1, epochs=1), 1, "DAS")
    rows = [
        (f"counterfactuals: task.resume x {len(iv)}", "-", t_cf, None),
        (f"IIA, {len(iv)} interventions, copies=64", "copies=1 (scaled)", t_iia, t_peer),
        ("total: counterfactuals + IIA (target < 60 s)", "-", t_cf + t_iia, None),
        ("output_iia per node, all outputs, + ceiling", "interchange_accuracy", t_out, t_iia),
        (f"DAS k=1, one epoch of {len(das_part.interventions)} (4 steps of 64)", "-", t_das, None),
    ]
    print(f"IIA {res.iia:.3f}; torch threads {torch.get_num_threads()}; runs {args.runs}; shared machine: wall "
          "times include waiting for the CPU (process CPU times above)")
    print(f"{'workload':48s} {'peer':>18s} {'peer s':>8s} {'hookgnn s':>10s} {'ratio':>6s}")
    for name, peer, ours, theirs in rows:
        ratio = f"{ours / theirs:6.2f}" if theirs else "     -"
        print(f"{name:48s} {peer:>18s} {theirs if theirs else float('nan'):8.2f} {ours:10.2f} {ratio}")


if __name__ == "__main__":
    main()
