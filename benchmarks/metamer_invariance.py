"""Invariance report: which Bellman-Ford reasoners tell fewer graphs apart?

Variants of the MPNN reasoner (ReLU vs ELU, with and without a residual update, depth
4 vs 8 rounds, width 16 / 32 / 64) are trained on the same Bellman-Ford data (outputs
only, Erdos-Renyi n = 8), then compared on the same reference graphs (n = 10): for each,
metamers of the final node states (``layers.{T-1}.hook_update``) are searched

* ``weights``: edge weights free in [0, 1], structure and source fixed;
* ``structure``: the edge set (undirected, self-loops kept, same number of edges) and
  the weights, source fixed;

and measured (see :mod:`hookgnn.metamers.report`). Writes the table, a JSON file and a
figure (reference vs metamer of the structure search, one row per model).

    python benchmarks/metamer_invariance.py --out out/metamers          # ~10 min on 2 cores
    python benchmarks/metamer_invariance.py --quick --out out/metamers  # smoke run
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

import torch

from hookgnn.graph import Graph
from hookgnn.metamers import Box, EdgeSpace
from hookgnn.metamers.report import invariance_report
from hookgnn.metamers.variants import Variant, fit
from hookgnn.tasks import get_task
from hookgnn.training import evaluate_model

VARIANTS = [
    Variant("relu"),
    Variant("elu", activation="elu"),
    Variant("relu+res", residual=True),
    Variant("elu+res", activation="elu", residual=True),
    Variant("relu depth8", depth=8),
    Variant("relu width16", width=16),
    Variant("relu width64", width=64),
]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default="out/metamers", help="folder for table.txt, report.json, figure.png")
    parser.add_argument("--json", default=None, metavar="PATH", help="also write the report JSON here")
    parser.add_argument("--quick", action="store_true", help="3 variants, 30 training steps, 1 reference")
    parser.add_argument("--train-steps", type=int, default=600)
    parser.add_argument("--references", type=int, default=3)
    parser.add_argument("--num", type=int, default=2, help="metamers per reference and search")
    parser.add_argument("--tol", type=float, default=1e-3)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)
    os.makedirs(args.out, exist_ok=True)  # output paths first
    for path in (os.path.join(args.out, "table.txt"), args.json):
        if path:
            open(path, "a").close()
    torch.set_num_threads(args.threads)
    variants = VARIANTS[:3] if args.quick else VARIANTS
    steps = 30 if args.quick else args.train_steps
    refs = 1 if args.quick else args.references

    bf = get_task("bellman_ford")
    models, accuracy = {}, {}
    test = bf.sample(32, "erdos_renyi", seed=123, n=10, p=0.3)
    for v in variants:
        start = time.perf_counter()
        model = v.build(bf, seed=0)
        loss = fit(model, bf, steps, n=8, p=0.3, seed=0)
        accuracy[v.name] = evaluate_model(model, bf, test, rounds=v.depth)["pi.accuracy"]
        models[v.name] = model
        print(f"trained {v.name:<13} loss {loss:.3f}  pi.accuracy(n=10) {accuracy[v.name]:.3f}  "
              f"({time.perf_counter() - start:.0f} s)", file=sys.stderr)

    sampled = bf.sample(refs, "erdos_renyi", seed=7, n=10, p=0.3)
    references = [Graph(x=g.x, edge_index=g.edge_index, edge_attr=g.edge_attr) for g in sampled.split()]
    searches = {
        "weights": lambda ref: {"features": None, "edge_features": Box(0.0, 1.0)},
        "structure": lambda ref: {"features": None, "edge_features": Box(0.0, 1.0),
                                  "structure": EdgeSpace(num_edges=ref.num_edges, keep="self_loops", symmetric=True)},
    }
    start = time.perf_counter()
    rep = invariance_report(models, references, lambda m: f"layers.{m.max_steps - 1}.hook_update", searches,
                            num=args.num, tol=args.tol, max_steps=300 if args.quick else 1500, restarts=2)
    seconds = time.perf_counter() - start
    table = rep.table()
    lines = [f"pi.accuracy on 32 test graphs (n=10): " + ", ".join(f"{k} {v:.3f}" for k, v in accuracy.items()),
             table, f"({len(rep.rows)} metamers in {seconds:.0f} s, tol {args.tol})"]
    print("\n".join(lines))
    with open(os.path.join(args.out, "table.txt"), "w") as f:
        f.write("\n".join(lines) + "\n")
    data = {**rep.to_dict(), "accuracy": accuracy, "seconds": seconds}
    for path in (os.path.join(args.out, "report.json"), args.json):
        if path:
            with open(path, "w") as f:
                json.dump(data, f, indent=2)
    import matplotlib

    matplotlib.use("Agg")
    rep.figure("structure").savefig(os.path.join(args.out, "figure.png"), dpi=120)
    print(f"wrote {args.out}/table.txt, report.json, figure.png", file=sys.stderr)


if __name__ == "__main__":
    main()
