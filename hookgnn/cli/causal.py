"""The ``hookgnn causal`` job: a checkpoint's hints as causal variables, round by round.

For each node hint (``--hint``, default all) and each step ``1 .. --steps``: the held-out
score of a linear probe from the state entering that round (with its control task), and the
interchange intervention accuracy of the whole node state against the task's algorithm
resumed with the swapped hint (:mod:`hookgnn.causal`): ``iia`` (every output right at every
node) and, per node output, ``output_iia`` (node by node, with its ceiling and chance;
:func:`~hookgnn.causal.outputs.output_iia`). Every argument is checked first (the checkpoint
loads, its task can resume, the hints exist, the rounds fit).
"""

from __future__ import annotations

import argparse
import json
from typing import Any

from hookgnn.cli.args import SIZE_ARGS, Job, at_least, bad_argument, checked_path, fail, key_value, sampler_kwargs
from hookgnn.outpaths import writable_file

EPILOG = """\
examples:
  hookgnn causal --checkpoint bf.pt --hint d_h --n 8 --p 0.3
  hookgnn causal --checkpoint bfs.pt --steps 3 --pairs 128 --json causal.json

A hint is decodable when the probe's score clearly beats its control (shuffled labels), and
used the way the algorithm uses it when IIA clearly beats chance (what an intervention that
changes nothing scores). The second table scores each output node by node (output_iia):
ceiling is the model's own accuracy without intervention, chance the share of nodes the
intervention leaves unchanged.
"""


def causal_args(parser: argparse.ArgumentParser) -> None:
    """The options of ``hookgnn causal``."""
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.epilog = EPILOG
    parser.add_argument("--checkpoint", required=True, help="a file written by `hookgnn train --out`")
    parser.add_argument("--hint", action="append", default=None, metavar="NAME",
                        help="node hint to study, repeatable (default: every node hint of the task)")
    parser.add_argument("--sampler", default="erdos_renyi", help="graph family (default erdos_renyi)")
    parser.add_argument("--n", type=at_least(1), default=8, help="graph size (default 8)")
    parser.add_argument("--p", type=float, default=None, help="edge probability of erdos_renyi graphs (default 0.5)")
    parser.add_argument("--sampler-arg", type=key_value, action="append", default=[], metavar="KEY=VALUE",
                        help="extra sampler argument, repeatable")
    parser.add_argument("--seed", type=at_least(0), default=0, help="random seed (default 0)")
    parser.add_argument("--steps", type=at_least(1), default=4, help="hint steps 1 .. STEPS to study (default 4)")
    parser.add_argument("--pairs", type=at_least(2), default=64,
                        help="(base, source) graph pairs for the interventions (default 64)")
    parser.add_argument("--json", default=None, metavar="PATH", help="also write the rows as JSON to PATH")


def check_causal(args: argparse.Namespace) -> Job:
    """study a checkpoint's hints as causal variables: probes and interchange interventions per round"""
    from hookgnn.tasks import get_task
    from hookgnn.training import CheckpointError, load_checkpoint

    try:
        ckpt = load_checkpoint(args.checkpoint)
        task = get_task(ckpt.task)
    except CheckpointError as err:
        raise bad_argument("--checkpoint", args.checkpoint, err.problem) from None
    except FileNotFoundError:
        raise bad_argument("--checkpoint", args.checkpoint, "no such file") from None
    except KeyError:
        raise bad_argument("--checkpoint", args.checkpoint, "its task is unknown to this hookgnn") from None
    model = ckpt.model.eval()
    node_hints = [n for n, fs in task.spec.items() if fs.stage == "hint" and fs.location == "node"]
    hints = args.hint or node_hints
    for h in hints:
        if h not in node_hints:
            raise bad_argument("--hint", h, f"not a node hint of {task.name}; choose from {node_hints}")
    if args.steps > model.max_steps - 1:
        raise bad_argument("--steps", args.steps, f"the model runs {model.max_steps} rounds; study steps up to "
                                                  f"{model.max_steps - 1} so that rounds remain after each")
    size_arg = SIZE_ARGS.get(args.sampler, "n")
    kwargs = {size_arg: args.n, **sampler_kwargs(args)}
    try:
        probe_graph = task.sample(1, args.sampler, seed=args.seed, **kwargs)
    except (KeyError, TypeError, ValueError) as err:
        raise bad_argument("--sampler", args.sampler, f"{task.name} graphs cannot be sampled: {err}") from None
    try:
        task.resume(probe_graph, 1)
    except NotImplementedError as err:
        raise bad_argument("--checkpoint", args.checkpoint, str(err)) from None
    outputs = [n for n, fs in task.spec.items() if fs.stage == "output" and fs.location == "node"
               and n in getattr(model, "decoders", {})]
    json_path = checked_path(writable_file, "--json", args.json) if args.json is not None else None

    def job() -> None:
        rows = run_causal(model, task, hints, list(range(1, args.steps + 1)), outputs, args.pairs, args.sampler,
                          args.seed, kwargs)
        cols = ("hint", "step", "probe", "control", "iia", "chance", "informative")
        print(f"{task.name}: {args.pairs} pairs of {args.sampler} graphs; probe: held-out R^2 or accuracy; "
              "iia: whole node state swapped")
        print("  ".join(f"{c:>11s}" for c in cols))
        for r in rows:
            print("  ".join(f"{r[c]:>11.3f}" if isinstance(r[c], float) else f"{r[c]!s:>11s}" for c in cols))
        if outputs:
            print("output_iia: node by node, per output")
            cols = ("hint", "step", "output", "iia", "ceiling", "chance")
            print("  ".join(f"{c:>11s}" for c in cols))
            for r in rows:
                for name, o in r["output_iia"].items():
                    cells = (r["hint"], r["step"], name, o["iia"], o["ceiling"], o["chance"])
                    print("  ".join(f"{c:>11.3f}" if isinstance(c, float) else f"{c!s:>11s}" for c in cells))
        if json_path is not None:
            try:
                json_path.write_text(json.dumps(rows, indent=2))
            except OSError as err:
                fail(f"could not write --json {json_path} ({err.strerror or err}); the rows are printed above", 1)

    return job


def run_causal(model: Any, task: Any, hints: list[str], steps: list[int], outputs: list[str], num_pairs: int,
               sampler: str, seed: int, kwargs: dict[str, Any]) -> list[dict[str, Any]]:
    """Probe and IIA rows per (hint, step) (see the module docstring); ``output_iia`` maps each
    output to its node-level ``iia``, ``ceiling`` and ``chance`` at that step."""
    from hookgnn.causal import interchange_accuracy, interchange_data, output_iia, probe_hints, random_interventions
    from hookgnn.causal import task_pairs, whole_state

    graphs = [task.sample(16, sampler, seed=seed + 1 + i, **kwargs) for i in range(4)]
    probes = probe_hints(model, graphs, task.spec, hints=hints, steps=steps, seed=seed)
    pairs = task_pairs(task, num_pairs, sampler, vary="weights" if task.uses_weights else "source", seed=seed,
                       **kwargs)
    d = int(model.d_hidden)
    rows = []
    for h in hints:
        data = interchange_data(task, h, pairs, random_interventions(pairs, steps, seed=seed), outputs=outputs)
        iia = {r["step"]: r for r in interchange_accuracy(model, data, whole_state(d)).by_step()}
        by_output = {name: {r["step"]: r for r in result.by_step()}
                     for name, result in (output_iia(model, data, whole_state(d)) if outputs else {}).items()}
        for p in probes.rows:
            if p["hint"] == h:
                r = iia[p["step"]]
                nodes = {name: {k: steps[p["step"]][k] for k in ("iia", "ceiling", "chance")}
                         for name, steps in by_output.items()}
                rows.append({"hint": h, "step": p["step"], "probe": p["score"], "control": p["control"],
                             "iia": r["iia"], "chance": r["chance"], "informative": r["informative"],
                             "output_iia": nodes})
    return rows
