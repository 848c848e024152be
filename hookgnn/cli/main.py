"""The ``hookgnn`` command line: one subcommand per job (``hookgnn --help``).

* ``hookgnn demo``: the main job: analyse a small reasoner (shipped, or ``--train``), patch it, draw its circuit;
* ``hookgnn tour``: build a reasoner, cache it, hook it, print the hook table;
* ``hookgnn train``: train a reasoner on an algorithmic task and save a checkpoint;
* ``hookgnn eval``: score a checkpoint on fresh graphs (larger ones, other families);
* ``hookgnn metamer``: graphs a checkpoint's reasoner cannot tell apart from a sampled one;
* ``hookgnn causal``: a checkpoint's hints as causal variables (probes, interchange interventions).

Every subcommand checks all its arguments first (values, the checkpoint, that output
folders exist or can be made and accept files), then runs. A bad argument prints one
line, ``hookgnn: error: ...`` naming the option and its value, and exits with status 2;
anything else that goes wrong later is a bug and shows its traceback. A trained model
is saved even when the final evaluation fails, and to a spare file (whose name is
printed) when its ``--out`` cannot be written at the end.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from hookgnn.cli.args import (
    Command,
    Job,
    Parser,
    UsageError,
    add_threads_arg,
    at_least,
    bad_argument,
    checked_path,
    fail,
    sampler_kwargs,
)
from hookgnn.cli.train import COMMANDS as TRAIN_COMMANDS, add_data_args
from hookgnn.outpaths import writable_folder


# ------------------------------------------------------------------ tour
def _tour_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--seed", type=at_least(0), default=0, help="random seed (default 0)")


def _tour(args: argparse.Namespace) -> Job:
    """build a reasoner, cache it, hook it, print the hook table"""
    from hookgnn.cli.tour import run_tour

    return lambda: run_tour(seed=args.seed)


# ------------------------------------------------------------------ demo
def _demo_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", default="out/demo", help="folder for the figures (default out/demo; made if missing)")
    parser.add_argument("--train", action="store_true",
                        help="train the model here instead of analysing the reference checkpoint shipped with "
                             "hookgnn (the results then depend on this machine's CPU code path and threads)")
    parser.add_argument("--seed", type=at_least(0), default=None, help="with --train: random seed (default 0)")
    parser.add_argument("--train-steps", type=at_least(1), default=None,
                        help="with --train: training steps (default 400)")
    add_threads_arg(parser)


def _demo(args: argparse.Namespace) -> Job:
    """analyse a small Bellman-Ford reasoner (the shipped reference, or --train): patch it, find its circuit"""
    import importlib.util

    for option, value in (("--seed", args.seed), ("--train-steps", args.train_steps)):
        if value is not None and not args.train:
            raise bad_argument(option, value, "applies only with --train (the reference checkpoint is trained "
                                              "already: seed 0, 400 steps)")
    if importlib.util.find_spec("matplotlib") is None:  # the figures come last: say so now, not after the work
        raise UsageError("the demo draws figures with matplotlib, which is not installed (pip install 'hookgnn[viz]')")
    out = checked_path(writable_folder, "--out", args.out)
    seed = 0 if args.seed is None else args.seed
    steps = 400 if args.train_steps is None else args.train_steps

    def job() -> None:
        from hookgnn.cli.demo import run_demo

        run_demo(out, seed=seed, train_steps=steps, threads=args.threads, retrain=args.train)

    return job


# ------------------------------------------------------------------ metamer
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
    add_data_args(parser, "reference", 12)
    parser.add_argument("--num", type=int, default=4, help="metamers searched together in one batch (default 4)")
    parser.add_argument("--tol", type=float, default=1e-3, help="relative activation distance to reach (default 1e-3)")
    parser.add_argument("--max-steps", type=int, default=2000,
                        help="optimiser steps at most (default 2000; as --steps of train, not its --max-rounds)")
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


def _metamer(args: argparse.Namespace) -> Job:
    """search graphs a checkpoint's reasoner cannot tell apart from a sampled one"""
    from hookgnn.cli.metamer import check_metamer

    args.sampler_kwargs = sampler_kwargs(args)
    return check_metamer(args)


# ------------------------------------------------------------------ main
def commands() -> list[Command]:
    """(name, add_arguments, check) of every subcommand; ``check(args)`` returns the job to run."""
    from hookgnn.cli.causal import causal_args, check_causal

    return [("demo", _demo_args, _demo), ("tour", _tour_args, _tour), *TRAIN_COMMANDS,
            ("metamer", _metamer_args, _metamer), ("causal", causal_args, check_causal)]


def main(argv: Sequence[str] | None = None) -> None:
    """Entry point of the ``hookgnn`` command (``argv`` defaults to ``sys.argv[1:]``).

    Every argument is checked before any work: a bad one prints one ``hookgnn: error:``
    line and exits with status 2. Parsing imports no torch (``hookgnn --help`` answers at once).
    """
    from hookgnn._version import __version__

    parser = Parser(prog="hookgnn", description="Hooks, caches, patching and circuits for graph neural networks.")
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    checks = {}
    for name, add_args, check in commands():
        doc = (check.__doc__ or "").strip() or name
        add_args(sub.add_parser(name, help=doc, description=doc))
        checks[name] = check
    args = parser.parse_args(argv)
    try:
        job = checks[args.command](args)
    except UsageError as err:
        fail(str(err))
    job()


if __name__ == "__main__":
    main(sys.argv[1:])
