"""Benchmark: exact activation patching (loop vs batched) against attribution and EAP-IG.

On trained MPNN reasoners (Bellman-Ford and BFS, trained here for a few hundred steps
unless ``--quick``), with one 64-node graph and 16 rounds:

* exact (round x node) sweep of ``layers.*.hook_update`` and (round x edge) sweep of
  ``layers.*.hook_src`` (single messages), one forward per patch (``loop``; timed on
  ``--loop-sample`` patches and extrapolated) and batched (``copies`` per forward);
* attribution patching (1 forward+backward + 1 forward), EAP-IG interpolating the inputs
  (``--ig-steps`` copies in one batched forward+backward) and EAP-IG interpolating the
  activations of each hook in turn (``actIG``: one batched pass per round);
* AtP* (:func:`hookgnn.attribution.atp_star`) with 1 and 2 exact rounds (single messages for
  round x edge, node states for round x node);
* Spearman correlation of attribution / EAP-IG / AtP* scores with the exact effects
  (signed, and of absolute values: "which components matter"), and each estimator's
  cost against attribution patching and against the exact (batched) sweep.

Metric: log-probability of the true pointers (``pi``). Corruptions: a resampled source
(both tasks) and multiplicatively perturbed weights (Bellman-Ford; not with ``--quick``).

Prints a table (median of ``--repeats`` runs) and writes ``--json PATH``.

    python benchmarks/bench_patching.py --quick --json /tmp/bench.json
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from typing import Any

import torch
from scipy.stats import spearmanr

from hookgnn.attribution import atp_star, attribute, integrated_gradients_at
from hookgnn.metrics import PointerLogProb
from hookgnn.metrics.targets import clean_targets
from hookgnn.patching import hooks as hook_rows
from hookgnn.patching import patch, round_hooks
from hookgnn.patching.activation import _run
from hookgnn.tasks import get_task
from hookgnn.tasks.corruptions import sample_pairs
from hookgnn.training import TrainConfig, train


def timed(fn: Any, repeats: int) -> tuple[float, Any]:
    times, out = [], None
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times) * 1e3, out


def trained(task: str, steps: int, seed: int) -> Any:
    cfg = TrainConfig(task=task, processor="mpnn", d_hidden=16, max_steps=16, sizes=(8, 12), batch_size=8,
                      sampler_kwargs={"p": 0.3}, steps=steps, rounds=16, hint_weight=0.0, lr=3e-3, seed=seed,
                      progress=False)
    model, history = train(cfg)
    return model.eval(), history[-1]["loss"] if history else float("nan")


CORRUPTIONS = {"bellman_ford": [("resample_source", None), ("perturb_weights", {"scale": 0.3})],
               "bfs": [("resample_source", None)]}


def bench_task(task_name: str, args: argparse.Namespace) -> list[dict[str, Any]]:
    model, loss = trained(task_name, args.train_steps, args.seed)
    task = get_task(task_name)
    metric = PointerLogProb("pi")
    rows = []
    for scheme, options in CORRUPTIONS[task_name][: 1 if args.quick else None]:
        clean, corr = sample_pairs(task, 1, scheme, "erdos_renyi", seed=args.seed, options=options,
                                   n=args.nodes, p=4.0 / args.nodes)
        for label, short in (("round x node", "update"), ("round x edge", "src")):
            hooks = round_hooks(model, short)
            sweep = lambda: patch(model, clean, corr, metric, hook_rows(model, hooks), copies=args.copies)  # noqa: E731
            batched_ms, exact = timed(sweep, args.repeats)
            n_patches = exact.values.numel()
            # the loop: time a sample of one-forward-per-patch runs and extrapolate to all patches
            _, source = model.run_with_cache(clean, names_filter=hooks)
            sample = [(hooks[i % len(hooks)], (7 * i) % exact.values.shape[1]) for i in range(args.loop_sample)]
            per_patch = []
            scored = clean_targets(metric, clean)  # what patch calls: targets from the clean graph
            with torch.no_grad():
                for _ in range(args.repeats):
                    t0 = time.perf_counter()
                    for entry in sample:
                        _run(model, corr, scored, [entry], source, "row", lambda batch, k: model(batch))
                    per_patch.append((time.perf_counter() - t0) / len(sample))
            loop_ms = statistics.median(per_patch) * n_patches * 1e3
            effect = exact.values.flatten().numpy()  # effects, as every estimate below returns them
            attr_ms, attr = timed(lambda: attribute(model, clean, corr, metric), args.repeats)
            ig_ms, ig = timed(lambda: attribute(model, clean, corr, metric, ig_steps=args.ig_steps), args.repeats)
            act_ig = lambda: torch.stack([integrated_gradients_at(model, clean, corr, metric, h, args.ig_steps)  # noqa: E731
                                          .rows([h]).values[0] for h in hooks])
            act_ig_ms, c = timed(act_ig, args.repeats)
            level = "message" if short == "src" else "node"
            atp = {}
            for k in (1, 2):
                ms, est = timed(lambda k=k: atp_star(model, clean, corr, metric, exact_rounds=k, level=level), args.repeats)
                v = est.values.flatten().numpy()
                atp.update({f"atp{k}_ms": ms, f"atp{k}_vs_attribution": ms / attr_ms, f"atp{k}_vs_exact": batched_ms / ms,
                            f"spearman_atp{k}": float(spearmanr(v, effect).statistic),
                            f"spearman_abs_atp{k}": float(spearmanr(abs(v), abs(effect)).statistic)})
            a = attr.rows(hooks).values.flatten().numpy()
            b = ig.rows(hooks).values.flatten().numpy()
            c = c.flatten().numpy()
            rows.append(dict(
                task=task_name, corruption=scheme, workload=label, patches=n_patches, loop_ms=loop_ms,
                batched_ms=batched_ms, batched_speedup=loop_ms / batched_ms, attribution_ms=attr_ms,
                attribution_vs_loop=loop_ms / attr_ms, attribution_vs_batched=batched_ms / attr_ms, eap_ig_ms=ig_ms,
                eap_ig_vs_loop=loop_ms / ig_ms, spearman_attribution=float(spearmanr(a, effect).statistic),
                spearman_eap_ig=float(spearmanr(b, effect).statistic),
                spearman_abs_attribution=float(spearmanr(abs(a), abs(effect)).statistic),
                spearman_abs_eap_ig=float(spearmanr(abs(b), abs(effect)).statistic), act_ig_ms=act_ig_ms,
                spearman_act_ig=float(spearmanr(c, effect).statistic),
                spearman_abs_act_ig=float(spearmanr(abs(c), abs(effect)).statistic), train_loss=float(loss),
                nodes=clean.num_nodes, edges=clean.num_edges, rounds=len(hooks), **atp))
    return rows


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--json", default=None, help="write the results here")
    p.add_argument("--quick", action="store_true", help="short training, fewer repeats")
    p.add_argument("--nodes", type=int, default=64)
    p.add_argument("--copies", type=int, default=64)
    p.add_argument("--ig-steps", type=int, default=16)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--tasks", nargs="+", default=["bellman_ford", "bfs"])
    args = p.parse_args()
    args.train_steps = 30 if args.quick else 300
    args.repeats = 1 if args.quick else 3
    args.loop_sample = 32 if args.quick else 128
    torch.manual_seed(args.seed)
    rows = [r for t in args.tasks for r in bench_task(t, args)]
    print("exact sweeps and gradient estimators (ms; x: speed-up; rho: Spearman with the exact effects)")
    print(f"{'task':<13} {'corruption':<16} {'workload':<13} {'patches':>7} {'loop ms':>9} {'batched ms':>10} "
          f"{'x':>5} {'attr ms':>8} {'x loop':>7} {'IG ms':>7} {'rho AP':>7} {'rho IG':>7} {'|rho| AP':>8} "
          f"{'|rho| IG':>8} {'actIG ms':>8} {'rho aIG':>7}")
    for r in rows:
        print(f"{r['task']:<13} {r['corruption']:<16} {r['workload']:<13} {r['patches']:>7} {r['loop_ms']:>9.0f} "
              f"{r['batched_ms']:>10.0f} {r['batched_speedup']:>5.1f} {r['attribution_ms']:>8.1f} "
              f"{r['attribution_vs_loop']:>7.0f} {r['eap_ig_ms']:>7.0f} {r['spearman_attribution']:>7.3f} "
              f"{r['spearman_eap_ig']:>7.3f} {r['spearman_abs_attribution']:>8.3f} {r['spearman_abs_eap_ig']:>8.3f} "
              f"{r['act_ig_ms']:>8.0f} {r['spearman_act_ig']:>7.3f}")
    print("\nAtP* with k exact rounds (cost: x attribution patching, and how many times cheaper than the exact sweep)")
    print(f"{'task':<13} {'corruption':<16} {'workload':<13} " + " ".join(
        f"{f'k={k} ms':>8} {'x attr':>7} {'/exact':>7} {'rho':>6} {'|rho|':>6}" for k in (1, 2)))
    for r in rows:
        print(f"{r['task']:<13} {r['corruption']:<16} {r['workload']:<13} " + " ".join(
            f"{r[f'atp{k}_ms']:>8.1f} {r[f'atp{k}_vs_attribution']:>7.2f} {r[f'atp{k}_vs_exact']:>7.0f} "
            f"{r[f'spearman_atp{k}']:>6.3f} {r[f'spearman_abs_atp{k}']:>6.3f}" for k in (1, 2)))
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"args": {k: v for k, v in vars(args).items() if k != "json"}, "rows": rows}, f, indent=2)


if __name__ == "__main__":
    main()
