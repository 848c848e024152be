"""The ``hookgnn`` command line: one subcommand per job (``hookgnn --help``).

* ``hookgnn demo``: the main job: train a small reasoner, inspect, patch, draw its circuit;
* ``hookgnn tour``: build a reasoner, cache it, hook it, print the hook table;
* ``hookgnn train``: train a reasoner on an algorithmic task and save a checkpoint;
* ``hookgnn eval``: score a checkpoint on fresh graphs (larger ones, other families);
* ``hookgnn metamer``: graphs a checkpoint's reasoner cannot tell apart from a sampled one.
"""

from __future__ import annotations

import argparse
import ast
import json
import sys
from collections.abc import Callable, Mapping, Sequence
from typing import Any

Command = tuple[str, Callable[[argparse.ArgumentParser], None], Callable[[argparse.Namespace], None]]

#: Sampler argument that takes the graph size, where it is not ``n``.
SIZE_ARGS = {"multi_path": "k", "grid": "rows"}

TRAIN_EPILOG = """\
examples:
  hookgnn train --task bfs --steps 300 --n 16 --out bfs.pt
  hookgnn train --task bellman_ford --processor mpnn --steps 500 --n 16 --p 0.3 --out bf.pt
  hookgnn train --task bellman_ford --processor minagg --sampler weighted_path --sizes 2,4,6,8 \\
      --same-size --rounds nodes --features d --hint-weight 0 --l1 1e-4 --d-hidden 8 --out minagg.pt

Each step draws a fresh batch of random graphs, runs the model for one round per
algorithm step (--rounds hints) and minimises the output losses plus the hint losses.
Then `hookgnn eval --checkpoint FILE` scores the model on new graphs.
"""

EVAL_EPILOG = """\
examples:
  hookgnn eval --checkpoint bfs.pt --n 64 --p 0.05
  hookgnn eval --checkpoint minagg.pt --sampler multi_path --n 8 --rounds nodes
  hookgnn eval --checkpoint bf.pt --n 64 --p 0.1 --json metrics.json

Metrics: <output>.accuracy is the fraction of nodes (or items) predicted right (for a
pointer: the argmax over the node's incoming edges is the true parent); .f1 for masks;
.mse / .mae for scalars; .graph_accuracy the fraction of graphs with every item right.
"""


def _tour_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")


def _tour(args: argparse.Namespace) -> None:
    """build a reasoner, cache it, hook it, print the hook table"""
    from hookgnn.tour import run_tour

    run_tour(seed=args.seed)


def _value(text: str) -> Any:
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text


def _key_values(pairs: Sequence[str]) -> dict[str, Any]:
    out = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise SystemExit(f"--sampler-arg expects KEY=VALUE, got {pair!r}")
        out[key] = _value(value)
    return out


def _sampler_kwargs(args: argparse.Namespace) -> dict[str, Any]:
    kwargs = _key_values(args.sampler_arg)
    if args.p is not None:
        kwargs["p"] = args.p
    elif args.sampler == "erdos_renyi":
        kwargs.setdefault("p", 0.5)
    return kwargs


def _rounds(text: str) -> int | str:
    return int(text) if text.isdigit() else text


def _add_data_args(parser: argparse.ArgumentParser, what: str, n_default: int) -> None:
    parser.add_argument("--sampler", default="erdos_renyi",
                        help=f"graph family of the {what} graphs (default erdos_renyi; see hookgnn.tasks.SAMPLERS: "
                             "erdos_renyi, path, weighted_path, cycle, complete, grid, tree, multi_path)")
    parser.add_argument("--n", type=int, default=n_default,
                        help=f"graph size of the {what} graphs (default {n_default}); for multi_path it is K, "
                             "the number of paths")
    parser.add_argument("--p", type=float, default=None,
                        help="edge probability of erdos_renyi graphs (default 0.5)")
    parser.add_argument("--sampler-arg", action="append", default=[], metavar="KEY=VALUE",
                        help="extra sampler argument, repeatable, e.g. --sampler-arg 'weights=(0.0, 5.0)'")
    parser.add_argument("--rounds", type=_rounds, default="hints",
                        help="rounds to run: 'hints' (one per algorithm step of the largest graph, default), "
                             "'nodes' (largest graph size - 1) or a number")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch CPU threads (default: torch's choice; 1 is often fastest for small graphs)")


def _train_args(parser: argparse.ArgumentParser) -> None:
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.epilog = TRAIN_EPILOG
    parser.add_argument("--task", default="bfs", help="algorithm to learn (default bfs; see hookgnn.tasks.TASKS)")
    parser.add_argument("--processor", default="mpnn",
                        help="processor network (default mpnn; also minagg, pgn, gat, gine, triplet_gmpnn)")
    parser.add_argument("--d-hidden", type=int, default=64, help="width of node states (default 64)")
    parser.add_argument("--max-steps", type=int, default=64,
                        help="most rounds the model can run, also at test time (default 64)")
    parser.add_argument("--untied", action="store_true", help="own weights per round (default: one shared processor)")
    parser.add_argument("--steps", type=int, default=500, help="optimiser steps (default 500)")
    parser.add_argument("--batch-size", type=int, default=32, help="graphs per step (default 32)")
    parser.add_argument("--lr", type=float, default=1e-3, help="Adam learning rate (default 1e-3)")
    parser.add_argument("--lr-schedule", choices=["constant", "cosine"], default="constant",
                        help="learning-rate schedule (default constant)")
    parser.add_argument("--l1", type=float, default=0.0, help="L1 penalty on weight matrices, as in MINAR (default 0)")
    parser.add_argument("--grad-clip", type=float, default=1.0, help="gradient-norm clip, 0 for none (default 1)")
    _add_data_args(parser, "training", 16)
    parser.add_argument("--sizes", default=None,
                        help="comma-separated training sizes, each graph's drawn uniformly (default: --n only)")
    parser.add_argument("--same-size", action="store_true",
                        help="one size per step for the whole batch (round counts then vary between steps)")
    parser.add_argument("--extra-rounds", type=int, default=0,
                        help="add 0..K random extra rounds per step (default 0)")
    parser.add_argument("--features", default=None,
                        help="comma-separated outputs/hints to train (default: all outputs and hints)")
    parser.add_argument("--hint-weight", type=float, default=1.0, help="weight of hint losses, 0 for none (default 1)")
    parser.add_argument("--encode-hints", action="store_true", help="feed hints back as inputs (teacher forcing)")
    parser.add_argument("--teacher-forcing", type=float, default=0.5,
                        help="with --encode-hints: probability of using the true hints, decaying linearly to 0 "
                             "over training (default 0.5)")
    parser.add_argument("--eval-graphs", type=int, default=32,
                        help="after training, score on this many fresh graphs like the training ones (default 32; 0: skip)")
    parser.add_argument("--out", default=None, help="write the checkpoint here (default: do not save)")
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")


def _train(args: argparse.Namespace) -> None:
    """train a reasoner on an algorithmic task and save a checkpoint"""
    import torch

    from hookgnn.tasks import get_task
    from hookgnn.training import TrainConfig, evaluate, sample_batch, save_checkpoint, train

    if args.threads:
        torch.set_num_threads(args.threads)
    sizes = tuple(int(s) for s in args.sizes.split(",")) if args.sizes else (args.n,)
    config = TrainConfig(
        task=args.task, processor=args.processor, d_hidden=args.d_hidden, max_steps=args.max_steps,
        tie_weights=not args.untied, encode_hints=args.encode_hints,
        features=tuple(args.features.split(",")) if args.features else None,
        sampler=args.sampler, sizes=sizes, same_size=args.same_size, size_arg=SIZE_ARGS.get(args.sampler, "n"),
        sampler_kwargs=_sampler_kwargs(args), batch_size=args.batch_size, steps=args.steps, lr=args.lr,
        lr_schedule=args.lr_schedule, l1=args.l1, grad_clip=args.grad_clip, hint_weight=args.hint_weight,
        rounds=args.rounds, extra_rounds=args.extra_rounds, teacher_forcing=args.teacher_forcing,
        teacher_forcing_end=0.0, seed=args.seed, progress=False if args.no_progress else None,
    )
    model, history = train(config)
    last = history[-min(len(history), 10):]
    print(f"trained {config.processor} on {config.task} for {config.steps} steps; "
          f"mean loss of the last {len(last)} steps: {sum(r['loss'] for r in last) / max(len(last), 1):.4f}")
    metrics: dict[str, float] = {}
    if args.eval_graphs > 0:
        task = get_task(config.task)  # fresh graphs from a stream that training never uses
        graphs = sample_batch(task, args.eval_graphs, config.sampler, config.sizes, (config.seed, 1 << 30),
                              config.size_arg, config.sampler_kwargs)
        metrics = evaluate(model, task, graphs, config.rounds)
        print(metrics_table(metrics, f"fresh training-distribution graphs ({args.eval_graphs})"))
    if args.out:
        save_checkpoint(args.out, model, config.task, config, metrics)
        print(f"saved {args.out}")


def _eval_args(parser: argparse.ArgumentParser) -> None:
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.epilog = EVAL_EPILOG
    parser.add_argument("--checkpoint", required=True, help="a file written by `hookgnn train --out`")
    _add_data_args(parser, "test", 64)
    parser.add_argument("--num-graphs", type=int, default=32, help="number of test graphs (default 32)")
    parser.add_argument("--json", default=None, metavar="PATH", help="also write the metrics as JSON to PATH")


def _eval(args: argparse.Namespace) -> None:
    """score a checkpoint on fresh graphs (larger ones, other families)"""
    import torch

    from hookgnn.tasks import get_task
    from hookgnn.training import evaluate, load_checkpoint

    if args.threads:
        torch.set_num_threads(args.threads)
    ckpt = load_checkpoint(args.checkpoint)
    task = get_task(ckpt.task)
    graphs = task.sample(args.num_graphs, args.sampler, seed=args.seed,
                         **{SIZE_ARGS.get(args.sampler, "n"): args.n}, **_sampler_kwargs(args))
    metrics = evaluate(ckpt.model, task, graphs, args.rounds)
    print(metrics_table(metrics, f"{ckpt.task}: {args.num_graphs} {args.sampler} graphs, n={args.n}"))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(metrics, f, indent=2)


def metrics_table(metrics: Mapping[str, float], title: str = "") -> str:
    """A two-column text table of metrics.

    >>> print(metrics_table({"pi.accuracy": 0.5}, "demo"))
    demo
    metric         value
    pi.accuracy   0.5000
    """
    width = max([len("metric")] + [len(k) for k in metrics]) + 2
    lines = ([title] if title else []) + [f"{'metric':<{width}} {'value':>6}"]
    lines += [f"{k:<{width}} {v:>6.4f}" if abs(v) < 1e4 else f"{k:<{width}} {v:>6.3g}" for k, v in metrics.items()]
    return "\n".join(lines)


def _demo_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", default="out/demo", help="folder for the figures (default out/demo)")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    parser.add_argument("--train-steps", type=int, default=400, help="training steps (default 400)")


def _demo(args: argparse.Namespace) -> None:
    """train a small Bellman-Ford reasoner, inspect it, patch it and draw its circuit"""
    from hookgnn.demo import run_demo

    run_demo(args.out, seed=args.seed, train_steps=args.train_steps)


METAMER_EPILOG = """\
examples:
  hookgnn metamer --checkpoint bf.pt --hook layers.7.hook_update --n 12 --p 0.3
  hookgnn metamer --checkpoint bf.pt --hook layers.3.hook_update --hook layers.7.hook_update --structure --num 8
  hookgnn metamer --checkpoint bf.pt --hook layers.7.hook_update --nodes onehot-nodes --edge-attr fixed

A metamer is a graph whose activations at the hooks match the sampled reference's:
||h' - h||^2 / ||h||^2 <= --tol at every hook. By default the edge weights move in
--box (node features and edges fixed); --nodes / --edge-attr choose fixed, free, box,
onehot (per row) or onehot-nodes (one node per graph, e.g. a source); --structure also
searches the edge set (self-loops kept and undirected when the reference is so; same
number of edges unless --free-edge-count). Writes metamers.pt, result.json, figure.png.
"""


def _metamer_args(parser: argparse.ArgumentParser) -> None:
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.epilog = METAMER_EPILOG
    parser.add_argument("--checkpoint", required=True, help="a file written by `hookgnn train --out`")
    parser.add_argument("--hook", action="append", required=True, metavar="NAME",
                        help="hook to match, repeatable (e.g. layers.7.hook_update; see `hookgnn tour`)")
    _add_data_args(parser, "reference", 12)
    parser.add_argument("--num", type=int, default=4, help="metamers searched together in one batch (default 4)")
    parser.add_argument("--tol", type=float, default=1e-3, help="relative activation distance to reach (default 1e-3)")
    parser.add_argument("--max-steps", type=int, default=2000, help="optimiser steps at most (default 2000)")
    parser.add_argument("--lr", type=float, default=0.05, help="Adam learning rate (default 0.05)")
    parser.add_argument("--restarts", type=int, default=2,
                        help="fresh noise starts for a metamer stuck in a local minimum (default 2)")
    parser.add_argument("--nodes", default="fixed",
                        help="node features: fixed (default), free, box, onehot, onehot-nodes")
    parser.add_argument("--edge-attr", default="box", help="edge features: box (default), fixed, free, onehot")
    parser.add_argument("--box", default="0,1", metavar="LOW,HIGH", help="bounds of 'box' features (default 0,1)")
    parser.add_argument("--structure", action="store_true", help="also search the edge set")
    parser.add_argument("--free-edge-count", action="store_true", help="with --structure: any number of edges")
    parser.add_argument("--out", default="out/metamer", help="folder for the results (default out/metamer)")
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")


def _metamer(args: argparse.Namespace) -> None:
    """search graphs a checkpoint's reasoner cannot tell apart from a sampled one"""
    from hookgnn.metamers.job import MetamerUsageError, check_metamer

    args.sampler_kwargs = _sampler_kwargs(args)
    try:
        job = check_metamer(args)
    except MetamerUsageError as err:
        print(f"hookgnn: error: {err}", file=sys.stderr)
        raise SystemExit(2) from None
    job()


def commands() -> list[Command]:
    """(name, add_arguments, run) of every subcommand."""
    return [("demo", _demo_args, _demo), ("tour", _tour_args, _tour), ("train", _train_args, _train),
            ("eval", _eval_args, _eval), ("metamer", _metamer_args, _metamer)]


def main(argv: Sequence[str] | None = None) -> None:
    """Entry point of the ``hookgnn`` command (``argv`` defaults to ``sys.argv[1:]``)."""
    parser = argparse.ArgumentParser(
        prog="hookgnn", description="Hooks, caches, patching and circuits for graph neural networks."
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    runners = {}
    for name, add_args, run in commands():
        doc = (run.__doc__ or "").strip() or name
        add_args(sub.add_parser(name, help=doc, description=doc))
        runners[name] = run
    args = parser.parse_args(argv)
    runners[args.command](args)


if __name__ == "__main__":
    main(sys.argv[1:])
