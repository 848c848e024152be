"""The acceptance table of hints as causal variables on trained reasoners (issue 21).

Bellman-Ford and BFS MPNN reasoners (32 wide, weight-tied rounds) are trained with and without
hint supervision (``hookgnn.training.train``, the same data and seed). For each, per node hint
and step ``k``:

* ``probe`` / ``control``: the held-out score of a linear probe (R^2 for scalars, accuracy for
  masks and pointers) from the state entering round ``k`` to the hint at step ``k``, and of the
  same probe on control labels (``probe_hints``);
* IIA on the pointer output ``pi`` (``output_iia``: each node's highest-scoring in-edge against
  the algorithm resumed from step ``k`` with the intervened node's hint taken from the source
  graph: the same graph run from another source node), over all nodes of held-out pairs, for four subspaces: the whole state, ``neurons``
  (the 4 channels the probe weighs most), the probe's direction (scalar and mask hints) and DAS
  (a 4-dimensional rotation trained on the other half of the pairs);
* ``ceiling``: the model's own pointer accuracy on the base graphs without intervention, and
  ``chance``: the share of nodes whose counterfactual pointer equals the base's (what an
  intervention that changes nothing scores at the ceiling); the ``v`` columns are the same
  restricted to the intervened node's downstream nodes; ``n chg`` counts the nodes whose
  counterfactual pointer differs from the base's, and ``state chg`` / ``das chg`` are IIA over
  those nodes only (where an intervention that changes nothing scores 0).

Usage: ``python benchmarks/causal_table.py [--quick] [--json PATH]`` (``--quick``: a few
seconds of training, to check the pipeline). Single-threaded; the numbers in
``docs/guide/causal.md`` come from the full setting on a shared 2-core machine.
"""

from __future__ import annotations

import argparse
import datetime
import json
import math
import platform
import time
from typing import Any

import torch

from hookgnn.causal import (Probe, directions, interchange_data, neurons, output_iia, probe_hints,
                            random_interventions, task_pairs, train_das, untrained_like, whole_state)
from hookgnn.tasks import get_task
from hookgnn.training import TrainConfig, train

ROUNDS, STEPS, D, N, P = 12, [1, 2, 3, 4], 32, 8, 0.3
# Pairs move the source node (BFS ignores weights; for Bellman-Ford, a permuted-weights source changes the pointers
# of about 2% of the nodes, too few to tell a used hint from chance)
VARY = "source"


def top_channels(probe: Probe, k: int = 4) -> list[int]:
    """The ``k`` channels a probe weighs most, in unstandardised units (pointer probes: the
    channel's row and column of ``W`` and its entry of ``a``, summed in absolute value)."""
    if probe.kind == "pointer":
        w, a = probe.params["W"].abs(), probe.params["a"].abs().reshape(-1)
        weight = w.sum(0) + w.sum(1) + a
    else:
        weight = probe.params["w"].abs().sum(-1)
    return sorted(torch.topk(weight / probe.std, k).indices.tolist())


def trained(task: str, hint_weight: float, steps: int) -> tuple[Any, float]:
    config = TrainConfig(task=task, processor="mpnn", d_hidden=D, max_steps=ROUNDS, sizes=(N,),
                         sampler_kwargs={"p": P}, batch_size=16, steps=steps, lr=3e-3, hint_weight=hint_weight,
                         extra_rounds=4, seed=0, progress=False)
    start = time.perf_counter()
    model, _ = train(config)
    return model.eval(), time.perf_counter() - start


def rows_for(task_name: str, model: Any, sup: str, quick: bool) -> list[dict[str, Any]]:
    task = get_task(task_name)
    hints = [n for n, fs in task.spec.items() if fs.stage == "hint" and fs.location == "node"]
    graphs = [task.sample(16, "erdos_renyi", seed=100 + s, n=N, p=P) for s in range(2 if quick else 8)]
    probes = probe_hints(model, graphs, task.spec, hints=hints, steps=STEPS, baseline=untrained_like(model, seed=1))
    pairs = task_pairs(task, 16 if quick else 128, seed=7, vary=VARY, n=N, p=P)
    half = len(pairs) // 2
    rows = []
    for hint in hints:
        train_data = interchange_data(task, hint, pairs[:half], random_interventions(pairs[:half], STEPS, seed=0),
                                      outputs=["pi"])
        test_data = interchange_data(task, hint, pairs[half:], random_interventions(pairs[half:], STEPS, seed=1),
                                     outputs=["pi"])
        das = train_das(model, train_data, k=4, epochs=2 if quick else 20, seed=0)
        for k in STEPS:
            part = test_data.subset([i for i, iv in enumerate(test_data.interventions) if iv.step == k])
            probe = probes.probes[(hint, k)]
            subs = {"state": whole_state(D), "neurons": neurons(D, top_channels(probe)), "das": das}
            if probe.kind != "pointer":
                subs["probe"] = directions(probe.direction, "probe")
            res = {name: output_iia(model, part, sub)["pi"].by_step()[0] for name, sub in subs.items()}
            p_row = next(r for r in probes.rows if r["hint"] == hint and r["step"] == k)
            first = res["state"]
            rows.append({"task": task_name, "hints": sup, "hint": hint, "step": k, "metric": p_row["metric"],
                         "probe": p_row["score"], "control": p_row["control"], "baseline": p_row["baseline"],
                         **{f"iia_{name}": res[name]["iia"] if name in res else math.nan
                            for name in ("state", "neurons", "probe", "das")},
                         "ceiling": first["ceiling"], "chance": first["chance"],
                         "iia_das_down": res["das"]["iia_downstream"], "ceiling_down": first["ceiling_downstream"],
                         "chance_down": first["chance_downstream"], "changed": first["changed"],
                         "iia_state_changed": first["iia_changed"], "iia_das_changed": res["das"]["iia_changed"],
                         "n": first["n"]})
    return rows


COLS = [("task", "task", "s"), ("hints", "hints", "s"), ("hint", "hint", "s"), ("step", "k", "d"),
        ("metric", "metric", "s"), ("probe", "probe", ".2f"), ("control", "ctrl", ".2f"),
        ("iia_state", "state", ".2f"), ("iia_neurons", "neur", ".2f"), ("iia_probe", "pdir", ".2f"),
        ("iia_das", "das", ".2f"), ("ceiling", "ceil", ".2f"), ("chance", "chance", ".2f"),
        ("iia_das_down", "das v", ".2f"), ("ceiling_down", "ceil v", ".2f"), ("chance_down", "chance v", ".2f"),
        ("changed", "n chg", "d"), ("iia_state_changed", "state chg", ".2f"), ("iia_das_changed", "das chg", ".2f")]


def table(rows: list[dict[str, Any]]) -> str:
    cells = [[("-" if isinstance(r[c], float) and math.isnan(r[c]) else format(r[c], f)) for c, _, f in COLS]
             for r in rows]
    widths = [max(len(h), *(len(row[i]) for row in cells)) for i, (_, h, _) in enumerate(COLS)]
    lines = ["| " + " | ".join(h.ljust(w) for (_, h, _), w in zip(COLS, widths)) + " |",
             "|" + "|".join("-" * (w + 2) for w in widths) + "|"]
    lines += ["| " + " | ".join(v.ljust(w) for v, w in zip(row, widths)) + " |" for row in cells]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a few seconds of training (pipeline check)")
    parser.add_argument("--json", help="write the rows, timings, date and machine here")
    args = parser.parse_args()
    torch.set_num_threads(1)
    start = time.perf_counter()
    rows, timings = [], {}
    for task in ("bellman_ford", "bfs"):
        for sup, hint_weight in (("yes", 1.0), ("no", 0.0)):
            model, seconds = trained(task, hint_weight, 40 if args.quick else 1500)
            timings[f"train {task} hints={sup}"] = seconds
            t0 = time.perf_counter()
            rows += rows_for(task, model, sup, args.quick)
            timings[f"table {task} hints={sup}"] = time.perf_counter() - t0
            print(f"{task} hints={sup}: trained in {seconds:.0f} s, table in {timings[f'table {task} hints={sup}']:.0f} s",
                  flush=True)
    stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    machine = f"{platform.machine()}, {platform.processor() or 'cpu'}, 1 thread, torch {torch.__version__}"
    print(f"\n{stamp}; {machine}; total {time.perf_counter() - start:.0f} s (shared machine)\n")
    print(table(rows))
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"date": stamp, "machine": machine, "quick": args.quick, "timings": timings, "rows": rows}, f,
                      indent=1)


if __name__ == "__main__":
    main()
