"""The ``hookgnn metamer`` job: metamers of a checkpoint's reasoner on a sampled graph.

:func:`check_metamer` checks every argument first (the checkpoint loads, the hooks
exist, the numbers are in range, the output folder takes files, and a one-step dry run
of the search accepts the whole setup) and returns the job to run; an argument
problem raises :class:`MetamerUsageError` naming the option. The job writes

* ``metamers.pt``: the reference and the metamers as plain tensors (loadable with
  ``torch.load(path, weights_only=True)``), with hooks, distances and steps;
* ``result.json``: the same numbers and the distances of each metamer to the reference;
* ``figure.png``: the reference and the closest metamer side by side (with matplotlib).
"""

from __future__ import annotations

import argparse
import json
import math
import os
from collections.abc import Callable
from typing import Any

import torch

from hookgnn.graph import Graph

from hookgnn.cli.args import UsageError


class MetamerUsageError(UsageError):
    """A bad ``hookgnn metamer`` argument (printed as ``hookgnn: error: ...``, exit 2)."""


def _bad(option: str, value: Any, problem: str) -> MetamerUsageError:
    return MetamerUsageError(f"argument {option} {value}: {problem}")


def _box(text: str) -> tuple[float, float]:
    try:
        low, high = (float(v) for v in text.split(","))
    except ValueError:
        raise _bad("--box", text, "expected LOW,HIGH, e.g. 0,1") from None
    if not low < high:
        raise _bad("--box", text, "needs LOW < HIGH")
    return low, high


def _constraint(kind: str, box: tuple[float, float], option: str) -> Any:
    from hookgnn.metamers import Box, Free, OneHot

    table = {"fixed": None, "free": Free(), "box": Box(*box), "onehot": OneHot(), "onehot-nodes": OneHot(over="nodes")}
    if kind not in table:
        raise _bad(option, kind, f"choose from {sorted(table)}")
    return table[kind]


def _structure(reference: Graph, free_count: bool) -> Any:
    from hookgnn.metamers import EdgeSpace

    n = reference.num_nodes
    pairs = set(map(tuple, reference.edge_index.t().tolist()))
    loops = all((i, i) in pairs for i in range(n))
    symmetric = all((v, u) in pairs for u, v in pairs)
    count = None if free_count else len(pairs)
    return EdgeSpace(num_edges=count, keep="self_loops" if loops else None, symmetric=symmetric)


def check_metamer(args: argparse.Namespace) -> Callable[[], None]:
    """Check the parsed arguments of ``hookgnn metamer``; return the job that runs the search."""
    from hookgnn.metamers import metamer
    from hookgnn.ops.threads import auto_threads, graph_work
    from hookgnn.tasks import get_task
    from hookgnn.training import load_checkpoint, num_rounds
    from hookgnn.training.loop import show_progress  # a bar only on a terminal, outside CI

    for option, value, ok, problem in (
        ("--tol", args.tol, math.isfinite(args.tol) and args.tol > 0, "must be a number > 0"),
        ("--num", args.num, args.num >= 1, "must be >= 1"),
        ("--max-steps", args.max_steps, args.max_steps >= 1, "must be >= 1"),
        ("--lr", args.lr, math.isfinite(args.lr) and args.lr > 0, "must be a number > 0"),
        ("--restarts", args.restarts, args.restarts >= 0, "must be >= 0"),
        ("--n", args.n, args.n >= 1, "must be >= 1"),
    ):
        if not ok:
            raise _bad(option, value, problem)
    box = _box(args.box)
    out = args.out
    try:  # output folder first
        os.makedirs(out, exist_ok=True)
        probe = os.path.join(out, ".hookgnn-write-test")
        with open(probe, "w"):
            pass
        os.remove(probe)
    except OSError as err:
        raise _bad("--out", out, f"cannot write there ({err.strerror or err})") from None
    if not os.path.isfile(args.checkpoint):
        raise _bad("--checkpoint", args.checkpoint, "no such file")
    try:
        ckpt = load_checkpoint(args.checkpoint)
    except Exception as err:  # any unreadable file is a bad argument here
        raise _bad("--checkpoint", args.checkpoint, str(err)) from None
    model = ckpt.model
    for hook in args.hook:
        try:
            model.resolve(hook)
        except KeyError as err:
            raise _bad("--hook", hook, str(err.args[0])) from None
    task = get_task(ckpt.task)
    size_arg = {"multi_path": "k", "grid": "rows"}.get(args.sampler, "n")
    kwargs = dict(args.sampler_kwargs)
    try:
        sampled = task.sample(1, args.sampler, seed=args.seed, **{size_arg: args.n}, **kwargs)
        rounds = num_rounds(sampled, args.rounds, model.max_steps)
    except (ValueError, KeyError, TypeError) as err:
        raise _bad("--sampler", args.sampler, str(err)) from None
    reference = Graph(x=sampled.x, edge_index=sampled.edge_index, edge_attr=sampled.edge_attr)
    search = dict(
        features=_constraint(args.nodes, box, "--nodes"),
        edge_features=_constraint(args.edge_attr, box, "--edge-attr"),
        structure=_structure(reference, args.free_edge_count) if args.structure else None,
        num=args.num, tol=args.tol, lr=args.lr, seed=args.seed, forward=lambda g: model(g, steps=rounds),
    )
    if args.edge_attr == "onehot-nodes":
        raise _bad("--edge-attr", args.edge_attr, "onehot-nodes applies to node features")
    try:  # a one-step dry run checks everything metamer() checks
        metamer(model, reference, args.hook, max_steps=1, **search)
    except (ValueError, KeyError) as err:
        raise MetamerUsageError(f"the metamer search ({rounds} rounds, see --rounds) rejects these arguments: "
                                f"{err}") from None

    work = graph_work(reference, model.d_hidden) * args.num  # the batch of metamers searched together

    def job() -> None:
        with auto_threads(work, args.threads):
            res = metamer(model, reference, args.hook, max_steps=args.max_steps, restarts=args.restarts,
                          progress=False if args.no_progress else show_progress(None), **search)
        report(res, reference, args, rounds, ckpt.task)

    return job


def report(res: Any, reference: Graph, args: argparse.Namespace, rounds: int, task: str) -> None:
    """Print the table and write ``metamers.pt``, ``result.json`` and ``figure.png``."""
    from hookgnn.metamers.metrics import edge_jaccard, feature_distance

    rows = []
    jac = edge_jaccard(reference, res.graphs)
    for j in range(res.graphs.num_graphs):
        g = res.graph(j)
        same = bool(jac[j] == 1.0) and g.num_edges == reference.num_edges
        has_w = reference.edge_attr is not None and bool(reference.edge_attr.norm() > 0)
        rows.append({"metamer": j, "converged": bool(res.converged[j]), "steps": int(res.steps[j]),
                     "restarts": int(res.restarts[j]), "distance": float(res.distance[j]),
                     "x_dist": float(feature_distance(reference, g)[0]),
                     "edge_dist": float(feature_distance(reference, g, inputs="edge_attr")[0]) if same and has_w
                     else None, "jaccard": float(jac[j])})
    print(f"{task}: {args.num} metamers of a {args.sampler} graph (n={args.n}), {rounds} rounds, hooks {args.hook}, "
          f"tol {args.tol}")
    print(f"{'metamer':>7} {'conv':>5} {'steps':>6} {'restarts':>8} {'distance':>9} {'x_dist':>7} {'edge_dist':>9} "
          f"{'jaccard':>7}")
    for r in rows:
        edge = "-" if r["edge_dist"] is None else f"{r['edge_dist']:.3f}"
        print(f"{r['metamer']:>7} {str(r['converged']):>5} {r['steps']:>6} {r['restarts']:>8} {r['distance']:>9.2e} "
              f"{r['x_dist']:>7.3f} {edge:>9} {r['jaccard']:>7.3f}")

    def plain(g: Graph) -> dict[str, Any]:
        return {"x": g.x, "edge_index": g.edge_index, "edge_attr": g.edge_attr}

    torch.save({"format": "hookgnn-metamers", "task": task, "hooks": list(res.hooks), "tol": res.tol,
                "rounds": rounds, "reference": plain(reference),
                "metamers": [plain(res.graph(j)) for j in range(res.graphs.num_graphs)],
                "distance": res.distance, "steps": res.steps}, os.path.join(args.out, "metamers.pt"))
    with open(os.path.join(args.out, "result.json"), "w") as f:
        json.dump({"task": task, "hooks": list(res.hooks), "tol": res.tol, "rounds": rounds, "metamers": rows}, f,
                  indent=2)
    written = ["metamers.pt", "result.json"]
    try:
        import matplotlib

        matplotlib.use("Agg")
        from hookgnn.metamers.report import Row, plot_pair
    except ImportError:
        print("matplotlib is not installed: no figure (pip install 'hookgnn[viz]')")
    else:
        best = int(res.distance.argmin())
        r = rows[best]
        row = Row("model", "search", 0, r["converged"], r["steps"], r["distance"], r["x_dist"],
                  math.nan if r["edge_dist"] is None else r["edge_dist"], r["jaccard"], math.nan, math.nan, math.nan)
        plot_pair(reference, res.graph(best), row).savefig(os.path.join(args.out, "figure.png"), dpi=120)
        written.append("figure.png")
    print(f"wrote {', '.join(os.path.join(args.out, w) for w in written)}")
