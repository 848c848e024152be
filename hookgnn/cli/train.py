"""``hookgnn train`` and ``hookgnn eval``: their arguments, checks and jobs (see :mod:`hookgnn.cli.main`)."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from hookgnn.cli.args import (
    Command,
    DeprecatedOption,
    Job,
    SIZE_ARGS,
    UsageError,
    add_threads_arg,
    at_least,
    bad_argument,
    checked_path,
    fail,
    int_list,
    key_value,
    name_list,
    lazy_help,
    probability,
    rounds,
    sampler_error,
    sampler_kwargs,
)
from hookgnn.outpaths import spare_paths, writable_file

TRAIN_EPILOG = """\
examples:
  hookgnn train --task bfs --steps 300 --n 16 --out bfs.pt
  hookgnn train --task bellman_ford --processor mpnn --steps 500 --n 16 --p 0.3 --out bf.pt
  hookgnn train --task bellman_ford --processor minagg --sampler weighted_path --sizes 2,4,6,8 \\
      --same-size --rounds nodes --features d --hint-weight 0 --l1 1e-4 --d-hidden 8 --out minagg.pt

On several processes (one global batch per step, split across them; rank 0 saves;
give sizes with --sizes, since torchrun reads --n as one of its own options):
  torchrun --nproc_per_node 2 -m hookgnn.cli train --task bfs --sizes 16 --batch-size 64 --out bfs.pt

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


# ------------------------------------------------------------------ train
def add_data_args(parser: argparse.ArgumentParser, what: str, n_default: int) -> None:
    parser.add_argument("--sampler", default="erdos_renyi",
                        help=f"graph family of the {what} graphs (default erdos_renyi; see hookgnn.tasks.SAMPLERS: "
                             "erdos_renyi, path, weighted_path, cycle, complete, grid, tree, multi_path)")
    parser.add_argument("--n", type=at_least(1), default=n_default,
                        help=f"graph size of the {what} graphs (default {n_default}); for multi_path it is K, "
                             "the number of paths")
    parser.add_argument("--p", type=probability, default=None,
                        help="edge probability of erdos_renyi graphs (default 0.5)")
    parser.add_argument("--sampler-arg", type=key_value, action="append", default=[], metavar="KEY=VALUE",
                        help="extra sampler argument, repeatable, e.g. --sampler-arg 'weights=(0.0, 5.0)'")
    parser.add_argument("--rounds", type=rounds, default="hints",
                        help="rounds to run: 'hints' (one per algorithm step of the largest graph, default), "
                             "'nodes' (largest graph size - 1) or a number")
    parser.add_argument("--seed", type=at_least(0), default=0, help="random seed (default 0)")
    add_threads_arg(parser)


def _task_help() -> str:
    from hookgnn.tasks import TASKS

    return f"algorithm to learn (default bfs): {', '.join(sorted(TASKS))}"


def _processor_help() -> str:
    from hookgnn.nn import PROCESSORS

    return f"processor network (default mpnn): {', '.join(PROCESSORS)}"


def _train_args(parser: argparse.ArgumentParser) -> None:
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.epilog = TRAIN_EPILOG
    lazy_help(parser.add_argument("--task", default="bfs"), _task_help)  # lists the tasks only when help is shown
    lazy_help(parser.add_argument("--processor", default="mpnn"), _processor_help)
    parser.add_argument("--d-hidden", type=int, default=64, help="width of node states (default 64)")
    parser.add_argument("--max-rounds", type=int, default=64,
                        help="most rounds the model can run, also at test time (default 64)")
    parser.add_argument("--max-steps", dest="max_rounds", type=int, action=DeprecatedOption, new="--max-rounds",
                        help=argparse.SUPPRESS)  # its 0.1 spelling: optimiser steps are --steps here
    parser.add_argument("--untied", action="store_true", help="own weights per round (default: one shared processor)")
    parser.add_argument("--steps", type=int, default=500, help="optimiser steps (default 500)")
    parser.add_argument("--batch-size", type=int, default=32, help="graphs per step (default 32)")
    parser.add_argument("--lr", type=float, default=1e-3, help="Adam learning rate (default 1e-3)")
    parser.add_argument("--lr-schedule", choices=["constant", "cosine"], default="constant",
                        help="learning-rate schedule (default constant)")
    parser.add_argument("--l1", type=float, default=0.0, help="L1 penalty on weight matrices, as in MINAR (default 0)")
    parser.add_argument("--grad-clip", type=float, default=1.0, help="gradient-norm clip, 0 for none (default 1)")
    add_data_args(parser, "training", 16)
    parser.add_argument("--sizes", type=int_list, default=None,
                        help="comma-separated training sizes, each graph's drawn uniformly (default: --n only)")
    parser.add_argument("--same-size", action="store_true",
                        help="one size per step for the whole batch (round counts then vary between steps)")
    parser.add_argument("--extra-rounds", type=int, default=0,
                        help="add 0..K random extra rounds per step (default 0)")
    parser.add_argument("--features", type=name_list, default=None,
                        help="comma-separated outputs/hints to train (default: all outputs and hints)")
    parser.add_argument("--hint-weight", type=float, default=1.0, help="weight of hint losses, 0 for none (default 1)")
    parser.add_argument("--encode-hints", action="store_true", help="feed hints back as inputs (teacher forcing)")
    parser.add_argument("--teacher-forcing", type=float, default=0.5,
                        help="with --encode-hints: probability of using the true hints, decaying linearly to 0 "
                             "over training (default 0.5)")
    parser.add_argument("--eval-graphs", type=at_least(0), default=32,
                        help="after training, score on this many fresh graphs like the training ones (default 32; 0: skip)")
    parser.add_argument("--out", default=None,
                        help="write the checkpoint here (default: do not save); its folder is made if missing")
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")


#: TrainConfig fields whose option is not ``--`` and the field's name with dashes.
FIELD_OPTIONS = {"tie_weights": "--untied", "progress": "--no-progress", "max_steps": "--max-rounds"}


def _config_error(err: Any, args: argparse.Namespace) -> UsageError:
    """A TrainConfig :class:`~hookgnn.training.validation.ConfigError`, told in terms of the options."""
    if err.field in ("sampler", "sampler_kwargs", "size_arg"):
        return sampler_error(err, args)
    if err.field == "sizes":
        return bad_argument("--sizes", args.sizes, err.problem) if args.sizes else \
            bad_argument("--n", args.n, err.problem)
    option = FIELD_OPTIONS.get(err.field, "--" + err.field.replace("_", "-"))
    return bad_argument(option, getattr(args, option[2:].replace("-", "_"), err.value), err.problem)


def _rounds_fit(graphs: Any, policy: int | str, max_steps: int, option: str, value: Any, what: str) -> None:
    """Raise a :class:`UsageError` for ``option`` if ``graphs`` need more rounds than ``max_steps``."""
    from hookgnn.training import num_rounds

    need = num_rounds(graphs, policy)
    if need > max_steps:
        raise bad_argument(option, value, f"{what} need {need} rounds (--rounds {policy}) but the model runs at "
                                          f"most max_steps={max_steps}")


def _train(args: argparse.Namespace) -> Job:
    """train a reasoner on an algorithmic task and save a checkpoint"""
    from hookgnn.tasks import get_task
    from hookgnn.training import ConfigError, TrainConfig, sample_batch

    try:
        config = TrainConfig(
            task=args.task, processor=args.processor, d_hidden=args.d_hidden, max_steps=args.max_rounds,
            tie_weights=not args.untied, encode_hints=args.encode_hints, features=args.features,
            sampler=args.sampler, sizes=args.sizes or (args.n,), same_size=args.same_size,
            size_arg=SIZE_ARGS.get(args.sampler, "n"), sampler_kwargs=sampler_kwargs(args),
            batch_size=args.batch_size, steps=args.steps, lr=args.lr, lr_schedule=args.lr_schedule, l1=args.l1,
            grad_clip=args.grad_clip, hint_weight=args.hint_weight, rounds=args.rounds,
            extra_rounds=args.extra_rounds, teacher_forcing=args.teacher_forcing, teacher_forcing_end=0.0,
            seed=args.seed, progress=False if args.no_progress else None,
        )
    except ConfigError as err:
        raise _config_error(err, args) from None
    task = get_task(config.task)
    graphs = None
    if args.eval_graphs > 0:  # drawn now (from a stream training never uses), so evaluating cannot fail late
        graphs = sample_batch(task, args.eval_graphs, config.sampler, config.sizes, (config.seed, 1 << 30),
                              config.size_arg, config.sampler_kwargs)
        _rounds_fit(graphs, config.rounds, config.max_steps, "--max-rounds", config.max_steps,
                    f"the {args.eval_graphs} evaluation graphs")
    from hookgnn.parallel.world import launched_world

    rank, size = launched_world()  # under torchrun: only rank 0 writes, so only it checks --out
    if size > config.batch_size:
        raise bad_argument("--batch-size", config.batch_size, f"is the global batch, split across the {size} "
                                                              f"processes: use at least {size}")
    out = checked_path(writable_file, "--out", args.out) if args.out is not None and rank == 0 else None

    def job() -> None:
        from hookgnn.parallel.world import init_from_env, local_device

        world = init_from_env()  # one process unless launched by torchrun
        try:
            _train_job(args, config, task, graphs, out, None if world.size == 1 else local_device(), world.is_main)
        finally:
            if world.size > 1:
                import torch.distributed as dist

                dist.destroy_process_group()

    return job


def _train_job(args: argparse.Namespace, config: Any, task: Any, graphs: Any, out: Path | None, device: Any,
               main: bool) -> None:
    """Train; on the main process also evaluate, print and save (``out``)."""
    from hookgnn.ops.threads import auto_threads, graph_work
    from hookgnn.training import evaluate_model, train

    def stopped(model: Any, history: list[dict[str, float]], err: BaseException) -> None:
        if out is not None:  # keep what was trained, whatever stopped it
            print(f"hookgnn: training stopped after {len(history)} of {config.steps} steps "
                  f"({type(err).__name__}); saving the model trained so far", file=sys.stderr)
            _save(out, model.to("cpu"), config, {"completed_steps": float(len(history))})

    model, history = train(config, on_stop=stopped, device=device, threads=args.threads)
    if not main:
        return
    model.to("cpu")
    last = history[-min(len(history), 10):]
    print(f"trained {config.processor} on {config.task} for {config.steps} steps; "
          f"mean loss of the last {len(last)} steps: {sum(r['loss'] for r in last) / max(len(last), 1):.4f}")
    metrics: dict[str, float] = {}
    try:
        if graphs is not None:
            with auto_threads(graph_work(graphs, config.d_hidden), args.threads):
                metrics = evaluate_model(model, task, graphs, config.rounds)
            print(metrics_table(metrics, f"fresh training-distribution graphs ({args.eval_graphs})"))
    finally:  # the model is saved even when evaluating it failed
        if out is not None:
            _save(out, model, config, metrics)


def _save(out: Path, model: Any, config: Any, metrics: Mapping[str, float]) -> None:
    """Save the checkpoint to ``out``; if that fails, to a spare path, and say where."""
    from hookgnn.training import save_checkpoint

    try:
        out.parent.mkdir(parents=True, exist_ok=True)  # in case it went away during training
        save_checkpoint(out, model, config.task, config, metrics)
        print(f"saved {out}")
        return
    except Exception as err:  # noqa: BLE001 - try the spare paths before reporting it
        failure = err
    reason = f"{type(failure).__name__}: {failure}"
    for spare in spare_paths(out):
        try:
            save_checkpoint(spare, model, config.task, config, metrics)
        except Exception:  # noqa: BLE001, S112 - the next spare
            continue
        fail(f"could not write --out {out} ({reason}); saved the trained model to {spare} instead", 1)
    if isinstance(failure, OSError):
        fail(f"could not write --out {out} ({reason}), nor a spare copy; the trained model is lost", 1)
    raise failure  # a bug: show its traceback


# ------------------------------------------------------------------ eval
def _eval_args(parser: argparse.ArgumentParser) -> None:
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.epilog = EVAL_EPILOG
    parser.add_argument("--checkpoint", required=True, help="a file written by `hookgnn train --out`")
    add_data_args(parser, "test", 64)
    parser.add_argument("--num-graphs", type=at_least(1), default=32, help="number of test graphs (default 32)")
    parser.add_argument("--json", default=None, metavar="PATH",
                        help="also write the metrics as JSON to PATH (its folder is made if missing)")


def _eval(args: argparse.Namespace) -> Job:
    """score a checkpoint on fresh graphs (larger ones, other families)"""
    from hookgnn.tasks import get_task
    from hookgnn.training import CheckpointError, ConfigError, load_checkpoint
    from hookgnn.training.validation import check_sampler_args, first_line

    size_arg = SIZE_ARGS.get(args.sampler, "n")
    try:
        kwargs = check_sampler_args(args.sampler, size_arg, sampler_kwargs(args))
    except ConfigError as err:
        raise sampler_error(err, args) from None
    try:
        ckpt = load_checkpoint(args.checkpoint)
        task = get_task(ckpt.task)
    except CheckpointError as err:
        raise bad_argument("--checkpoint", args.checkpoint, err.problem) from None
    except FileNotFoundError:
        raise bad_argument("--checkpoint", args.checkpoint, "no such file") from None
    except KeyError:
        raise bad_argument("--checkpoint", args.checkpoint, f"its task {ckpt.task!r} is unknown to this hookgnn") \
            from None
    try:
        graphs = task.sample(args.num_graphs, args.sampler, seed=args.seed, **{size_arg: args.n}, **kwargs)
    except (TypeError, ValueError) as err:
        call = ", ".join(f"{k}={v!r}" for k, v in {size_arg: args.n, **kwargs}.items())
        raise bad_argument("--sampler", args.sampler, f"{task.name} on {args.sampler}({call}) graphs fails: {first_line(err)}") \
            from None
    option, value = ("--rounds", args.rounds) if isinstance(args.rounds, int) else ("--n", args.n)
    _rounds_fit(graphs, args.rounds, ckpt.model.max_steps, option, value, f"these {args.sampler} graphs")
    json_path = checked_path(writable_file, "--json", args.json) if args.json is not None else None

    def job() -> None:
        from hookgnn.ops.threads import auto_threads, graph_work
        from hookgnn.training import evaluate_model

        with auto_threads(graph_work(graphs, ckpt.model.d_hidden), args.threads):
            metrics = evaluate_model(ckpt.model, task, graphs, args.rounds)
        print(metrics_table(metrics, f"{ckpt.task}: {args.num_graphs} {args.sampler} graphs, n={args.n}"))
        if json_path is not None:
            try:
                json_path.write_text(json.dumps(metrics, indent=2))
            except OSError as err:
                fail(f"could not write --json {json_path} ({err.strerror or err}); the metrics are printed above", 1)

    return job


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


#: ``hookgnn train`` and ``hookgnn eval`` as (name, add_arguments, check) rows (:data:`~hookgnn.cli.args.Command`).
COMMANDS: list[Command] = [("train", _train_args, _train), ("eval", _eval_args, _eval)]
